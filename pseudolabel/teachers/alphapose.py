"""AlphaPose FastPose (SE-ResNet-50 + DUC head) as a checkpoint-exact, top-down teacher.

The model (:mod:`pseudolabel.models.fastpose`) loads AlphaPose's official
``fast_res50_256x192.pth`` unchanged (strict, key for key) and the pre/post-processing
(:mod:`pseudolabel.models.fastpose_io`) reproduces AlphaPose's, including its flip test.

Weights: ``weights=PATH`` (``gaitdata label --teacher alphapose --weights PATH``) or
``fast_res50_256x192.pth`` inside the folder named by ``$GAITDATA_WEIGHTS_DIR``. Nothing is
downloaded: get the file from AlphaPose's model zoo (``docs/MODEL_ZOO.md``, "Fast Pose", ResNet-50,
256x192).

Inputs and outputs of :meth:`AlphaPoseTeacher.predict`:

- ``images``: RGB uint8 arrays (H, W, 3). ``boxes``: per image an (N, 4) array of person boxes
  ``x, y, w, h`` (optionally a fifth column: the proposer's box score). ``None`` for an image (or
  for the whole batch) means "no proposer ran": the whole image is used as one box. An empty
  (0, 4) array means "no person": no poses. Boxes that are not finite or have ``w <= 0`` or
  ``h <= 0`` give no pose (the rest of the batch goes on); ``Pose.extras["box_index"]`` is the row
  of the box a pose came from.
- Every box of every image of the call is cropped, and the crops run through the network in
  chunks of ``batch_size`` (twice that with the flip test), on CUDA with fp16 autocast when
  ``amp`` (the default), else in float32.
- Per pose: ``bbox`` = the input box, keypoints ``x, y`` in the image frame of the boxes,
  ``confidence`` = the raw heatmap peak (flip-averaged) clipped to [0, 1] (AlphaPose's peaks are
  unbounded regression values, normally 0..~1); ``score`` = mean of the 17 confidences, multiplied
  by the box score when the boxes have a fifth column. ``extras["raw_scores"]``: the unclipped
  peaks (17,) float32.
- ``return_heatmaps=True`` adds, per pose, for distillation:
  ``extras["heatmap"]``: (17, 64, 48) float32, the (flip-averaged) heatmaps that were decoded;
  ``extras["crop_box"]``: (4,) float32 ``xmin, ymin, xmax, ymax``, the scaled crop region in
  image pixels; ``extras["image_to_heatmap"]``: (2, 3) float64 affine A with
  ``[u, v] = A @ [x, y, 1]`` mapping image pixels to heatmap cells (cell (u, v) is
  ``heatmap[:, v, u]``; ``u = (x - xmin) * 48 / (xmax - xmin)``, likewise v with 64);
  ``extras["image_to_input"]``: (2, 3) float64 affine from image pixels to the 192x256 network
  input (what ``cv2.warpAffine`` used to cut the crop). Decoding a heatmap cell (u, v) back to the
  image is ``cv2.invertAffineTransform(image_to_heatmap) @ [u, v, 1]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np

from gaitdata.errors import require
from gaitdata.records import Pose
from pseudolabel.checkpoints import resolve_weights
from pseudolabel.registry import TeacherConfig, pick_device, register_teacher

WEIGHTS_FILE = "fast_res50_256x192.pth"
WEIGHTS_SOURCE = "AlphaPose's model zoo (docs/MODEL_ZOO.md, Fast Pose, ResNet-50, 256x192)"
EXPECTED_CHECKPOINT = (
    f"AlphaPose's official FastPose ResNet-50 checkpoint {WEIGHTS_FILE} "
    "(config 256x192_res50_lr1e-3_1x: a raw state_dict of 348 entries, 40,577,745 parameters)"
)

ALPHAPOSE_CONFIG = TeacherConfig(
    name="alphapose",
    input_size=(256, 192),
    mean=(0.406, 0.457, 0.480),  # subtracted after /255, RGB order
    std=None,  # AlphaPose does not divide by a standard deviation
    channel_order="RGB",
    top_down=True,
    source=(
        "AlphaPose (MVIG-SJTU/AlphaPose) FastPose: SE-ResNet-50 + PixelShuffle/DUC head, COCO-17 heatmaps "
        "64x48; official checkpoint fast_res50_256x192.pth from AlphaPose's model zoo"
    ),
    license=(
        "AlphaPose code and model weights: AlphaPose licence, free for non-commercial use only (commercial use "
        "needs a licence from MVIG-SJTU); this re-implementation of the architecture is part of gaitdata (Apache-2.0)"
    ),
    weights_file=WEIGHTS_FILE,
    extra={
        "heatmap_size": (64, 48),
        "box_scale": 1.25,
        "aspect_ratio": 192 / 256,
        "flip_test": True,
        "confidence": "raw heatmap peak (flip-averaged) clipped to [0, 1]",
        "score": "mean joint confidence x box score (when boxes carry one)",
        "no_boxes": "boxes=None -> whole image as one box; an empty (0, 4) array -> no poses",
    },
)


def load_fastpose(path: str | os.PathLike, model: Any | None = None) -> tuple[Any, str]:
    """Build FastPose-R50 (unless ``model`` is given), load the official checkpoint strictly.

    Returns ``(model in eval mode, sha256 of the file)``.
    """
    from pseudolabel.checkpoints import load_checkpoint
    from pseudolabel.models.fastpose import build_fastpose_r50

    model = model if model is not None else build_fastpose_r50()
    digest = load_checkpoint(path, model, strict=True, expected=EXPECTED_CHECKPOINT)
    return model.eval(), digest


def _image_boxes(image: np.ndarray, boxes: np.ndarray | None, index: int) -> tuple[np.ndarray, np.ndarray]:
    """-> (valid boxes (M, 5) with score column, their row indices in the input)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"image {index}: expected an RGB array of shape (H, W, 3), got {shape}")
    if boxes is None:
        h, w = image.shape[:2]
        return np.array([[0.0, 0.0, w, h, 1.0]]), np.array([0])
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 5)), np.zeros(0, dtype=int)
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] not in (4, 5):
        raise ValueError(
            f"image {index}: boxes must be (N, 4) x, y, w, h or (N, 5) with a score; got {b.shape}"
        )
    if b.shape[1] == 4:
        b = np.concatenate([b, np.ones((len(b), 1))], axis=1)
    ok = np.isfinite(b).all(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0)
    return b[ok], np.nonzero(ok)[0]


