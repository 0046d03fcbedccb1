"""``gaitdata compress MODEL --method slim|int8|onnx``: the compressed variants of a trained student.

Outputs go next to the source checkpoint, in its run directory:

- ``slim``  -> ``pruned.pt`` (network slimming + a short fine-tune on the training export)
- ``int8``  -> ``int8.pt`` (or ``pruned_int8.pt`` from ``pruned.pt``), calibrated on training crops
- ``onnx``  -> ``model.onnx`` (or ``pruned.onnx``), checked with onnxruntime

and a summary per method in ``compress.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gaitdata.errors import GaitdataError, require
from gaitdata.io import atomic_write_json

METHODS = ("slim", "int8", "onnx")


def calibration_crops(ckpt: dict[str, Any], n: int = 64, split: str | None = None) -> np.ndarray:
    """Up to ``n`` un-augmented crops of the checkpoint's training export (evenly spaced)."""
    from gaitdata.student.checkpoint import schema_of
    from gaitdata.student.data import CropDataset, load_coco_instances
    from gaitdata.student.models import StudentArch

    data = ckpt.get("data") or {}
    if not data.get("export"):
        raise GaitdataError(
            f"{ckpt.get('path')}: no record of its training export; calibration needs crops: retrain with gaitdata train"
        )
    arch = StudentArch.from_dict(ckpt["arch"])
    coco = Path(data["export"]) / f"{split or data.get('train_split', 'train')}.json"
    insts, _ = load_coco_instances(coco, data["image_root"], schema_of(ckpt))
    idx = np.unique(np.linspace(0, len(insts) - 1, min(n, len(insts))).round().astype(int))
    ds = CropDataset([insts[i] for i in idx], arch.input_size, arch.heatmap_size, schema_of(ckpt))
    return np.stack([ds[i]["image"] for i in range(len(ds))])


