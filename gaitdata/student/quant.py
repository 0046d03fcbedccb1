"""Post-training int8 quantisation (FX graph mode, x86/fbgemm backend) and ONNX export.

int8: ``prepare_fx`` fuses conv + BN + ReLU and inserts observers, calibration crops run through
it, ``convert_fx`` produces quantised kernels (per-channel int8 weights, uint8 activations). The
checkpoint stores the architecture and the converted state_dict; loading rebuilds the same graph
(prepare + convert on a dummy input) and loads the state, so no pickled code is ever needed.

ONNX: ``torch.onnx.export`` at opset 17 with a dynamic batch axis; the export is checked with
onnxruntime on the calibration crops (max abs difference must stay below ``ONNX_TOLERANCE``). The
file carries its preprocessing in its metadata (:func:`onnx_metadata`, keys ``gaitdata.*``, values
JSON), so that other tools can run it without this package: input size and layout, pixel scale,
mean and std, how a person box becomes the crop (centre, aspect, scale), the heatmap stride and
decoding, keypoint names, skeleton, flip pairs and the schema version.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gaitdata.errors import GaitdataError, require

ONNX_TOLERANCE = 1e-4  # max abs difference of heatmaps, onnxruntime vs PyTorch (fp32)
QUANT_BACKEND = "x86"
ONNX_META_VERSION = 1  # of the gaitdata.* metadata keys
ONNX_META_PREFIX = "gaitdata."


def _qmap():
    from torch.ao.quantization import get_default_qconfig_mapping

    return get_default_qconfig_mapping(QUANT_BACKEND)


def _set_engine() -> None:
    import torch

    engines = torch.backends.quantized.supported_engines
    torch.backends.quantized.engine = QUANT_BACKEND if QUANT_BACKEND in engines else "fbgemm"


def quantize_int8(model, calibration: Any, batch_size: int = 16):
    """An int8 copy of an fp32 student, calibrated on ``calibration`` ((N, 3, H, W) crops)."""
    torch = require("torch", "train")
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    _set_engine()
    model = _clone(model).eval()
    calib = torch.as_tensor(np.asarray(calibration), dtype=torch.float32)
    if calib.ndim != 4 or len(calib) == 0:
        raise GaitdataError(
            "int8 calibration needs at least one crop (N, 3, H, W); the export has none usable"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model, _qmap(), example_inputs=(calib[:1],))
        with torch.no_grad():
            for i in range(0, len(calib), batch_size):
                prepared(calib[i : i + batch_size])
        q = convert_fx(prepared)
    q.arch = model.arch
    return q.eval()


def _clone(model):
    from gaitdata.student.models import StudentNet

    new = StudentNet(model.arch)
    new.load_state_dict(model.state_dict())
    return new


def load_int8(ckpt: dict[str, Any]):
    """Rebuild an int8 student from its checkpoint (see module docstring)."""
    torch = require("torch", "train")
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from gaitdata.student.models import StudentArch, StudentNet

    _set_engine()
    arch = StudentArch.from_dict(ckpt["arch"])
    model = StudentNet(arch).eval()
    x = torch.zeros(1, 3, *arch.input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model, _qmap(), example_inputs=(x,))
        prepared(x)
        q = convert_fx(prepared)
    try:
        q.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise GaitdataError(
            f"{ckpt.get('path', 'checkpoint')}: int8 weights do not fit the architecture "
            f"({str(exc).splitlines()[0][:200]}); re-run gaitdata compress --method int8"
        ) from exc
    q.arch = arch
    return q.eval()


def onnx_metadata(arch: Any, schema: Any, ckpt: dict[str, Any] | None = None) -> dict[str, Any]:
    """The preprocessing and output contract of a student, as ONNX metadata (values JSON-encoded
    by :func:`export_onnx`)."""
    from gaitdata.student.data import BOX_SCALE, PIXEL_MEAN

    ckpt = ckpt or {}
    h, w = arch.input_size
    hh, hw = arch.heatmap_size
    return {
        "schema_version": ONNX_META_VERSION,
        "model": "gaitdata student SPPE (top-down, heatmaps)",
        "architecture": arch.to_dict(),
        "kind": ckpt.get("kind", "fp32"),
        "input_name": "input",
        "input_size": [h, w],
        "input_layout": "NCHW, RGB, float32",
        "pixel_scale": 1.0 / 255.0,
        "mean": list(PIXEL_MEAN),
        "std": [1.0, 1.0, 1.0],
        "normalization": "x = (rgb / 255 - mean) / std",
        "box_format": "x, y, w, h in image pixels",
        "box_aspect": w / h,
        "box_scale": BOX_SCALE,
        "crop": (
            "centre of the box; width or height enlarged to box_aspect (w / h); both times box_scale; "
            "one affine warp (no rotation) of that region to input_size, zero border"
        ),
        "output_name": "heatmaps",
        "heatmap_size": [hh, hw],
        "heatmap_stride": h // hh,
        "decode": (
            "per keypoint: argmax of its heatmap, sub-pixel by a parabola through the log of the "
            "(Gaussian-smoothed) peak and its neighbours; times heatmap_stride -> crop pixels; "
            "inverse of the crop affine -> image pixels; confidence = peak value clipped to [0, 1]"
        ),
        "keypoint_names": list(schema.keypoints),
        "skeleton": [list(e) for e in schema.skeleton],
        "flip_pairs": [list(p) for p in schema.flip_pairs],
        "keypoint_schema": schema.name,
        "oks_sigmas": list(schema.sigmas),
        "training_data": (ckpt.get("data") or {}).get("export"),
    }


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``gaitdata.*`` metadata of an ONNX student (decoded); raises when the file has none."""
    import json

    onnx = require("onnx", "train")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # not a protobuf at all, truncated file
        raise GaitdataError(f"{path} is not a readable ONNX file ({type(exc).__name__}); export it again") from exc
    meta = {
        p.key[len(ONNX_META_PREFIX) :]: json.loads(p.value)
        for p in proto.metadata_props
        if p.key.startswith(ONNX_META_PREFIX)
    }
    if "schema_version" not in meta:
        raise GaitdataError(
            f"{path} carries no gaitdata preprocessing metadata; export it with gaitdata compress --method onnx"
        )
    if int(meta["schema_version"]) > ONNX_META_VERSION:
        raise GaitdataError(
            f"{path}: metadata schema version {meta['schema_version']} is newer than this gaitdata "
            f"understands ({ONNX_META_VERSION}); upgrade gaitdata"
        )
    return meta


