"""Running a trained student on images and person boxes: ONNX (onnxruntime) or PyTorch.

:class:`StudentPredictor` loads a run directory, a checkpoint (``.pt``) or an exported
``model.onnx``. An ONNX file is run by onnxruntime with the preprocessing its own metadata states
(:func:`gaitdata.student.quant.read_onnx_metadata`), exactly as another tool would; a checkpoint
by PyTorch (on the GPU when one is asked for). A run directory gives onnxruntime on CPU when it
holds ``model.onnx`` and onnxruntime is installed, else PyTorch with ``best.pt``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gaitdata.errors import GaitdataError, require
from gaitdata.schema import KeypointSchema


@dataclass(frozen=True)
class Preprocess:
    """What turns an image and a person box into the network input, and heatmaps back into points."""

    input_size: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pixel_scale: float
    box_aspect: float  # width / height of the crop region
    box_scale: float
    heatmap_stride: int
    schema: KeypointSchema

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> Preprocess:
        names = tuple(meta["keypoint_names"])
        schema = KeypointSchema(
            name=str(meta.get("keypoint_schema", "custom")),
            keypoints=names,
            skeleton=tuple(tuple(e) for e in meta.get("skeleton", ())),
            flip_pairs=tuple(tuple(p) for p in meta.get("flip_pairs", ())),
            sigmas=tuple(meta.get("oks_sigmas") or [0.05] * len(names)),
        )
        h, w = (int(v) for v in meta["input_size"])
        return cls((h, w), tuple(meta["mean"]), tuple(meta["std"]), float(meta["pixel_scale"]),
                   float(meta["box_aspect"]), float(meta["box_scale"]), int(meta["heatmap_stride"]), schema)  # fmt: skip

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> Preprocess:
        from gaitdata.student.checkpoint import schema_of
        from gaitdata.student.models import StudentArch
        from gaitdata.student.quant import onnx_metadata

        return cls.from_metadata(onnx_metadata(StudentArch.from_dict(ckpt["arch"]), schema_of(ckpt), ckpt))


def resolve_student_weights(weights: str | os.PathLike | None, device: str) -> tuple[Path, str]:
    """(file, backend) for ``weights``: a run directory, a ``.pt`` checkpoint or an ``.onnx`` file."""
    if weights is None:
        raise GaitdataError(
            "the student teacher needs weights: --weights RUN_DIR (a gaitdata train run), CHECKPOINT.pt or model.onnx"
        )
    p = Path(weights).expanduser()
    if p.is_dir():
        onnx_file = p / "model.onnx"
        if not device.startswith("cuda") and onnx_file.is_file() and _has_onnxruntime():
            return onnx_file, "onnxruntime"
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name, "torch"
        raise GaitdataError(
            f"{p} holds no model.onnx, best.pt or last.pt; pass a student run directory (gaitdata train --out) "
            f"or a model file"
        )
    if not p.is_file():
        raise GaitdataError(f"student weights not found: {p}; pass a run directory, a .pt checkpoint or a .onnx file")
    if p.suffix == ".onnx":
        return p, "onnxruntime"
    return p, "torch"


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class StudentPredictor:
    """A trained student that maps (image, person boxes) to keypoints; see the module docstring."""

    def __init__(self, weights: str | os.PathLike | None, device: str = "cpu", *, batch_size: int = 64,
                 flip: bool = False) -> None:  # fmt: skip
        self.path, self.backend = resolve_student_weights(weights, device)
        self.device = device
        self.batch_size = int(batch_size)
        self.flip = bool(flip)
        if self.backend == "onnxruntime":
            self._init_onnx()
        else:
            self._init_torch()

    def _init_onnx(self) -> None:
        ort = require("onnxruntime", "train")
        from gaitdata.student.quant import read_onnx_metadata

        self.metadata = read_onnx_metadata(self.path)
        self.pre = Preprocess.from_metadata(self.metadata)
        providers = ["CPUExecutionProvider"]
        if self.device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self._session = ort.InferenceSession(str(self.path), providers=providers)
        self._input = self.metadata.get("input_name", "input")
        self.kind = str(self.metadata.get("kind", "fp32"))
        self.arch = self.metadata.get("architecture")

    def _init_torch(self) -> None:
        torch = require("torch", "train")
        from gaitdata.student.checkpoint import load_checkpoint, model_from_checkpoint
        from gaitdata.student.quant import onnx_metadata

        ckpt = load_checkpoint(self.path)
        self.kind = str(ckpt.get("kind", "fp32"))
        if self.kind == "int8" and self.device.startswith("cuda"):
            raise GaitdataError(f"{self.path} is an int8 (CPU) model; use --device cpu or the fp32 best.pt")
        self.pre = Preprocess.from_checkpoint(ckpt)
        self.metadata = onnx_metadata(_arch(ckpt), self.pre.schema, ckpt)
        self.arch = ckpt["arch"]
        self._model = model_from_checkpoint(ckpt).to(torch.device(self.device))

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.backend == "onnxruntime":
            return self._session.run(None, {self._input: x.astype(np.float32)})[0]
        import torch

        with torch.inference_mode():
            return self._model(torch.from_numpy(x).to(self.device)).float().cpu().numpy()

    def _crops(self, image: np.ndarray, boxes: np.ndarray, flip: bool) -> tuple[np.ndarray, np.ndarray]:
        from gaitdata.student.data import crops_for_boxes

        p = self.pre
        return crops_for_boxes(image, boxes, p.input_size, flip, aspect=p.box_aspect, box_scale=p.box_scale,
                               mean=p.mean, std=p.std, pixel_scale=p.pixel_scale)  # fmt: skip

    def predict(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per image, (N, K, 3) keypoints (x, y, confidence) for its (N, 4) boxes (x, y, w, h)."""
        from gaitdata.student.data import heatmaps_to_image

        crops, mats, flips, fmats, owner = [], [], [], [], []
        for i, (img, b) in enumerate(zip(images, boxes, strict=True)):
            b = np.asarray(b, np.float64).reshape(-1, 4)
            if not len(b):
                continue
            c, m = self._crops(img, b, False)
            crops.append(c)
            mats.append(m)
            owner += [i] * len(b)
            if self.flip:
                c, m = self._crops(img, b, True)
                flips.append(c)
                fmats.append(m)
        k = self.pre.schema.num_keypoints
        out = [np.zeros((0, k, 3), np.float32) for _ in images]
        if not owner:
            return out
        x, mat = np.concatenate(crops), np.concatenate(mats)
        hm = np.concatenate([self._run(x[s : s + self.batch_size]) for s in range(0, len(x), self.batch_size)])
        xy, sc = heatmaps_to_image(hm, mat, self.pre.input_size)
        if self.flip:
            xf = np.concatenate(flips)
            hf = np.concatenate([self._run(xf[s : s + self.batch_size]) for s in range(0, len(xf), self.batch_size)])
            xyf, scf = heatmaps_to_image(hf[:, self.pre.schema.flip_permutation()], np.concatenate(fmats),
                                         self.pre.input_size)  # fmt: skip
            xy, sc = (xy + xyf) / 2, (sc + scf) / 2
        kp = np.concatenate([xy, np.clip(sc, 0.0, 1.0)[..., None]], -1).astype(np.float32)
        owner_arr = np.asarray(owner)
        for i in range(len(images)):
            out[i] = kp[owner_arr == i]
        return out


def _arch(ckpt: dict[str, Any]):
    from gaitdata.student.models import StudentArch

    return StudentArch.from_dict(ckpt["arch"])
