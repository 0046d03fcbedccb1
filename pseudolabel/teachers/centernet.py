"""CenterNet multi-pose (DLA-34 + DCN, ``multi_pose_dla_3x.pth``) as a one-stage teacher.

The network (:mod:`pseudolabel.models.dla`) loads CenterNet's official checkpoint unchanged
(``{'epoch', 'state_dict'}``, optional ``module.`` prefixes; the unused ImageNet classifier
``base.fc`` is dropped; every other key and shape must match). Pre-processing, flip test and
decoding follow CenterNet's test code (:mod:`pseudolabel.models.centernet_io`). The teacher finds
every person itself (``top_down=False``): person boxes passed to :meth:`CenterNetTeacher.predict`
are ignored.

Per pose: the box comes from the ``wh``/``reg`` heads (clipped to the image), the person score
is the centre-heatmap peak, and each joint's confidence is the score of the keypoint-heatmap peak
it snapped to, or at most 0.1 when it kept its regressed position (see
:data:`pseudolabel.models.centernet_io.UNSNAPPED_CONF_CAP`).

Weights: ``weights=PATH`` (``gaitdata label --weights PATH``) or ``multi_pose_dla_3x.pth`` in
the folder named by ``GAITDATA_WEIGHTS_DIR``. Deformable convolution uses
``torchvision.ops.deform_conv2d`` when torchvision imports and an equivalent pure-PyTorch
implementation otherwise; a missing torchvision is therefore not an error (only slower).
``dcn_backend="torchvision"`` insists on torchvision's op (a clear error when it cannot be
imported), ``"torch"`` forces the pure-PyTorch one; ``teacher.deform_backend`` says which runs.

Options (``create_teacher("centernet", ...)`` or ``pseudolabel.runner.label(..., **opts)``):
``flip`` (flip test, default off as in CenterNet's test script), ``score_threshold`` (0.3),
``top_k`` (100 centres), ``batch_size`` (4), ``input_size`` (512; smaller multiples of 32 only
for quick checks: the official weights were trained at 512), ``dcn_backend``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gaitdata.errors import require
from gaitdata.records import Pose
from pseudolabel.checkpoints import resolve_weights
from pseudolabel.registry import TeacherConfig, pick_device, register_teacher

WEIGHTS_FILE = "multi_pose_dla_3x.pth"
EXPECTED = f"CenterNet multi-pose DLA-34 checkpoint {WEIGHTS_FILE} (heads hm 1, wh 2, hps 34, reg 2, hm_hp 17, hp_offset 2)"
DEFAULT_SCORE_THRESHOLD = 0.3  # CenterNet's visualisation threshold (opt.vis_thresh)
DEFAULT_TOP_K = 100  # CenterNet's opt.K

CENTERNET_CONFIG = TeacherConfig(
    name="centernet",
    input_size=(512, 512),
    mean=(0.408, 0.447, 0.470),
    std=(0.289, 0.274, 0.278),
    channel_order="BGR",
    top_down=False,
    source="CenterNet multi_pose_dla_3x (Zhou et al., Objects as Points, 2019; DLA-34 + DCNv2), "
    "github.com/xingyizhou/CenterNet model zoo",
    license="MIT (CenterNet code and models); DLA and DCNv2 BSD-3-Clause",
    weights_file=WEIGHTS_FILE,
    extra={
        "down_ratio": 4,
        "top_k": DEFAULT_TOP_K,
        "score_threshold": DEFAULT_SCORE_THRESHOLD,
        "snap_threshold": 0.1,
        "snap_distance": "0.3 * max(box side)",
        "confidence": "snapped keypoint-heatmap peak score; unsnapped joints: heatmap value capped at 0.1",
        "preprocess": "letterbox affine (longer side -> 512), BGR, (x/255 - mean) / std",
        "flip_test": False,
    },
)


def load_centernet(path: str | os.PathLike, model: Any) -> str:
    """Strictly load an official CenterNet multi-pose checkpoint into ``model``; returns its sha256.

    A checkpoint of another CenterNet task (e.g. ``ctdet`` detection with 80 classes and no
    keypoint heads) raises an error naming that task.
    """
    from pseudolabel.checkpoints import (
        CheckpointError,
        check_state_dict,
        clean_state_dict,
        read_checkpoint,
        sha256_file,
    )
    from pseudolabel.models.dla import centernet_filter_fn, infer_task

    path = Path(path)
    sd = centernet_filter_fn(
        clean_state_dict(read_checkpoint(path, expected=EXPECTED), source=f"checkpoint {path}")
    )
    task = infer_task(sd)
    if task != "multi_pose":
        heads = sorted({k.split(".", 1)[0] for k in sd if not k.startswith(("base.", "dla_up.", "ida_up."))})
        raise CheckpointError(
            f"checkpoint {path} is a CenterNet {task} checkpoint (heads: {', '.join(heads) or 'none'}), not a "
            f"multi_pose one: the centernet teacher needs {WEIGHTS_FILE} (heads hm, wh, hps, reg, hm_hp, hp_offset)"
        )
    check_state_dict(sd, model, source=f"checkpoint {path}", expected=EXPECTED)
    model.load_state_dict(sd, strict=True)
    return sha256_file(path)




class CenterNetTeacher:
    """CenterNet multi-pose as a :class:`pseudolabel.registry.Teacher` (see the module docstring)."""

    cfg = CENTERNET_CONFIG

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str = "auto",
        flip: bool = False,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        top_k: int = DEFAULT_TOP_K,
        batch_size: int = 4,
        input_size: int = 512,
        dcn_backend: str = "auto",
    ) -> None:
        torch = require("torch", "teachers")
        from pseudolabel.models.dcn import DCN, deform_backend
        from pseudolabel.models.dla import build_centernet_dla34

        if not 0.0 <= float(score_threshold) <= 1.0:
            raise ValueError(f"centernet teacher: score_threshold must lie in [0, 1], got {score_threshold}")
        if int(top_k) < 1 or int(batch_size) < 1:
            raise ValueError(
                f"centernet teacher: top_k and batch_size must be >= 1, got {top_k}, {batch_size}"
            )
        if int(input_size) % 32:
            raise ValueError(f"centernet teacher: input_size must be a multiple of 32, got {input_size}")
        if dcn_backend not in ("auto", "torch", "torchvision"):
            raise ValueError(
                f"centernet teacher: dcn_backend must be auto, torch or torchvision, got {dcn_backend!r}"
            )
        if dcn_backend == "torchvision" and deform_backend() != "torchvision":
            from gaitdata.errors import MissingDependencyError

            raise MissingDependencyError(
                "dcn_backend='torchvision' asked for, but torchvision.ops.deform_conv2d cannot be imported with "
                f"torch {torch.__version__} (install a torchvision built for this torch, e.g. the matching release "
                "from the PyTorch index); or use dcn_backend='auto': the pure-PyTorch implementation gives the "
                "same results, more slowly"
            )
        self._torch = torch
        self.device = pick_device(device)
        self.flip = bool(flip)
        self.score_threshold = float(score_threshold)
        self.top_k = int(top_k)
        self.batch_size = int(batch_size)
        self.input_size = int(input_size)
        self.weights_path = resolve_weights(weights, WEIGHTS_FILE, "centernet", "CenterNet's", "CenterNet's model zoo")
        model = build_centernet_dla34()
        self.weights_hash: str | None = load_centernet(self.weights_path, model)
        for m in model.modules():
            if isinstance(m, DCN):
                m.backend = dcn_backend
        self.model = model.eval().to(self.device)
        self.deform_backend = deform_backend() if dcn_backend == "auto" else dcn_backend

    # ---- inference ---------------------------------------------------------------------------------
    def _forward(self, batch: np.ndarray) -> dict[str, Any]:
        from pseudolabel.models.centernet_io import merge_flip, sigmoid_outputs

        torch = self._torch
        x = torch.from_numpy(batch).to(self.device)
        if self.flip:
            x = torch.cat([x, x.flip(3)], 0)
        with torch.inference_mode():
            out = sigmoid_outputs(self.model(x))
            if self.flip:
                out = merge_flip(out)
        return out

    def predict(
        self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray | None] | None = None
    ) -> list[list[Pose]]:
        """RGB uint8 images -> per image the persons scoring >= ``score_threshold`` (boxes are ignored)."""
        from pseudolabel.models.centernet_io import apply_affine, decode_multi_pose, preprocess

        results: list[list[Pose]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            prepped = []
            for img in chunk:
                arr = np.asarray(img)
                if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
                    raise ValueError(
                        f"centernet teacher: expected RGB uint8 HxWx3 images, got {arr.shape} {arr.dtype}"
                    )
                prepped.append(preprocess(arr, self.input_size))
            dets = decode_multi_pose(self._forward(np.stack([p[0] for p in prepped])), k=self.top_k)
            dets = {
                k: v.float().cpu().numpy() if v.dtype.is_floating_point else v.cpu().numpy()
                for k, v in dets.items()
            }
            for i, (img, (_, lb)) in enumerate(zip(chunk, prepped, strict=True)):
                h, w = img.shape[:2]
                m = lb.output_to_image()
                poses: list[Pose] = []
                for d in np.flatnonzero(dets["scores"][i] >= self.score_threshold):
                    corners = apply_affine(dets["boxes"][i, d].reshape(2, 2), m)
                    x1, y1 = np.clip(corners[0], 0, [w, h])
                    x2, y2 = np.clip(corners[1], 0, [w, h])
                    kp = apply_affine(dets["keypoints"][i, d], m)
                    kps = np.concatenate([kp, dets["kp_conf"][i, d][:, None]], 1).astype(np.float32)
                    poses.append(
                        Pose(
                            bbox=(float(x1), float(y1), float(max(x2 - x1, 0.0)), float(max(y2 - y1, 0.0))),
                            score=float(np.clip(dets["scores"][i, d], 0, 1)),
                            keypoints=kps,
                            extras={"snapped": dets["snapped"][i, d].copy()},
                        )
                    )
                results.append(poses)
        return results

    def reset(self) -> None:
        """No state is kept between images."""


@register_teacher("centernet")
def create_centernet(weights: str | None = None, device: str = "auto", **opts: Any) -> CenterNetTeacher:
    """Factory: ``create_teacher("centernet", weights=PATH, flip=False, score_threshold=0.3, top_k=100)``."""
    return CenterNetTeacher(weights=weights, device=device, **opts)
