"""A trained gaitdata student as a teacher: label new recordings fast with the model trained for them.

``gaitdata label ROOT --teacher student --weights RUN_DIR|model.onnx|checkpoint.pt [--boxes ...]``

Registered with the teachers by name (``pseudolabel.registry``), it lives beside the student it
runs: a plug-in of the layer that consumes datasets, importing the labelling layer, never the
other way round.

- Weights: a run directory (``gaitdata train --out``) uses its ``model.onnx`` with onnxruntime on
  CPU when present, else ``best.pt`` with PyTorch (the GPU with ``--device cuda``); an ``.onnx``
  file is run by onnxruntime with the preprocessing stored in its own metadata; a ``.pt``
  checkpoint (fp32, pruned or int8) by PyTorch.
- Top-down: person boxes come from the usual proposers (``--boxes labels:SET``, ``depth``,
  ``detector``, ``json:FILE``); ``None`` for an image means the whole image is one box, an empty
  array means no person.
- Per pose: ``bbox`` = the input box, keypoints in image pixels, confidence = the heatmap peak
  clipped to [0, 1]; score = mean confidence times the box score (a fifth box column).
- Over each recording, the poses of every track are made left/right consistent
  (:mod:`gaitdata.student.consistency`, option ``consistency``; in side views the registered
  depth, when the root has it, says which leg is nearer the camera) and smoothed over time
  (``smooth_sigma`` frames, 0: off), before the usual post-processing.

The label set records the student's file, its SHA-256, the architecture and the export it was
trained on (``teacher_config.extra``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gaitdata.io import sha256_file
from gaitdata.labels import decode_keypoints, encode_keypoints
from gaitdata.records import Pose
from pseudolabel.registry import TeacherConfig, pick_device, register_teacher


class StudentTeacher:
    """A gaitdata student (ONNX or PyTorch) behind the teacher protocol; see the module docstring."""

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str = "auto",
        *,
        flip: bool = False,
        batch_size: int = 64,
        consistency: bool = True,
        smooth_sigma: float = 1.0,
    ) -> None:
        from gaitdata.student.consistency import ConsistencyConfig
        from gaitdata.student.inference import StudentPredictor, resolve_student_weights

        self.device = _device(device)
        resolve_student_weights(weights, self.device)  # a clear error before anything loads
        self.predictor = StudentPredictor(weights, self.device, batch_size=batch_size, flip=flip)
        self.weights_path = self.predictor.path
        self.weights_hash = sha256_file(self.weights_path)
        self.consistency = ConsistencyConfig(smooth_sigma=smooth_sigma) if consistency else None
        pre, meta = self.predictor.pre, self.predictor.metadata
        self.cfg = TeacherConfig(
            name="student",
            input_size=pre.input_size,
            mean=tuple(pre.mean),
            std=tuple(pre.std),
            channel_order="RGB",
            schema=pre.schema,
            top_down=True,
            source=f"gaitdata student ({self.predictor.kind}) from {self.weights_path}",
            license="as the data and teacher the student was trained on",
            weights_file=Path(self.weights_path).name,
            extra={
                "backend": self.predictor.backend,
                "kind": self.predictor.kind,
                "architecture": meta.get("architecture"),
                "training_data": meta.get("training_data"),
                "box_scale": pre.box_scale,
                "box_aspect": pre.box_aspect,
                "heatmap_stride": pre.heatmap_stride,
                "flip_test": flip,
                "consistency": self.consistency.to_dict() if self.consistency else None,
                "confidence": "heatmap peak clipped to [0, 1]",
                "score": "mean joint confidence x box score (when boxes carry one)",
                "no_boxes": "boxes=None -> whole image as one box; an empty (0, 4) array -> no poses",
            },
        )

    def predict(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray | None] | None = None) -> list[list[Pose]]:
        boxes = [None] * len(images) if boxes is None else list(boxes)
        if len(boxes) != len(images):
            raise ValueError(f"got {len(images)} images but {len(boxes)} box arrays")
        valid, scores = [], []
        for i, (img, b) in enumerate(zip(images, boxes, strict=True)):
            if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"image {i}: expected an RGB array of shape (H, W, 3), got {getattr(img, 'shape', None)}")
            if b is None:
                h, w = img.shape[:2]
                b = np.array([[0.0, 0.0, w, h]])
            b = np.asarray(b, np.float64)
            b = np.zeros((0, 4)) if b.size == 0 else (b[None] if b.ndim == 1 else b)
            if b.ndim != 2 or b.shape[1] not in (4, 5):
                raise ValueError(f"image {i}: boxes must be (N, 4) x, y, w, h or (N, 5) with a score; got {b.shape}")
            s = b[:, 4] if b.shape[1] >= 5 else np.ones(len(b))
            ok = np.isfinite(b[:, :4]).all(1) & (b[:, 2] > 0) & (b[:, 3] > 0) if len(b) else np.zeros(0, bool)
            valid.append(b[ok, :4])
            scores.append(s[ok])
        kps = self.predictor.predict(images, valid)
        out: list[list[Pose]] = []
        for b, s, kp in zip(valid, scores, kps, strict=True):
            out.append([Pose(bbox=tuple(b[j]), score=float(kp[j, :, 2].mean() * s[j]), keypoints=kp[j])
                        for j in range(len(b))])  # fmt: skip
        return out

    def reset(self) -> None:
        """No state between recordings (consistency runs over a whole recording in refine_recording)."""

    def refine_recording(self, rows: list[dict[str, Any]], near_depths: list[Any] | None = None) -> None:
        """Left/right consistency (and smoothing) along each track of one recording's label rows, in
        place; per-joint arrays in ``near_depths`` (one per row) follow their joints."""
        if self.consistency is None:
            return
        from gaitdata.student.consistency import consistent_persons, limb_chains
        from pseudolabel.postprocess import assign_tracks

        idx = [i for i, r in enumerate(rows) if r.get("has_person")]
        if len(idx) < 2:
            return
        k = self.cfg.schema.num_keypoints
        fi = np.array([int(rows[i]["frame_index"]) for i in idx])
        boxes = np.array([[rows[i][f"bbox_{c}"] for c in "xywh"] for i in idx], np.float64)
        kp = np.array([decode_keypoints(rows[i]["keypoints"], k) for i in idx])
        tracks = assign_tracks(fi, boxes)
        depth = None
        if near_depths is not None and any(near_depths[i] is not None for i in idx):
            depth = np.array([np.full(k, np.nan) if near_depths[i] is None else np.asarray(near_depths[i], float)
                              for i in idx])  # fmt: skip
        fixed, swapped = consistent_persons(np.zeros(len(idx), dtype=object), tracks, fi, kp, boxes[:, 3],
                                            self.cfg.schema, self.consistency, depth)  # fmt: skip
        chains = limb_chains(self.cfg.schema)
        for n, i in enumerate(idx):
            rows[i]["keypoints"] = encode_keypoints(fixed[n])
            if near_depths is not None and near_depths[i] is not None and swapped[n].any():
                perm = np.arange(k)
                for c, chain in enumerate(chains):
                    if swapped[n, c]:
                        for a, b in chain:
                            perm[a], perm[b] = b, a
                near_depths[i] = np.asarray(near_depths[i])[perm]


def _device(device: str) -> str:
    """``auto``: CUDA when torch sees a GPU, else CPU (without torch installed: CPU, for ONNX)."""
    if device != "auto":
        return pick_device(device)
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


@register_teacher("student")
def create_student_teacher(weights: str | os.PathLike | None = None, device: str = "auto", **opts: Any) -> StudentTeacher:
    """Factory: ``create_teacher("student", weights=RUN_DIR|model.onnx|checkpoint.pt, device="auto",
    flip=False, batch_size=64, consistency=True, smooth_sigma=1.0)``."""
    return StudentTeacher(weights=weights, device=device, **opts)