def compress(
    model_path: str | os.PathLike,
    method: str,
    *,
    ratio: float = 0.5,
    min_keep: float = 0.1,
    finetune_epochs: int = 2,
    finetune_lr: float | None = None,
    calibration: int = 64,
    out: str | os.PathLike | None = None,
    progress: bool = False,
) -> Path:
    """Compress a student (run directory or checkpoint) with ``method`` in slim | int8 | onnx.

    Returns the written file. ``ratio``: fraction of prunable channels slimming removes;
    ``finetune_epochs``: epochs of fine-tuning after pruning (0: none), at ``finetune_lr`` (default half
    the training learning rate); ``calibration``: crops used for
    int8 calibration and the ONNX check.
    """
    torch = require("torch", "train")
    from gaitdata.student.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
    from gaitdata.student.models import count_flops, count_parameters

    if method not in METHODS:
        raise GaitdataError(f"unknown compression method {method!r}; valid: {', '.join(METHODS)}")
    ckpt = load_checkpoint(model_path)
    src = Path(ckpt["path"])
    run_dir = src.parent
    if ckpt.get("kind") == "int8":
        raise GaitdataError(
            f"{src} is already int8; compress the fp32 (best.pt) or pruned (pruned.pt) checkpoint"
        )
    prefix = "pruned_" if ckpt.get("kind") == "slim" else ""
    model = model_from_checkpoint(ckpt)
    summary: dict[str, Any] = {"source": str(src), "method": method}

    if method == "slim":
        from gaitdata.student.slim import prune, select_channels

        keep = select_channels(model, ratio, min_keep)
        pruned = prune(model, keep)
        target = Path(out) if out else run_dir / "pruned.pt"
        base = {k: v for k, v in ckpt.items() if k not in ("optimizer", "scheduler", "scaler", "path")}
        pruned_ckpt = {
            **base,
            "kind": "slim",
            "arch": pruned.arch.to_dict(),
            "state_dict": pruned.state_dict(),
            "prune": {"ratio": ratio, "min_keep": min_keep, "source": str(src)},
        }
        summary.update(
            ratio=ratio,
            params_before=count_parameters(model),
            params_after=count_parameters(pruned),
            macs_before=count_flops(model),
            macs_after=count_flops(pruned),
            channels_removed={
                k: int(model.widths[k] - pruned.widths[k])
                for k in model.widths
                if model.widths[k] != pruned.widths[k]
            },
        )
        data = ckpt.get("data") or {}
        if finetune_epochs > 0 and data.get("export"):
            from gaitdata.student.trainer import train

            tmp_ckpt = target.with_name(f".{target.stem}.unfinetuned.pt")
            save_checkpoint(
                tmp_ckpt, {k: v for k, v in pruned_ckpt.items() if k not in ("format", "version")}
            )
            cfg = dict(ckpt.get("config") or {})
            for k in ("model", "epochs", "seed", "init_from", "teacher_weights", "slim_l1"):
                cfg.pop(k, None)
            cfg["lr"] = finetune_lr if finetune_lr is not None else float(cfg.get("lr", 2e-3)) * 0.5
            cfg["warmup_epochs"] = 0.0
            ft_dir = run_dir / f".{target.stem}_finetune"
            try:
                train(
                    data["root"],
                    data["export"],
                    model=(ckpt.get("config") or {}).get("model", "student"),
                    epochs=finetune_epochs,
                    out=ft_dir,
                    seed=int((ckpt.get("config") or {}).get("seed", 0)),
                    progress=progress,
                    overwrite=True,
                    image_root=data["image_root"],
                    train_split=data.get("train_split", "train"),
                    val_split=data.get("val_split", "val"),
                    init_from=tmp_ckpt,
                    **cfg,
                )
                ft = load_checkpoint(ft_dir / "last.pt")
                pruned_ckpt["state_dict"] = ft["state_dict"]
                pruned_ckpt["metrics"] = ft.get("metrics", {})
                summary["finetune_epochs"] = finetune_epochs
                summary["val_pck_after_finetune"] = ft.get("metrics", {}).get("val_pck")
            finally:
                tmp_ckpt.unlink(missing_ok=True)
                shutil.rmtree(ft_dir, ignore_errors=True)
        else:
            summary["finetune_epochs"] = 0
        pruned_ckpt = {k: v for k, v in pruned_ckpt.items() if k not in ("format", "version")}
        save_checkpoint(target, pruned_ckpt)
    elif method == "int8":
        from gaitdata.student.quant import quantize_int8

        crops = calibration_crops(ckpt, calibration)
        q = quantize_int8(model, crops)
        x = torch.as_tensor(crops[: min(16, len(crops))])
        with torch.no_grad():
            diff = float((model(x) - q(x)).abs().max())
            scale = float(model(x).abs().max())
        target = Path(out) if out else run_dir / f"{prefix}int8.pt"
        base = {
            k: v
            for k, v in ckpt.items()
            if k not in ("optimizer", "scheduler", "scaler", "path", "format", "version")
        }
        save_checkpoint(
            target,
            {
                **base,
                "kind": "int8",
                "source_kind": ckpt.get("kind", "fp32"),
                "state_dict": q.state_dict(),
                "calibration_crops": len(crops),
            },
        )
        summary.update(calibration_crops=len(crops), max_abs_diff=diff, heatmap_max=scale)
    else:
        from gaitdata.student.quant import export_onnx

        crops = calibration_crops(ckpt, min(calibration, 8))
        target = Path(out) if out else run_dir / f"{prefix.rstrip('_') or 'model'}.onnx"
        summary.update(export_onnx(model, target, crops))
    summary["output"] = str(target)
    summary["size_bytes"] = target.stat().st_size
    log = run_dir / "compress.json"
    prev = json.loads(log.read_text()) if log.is_file() else {}
    prev[target.name] = summary
    atomic_write_json(log, prev)
    return target
