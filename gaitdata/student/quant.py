"""Post-training int8 quantisation (FX graph mode, x86/fbgemm backend) and ONNX export.

int8: ``prepare_fx`` fuses conv + BN + ReLU and inserts observers, calibration crops run through
it, ``convert_fx`` produces quantised kernels (per-channel int8 weights, uint8 activations). The
checkpoint stores the architecture and the converted state_dict; loading rebuilds the same graph
(prepare + convert on a dummy input) and loads the state, so no pickled code is ever needed.

ONNX: ``torch.onnx.export`` at opset 17 with a dynamic batch axis; the export is checked with
onnxruntime on the calibration crops (max abs difference must stay below ``ONNX_TOLERANCE``).
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


def export_onnx(model, path: str | os.PathLike, example: Any, opset: int = 17) -> dict[str, float]:
    """Export an fp32 student to ONNX and check it with onnxruntime on ``example`` crops.

    Returns ``{"max_abs_diff": ..., "tolerance": ONNX_TOLERANCE}``; raises when the outputs differ
    by more than the tolerance.
    """
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
        onnx.checker.check_model(onnx.load(str(tmp)))
        data = tmp.read_bytes()
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
    return {"max_abs_diff": diff, "tolerance": ONNX_TOLERANCE, "opset": opset}