def predict_poses(
    model: Any,
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray | None] | None = None,
    *,
    flip: bool = True,
    device: str = "cpu",
    amp: bool = True,
    batch_size: int = 64,
    return_heatmaps: bool = False,
    flip_pairs: Sequence[tuple[int, int]] | None = None,
) -> list[list[Pose]]:
    """Run a FastPose-like ``model`` (crops (N, 3, 256, 192) -> heatmaps (N, K, 64, 48)) top-down.

    The AlphaPose pipeline of :mod:`pseudolabel.models.fastpose_io` around any such module (the
    teacher uses the official FastPose; tests use small stand-ins). See the module docstring for
    the meaning of every input and output.
    """
    torch = require("torch", "teachers")
    from pseudolabel.models import fastpose_io as fio

    if boxes is not None and len(boxes) != len(images):
        raise ValueError(f"got {len(images)} images but {len(boxes)} box arrays")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pairs = fio.COCO_FLIP_PAIRS if flip_pairs is None else tuple(flip_pairs)

    crops, crop_boxes, affines, owners = [], [], [], []  # owners: (image index, box row, box)
    for i, img in enumerate(images):
        valid, rows = _image_boxes(img, None if boxes is None else boxes[i], i)
        if len(valid) == 0:
            continue
        c, cb, aff = fio.prepare_crops(np.ascontiguousarray(img), valid[:, :4])
        crops.append(c)
        crop_boxes.append(cb)
        affines.append(aff)
        owners += [(i, int(r), valid[j]) for j, r in enumerate(rows)]
    out: list[list[Pose]] = [[] for _ in images]
    if not owners:
        return out
    all_crops = np.concatenate(crops)
    all_boxes = np.concatenate(crop_boxes)
    all_affines = np.concatenate(affines)

    use_amp = amp and str(device).startswith("cuda")
    heatmaps = []
    with torch.inference_mode():
        for s in range(0, len(all_crops), batch_size):
            x = fio.normalize_alphapose(torch.from_numpy(all_crops[s : s + batch_size]).to(device))
            n = x.shape[0]
            if flip:
                x = torch.cat([x, torch.flip(x, dims=(3,))])
            with torch.autocast(device_type="cuda", dtype=torch.float16) if use_amp else nullcontext():
                hm = model(x)
            hm = hm.float()
            if flip:
                hm = (hm[:n] + fio.flip_heatmaps(hm[n:], pairs, shift=True)) / 2
            heatmaps.append(hm.cpu().numpy())
    hms = np.concatenate(heatmaps)
    coords, peaks = fio.heatmaps_to_image_coords(hms, all_boxes)

    for j, (i, row, box) in enumerate(owners):
        conf = np.nan_to_num(np.clip(peaks[j], 0.0, 1.0), nan=0.0)  # a NaN peak (fp16 overflow) -> 0
        kp = np.concatenate([coords[j], conf[:, None]], axis=1).astype(np.float32)
        extras: dict[str, Any] = {"box_index": row, "raw_scores": peaks[j].astype(np.float32)}
        if return_heatmaps:
            extras["heatmap"] = hms[j].copy()
            extras["crop_box"] = all_boxes[j].copy()
            extras["image_to_heatmap"] = fio.image_to_heatmap_affine(
                all_boxes[j], (hms.shape[3], hms.shape[2])
            )
            extras["image_to_input"] = all_affines[j]
        score = float(conf.mean()) * float(box[4])
        out[i].append(Pose(bbox=tuple(box[:4]), score=score, keypoints=kp, extras=extras))
    return out


