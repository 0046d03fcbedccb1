"""Student checkpoints: one dict of plain data + tensors, loadable with ``torch.load(weights_only=True)``.

::

    {"format": "gaitdata-student", "version": 1, "kind": "fp32" | "slim" | "int8",
     "arch": StudentArch.to_dict(), "schema": KeypointSchema.to_dict(),
     "state_dict": {...}, "config": {...training config...}, "epoch": int, "step": int, "world_size": int,
     "optimizer": ..., "scheduler": ..., "scaler": ..., "metrics": {...}}
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from gaitdata.errors import GaitdataError, GaitdataNotFoundError
from gaitdata.io import atomic_write_bytes, load_torch_file
from gaitdata.schema import COCO17, KeypointSchema

FORMAT = "gaitdata-student"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any]) -> Path:
    import torch

    ckpt = {"format": FORMAT, "version": VERSION, **ckpt}
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a student checkpoint; corrupt or foreign files raise a clear error."""
    path = Path(path)
    if path.is_dir():
        path = find_checkpoint(path)
    if not path.is_file():
        raise GaitdataNotFoundError(f"student checkpoint {path} not found; train one with: gaitdata train ROOT")
    ckpt = load_torch_file(path, fix="retrain or copy it again")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        keys = list(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise GaitdataError(
            f"{path} is not a gaitdata student checkpoint (found {keys}); pass a file written by "
            f"gaitdata train/compress (teacher checkpoints go to --teacher-weights)"
        )
    if ckpt.get("version") != VERSION:
        raise GaitdataError(
            f"{path}: student checkpoint version {ckpt.get('version')} is not supported (expects {VERSION})"
        )
    for key in ("arch", "state_dict"):
        if key not in ckpt:
            raise GaitdataError(f"{path}: student checkpoint has no {key!r}; the file is incomplete, retrain")
    ckpt["path"] = str(path)
    return ckpt


def find_checkpoint(run_dir: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        if (run_dir / name).is_file():
            return run_dir / name
    raise GaitdataNotFoundError(
        f"no best.pt or last.pt in {run_dir}; train first with: gaitdata train ROOT --out {run_dir}"
    )


def schema_of(ckpt: dict[str, Any]) -> KeypointSchema:
    return KeypointSchema.from_dict(ckpt["schema"]) if ckpt.get("schema") else COCO17


def model_from_checkpoint(ckpt: dict[str, Any] | str | os.PathLike):
    """Rebuild the network a checkpoint describes (fp32/slim) with its weights, in eval mode."""
    from gaitdata.student.models import StudentArch, StudentNet

    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    if ckpt.get("kind") == "int8":
        from gaitdata.student.quant import load_int8

        return load_int8(ckpt)
    model = StudentNet(StudentArch.from_dict(ckpt["arch"]))
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise GaitdataError(
            f"{ckpt.get('path', 'checkpoint')}: weights do not fit the architecture it names "
            f"({str(exc).splitlines()[0][:300]}...); the file is damaged or foreign"
        ) from exc
    return model.eval()