def export_onnx(
    model, path: str | os.PathLike, example: Any, opset: int = 17, metadata: dict[str, Any] | None = None
) -> dict[str, float]:
    """Export an fp32 student to ONNX and check it with onnxruntime on ``example`` crops.

    ``metadata`` (e.g. :func:`onnx_metadata`) is stored as ``gaitdata.<key>`` = JSON value.
    Returns ``{"max_abs_diff": ..., "tolerance": ONNX_TOLERANCE}``; raises when the outputs differ
    by more than the tolerance.
    """
    import json

    torch = require("torch", "train")
    onnx = require("onnx", "train")
    ort = require("onnxruntime", "train")
    from gaitdata.io import atomic_write_bytes

    model = model.eval()
    x = torch.as_tensor(np.asarray(example), dtype=torch.float32)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.export")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x[:1],),
            str(tmp),
            opset_version=opset,
            input_names=["input"],
            output_names=["heatmaps"],
            dynamic_axes={"input": {0: "batch"}, "heatmaps": {0: "batch"}},
            dynamo=False,
        )
    try:
        proto = onnx.load(str(tmp))
        for key, value in (metadata or {}).items():
            entry = proto.metadata_props.add()
            entry.key = ONNX_META_PREFIX + key
            entry.value = json.dumps(value)
        onnx.checker.check_model(proto)
        data = proto.SerializeToString()
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_bytes(path, data)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(x).numpy()
    got = sess.run(["heatmaps"], {"input": x.numpy()})[0]
    diff = float(np.abs(ref - got).max())
    if diff > ONNX_TOLERANCE:
        raise GaitdataError(
            f"ONNX export {path} differs from PyTorch by {diff:.2e} (tolerance {ONNX_TOLERANCE:.0e}); "
            f"check the onnxruntime version"
        )
    return {"max_abs_diff": diff, "tolerance": ONNX_TOLERANCE, "opset": opset, "metadata_keys": len(metadata or {})}