class AlphaPoseTeacher:
    """FastPose-R50 with AlphaPose's official weights; see the module docstring."""

    cfg = ALPHAPOSE_CONFIG

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str = "auto",
        *,
        flip: bool = True,
        amp: bool = True,
        batch_size: int = 64,
    ) -> None:
        require("torch", "teachers")
        self.device = pick_device(device)
        self.weights_path = resolve_weights(weights, WEIGHTS_FILE, "alphapose", "AlphaPose's official checkpoint",
                                            WEIGHTS_SOURCE)  # fmt: skip
        model, self.weights_hash = load_fastpose(self.weights_path)
        self.model = model.to(self.device)
        self.flip = flip
        self.amp = amp
        self.batch_size = int(batch_size)

    def predict(
        self,
        images: Sequence[np.ndarray],
        boxes: Sequence[np.ndarray | None] | None = None,
        return_heatmaps: bool = False,
    ) -> list[list[Pose]]:
        return predict_poses(
            self.model, images, boxes, flip=self.flip, device=self.device, amp=self.amp,
            batch_size=self.batch_size, return_heatmaps=return_heatmaps,
        )  # fmt: skip

    def reset(self) -> None:
        """No state between recordings (each crop is independent)."""


@register_teacher("alphapose")
def create_alphapose(
    weights: str | os.PathLike | None = None, device: str = "auto", **opts: Any
) -> AlphaPoseTeacher:
    """Factory: ``create_teacher("alphapose", weights=PATH, device="auto", flip=True, amp=True, batch_size=64)``."""
    return AlphaPoseTeacher(weights=weights, device=device, **opts)
