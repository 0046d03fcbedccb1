"""``gaitdata compress MODEL --method slim|int8|onnx``: the compressed variants of a trained student.

Outputs go next to the source checkpoint, in its run directory:

- ``slim``  -> ``pruned.pt``: channel pruning to a MAC budget (``macs_reduction`` of the fp32
  model's multiply-accumulates removed) in ``rounds`` rounds; each round ranks the channels by a
  first-order Taylor importance on training crops, removes the least important per MAC saved
  (:func:`gaitdata.student.slim.select_budget`, never below ``min_keep`` of a layer's width) and
  fine-tunes on the training export with distillation from the fp32 model (``distill_alpha``).
- ``int8``  -> ``int8.pt`` (or ``pruned_int8.pt`` from ``pruned.pt``), calibrated on training crops
- ``onnx``  -> ``model.onnx`` (or ``pruned.onnx``), checked with onnxruntime; the file carries its
  preprocessing in its metadata (:func:`gaitdata.student.quant.onnx_metadata`)

Each pruned or int8 result is checked against the fp32 model on the validation part of the
training export (PCK@0.1 against its labels): a drop above ``tolerance`` is recorded as a miss in
``compress.json`` (``check.within_tolerance``), the CLI says so, and the evaluation report marks it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gaitdata.errors import GaitdataError, require
from gaitdata.io import atomic_write_json

METHODS = ("slim", "int8", "onnx")
DEFAULT_MACS_REDUCTION = 0.3
DEFAULT_TOLERANCE = 0.02  # PCK@0.1 (fraction) a variant may lose against fp32 on validation data


def calibration_crops(ckpt: dict[str, Any], n: int = 64, split: str | None = None) -> np.ndarray:
    """Up to ``n`` un-augmented crops of the checkpoint's training export (evenly spaced)."""
    ds = _crop_dataset(ckpt, n, split)
    return np.stack([ds[i]["image"] for i in range(len(ds))])


def _crop_dataset(ckpt: dict[str, Any], n: int | None, split: str | None, require_any: bool = True):
    from gaitdata.student.checkpoint import schema_of
    from gaitdata.student.data import CropDataset, load_coco_instances
    from gaitdata.student.models import StudentArch

    data = ckpt.get("data") or {}
    if not data.get("export"):
        raise GaitdataError(
            f"{ckpt.get('path')}: no record of its training export; compression needs its crops: retrain with "
            f"gaitdata train"
        )
    arch = StudentArch.from_dict(ckpt["arch"])
    coco = Path(data["export"]) / f"{split or data.get('train_split', 'train')}.json"
    insts, _ = load_coco_instances(coco, data["image_root"], schema_of(ckpt), require=require_any)
    if n is not None and insts:
        idx = np.unique(np.linspace(0, len(insts) - 1, min(n, len(insts))).round().astype(int))
        insts = [insts[i] for i in idx]
    return CropDataset(insts, arch.input_size, arch.heatmap_size, schema_of(ckpt))


def compress(
    model_path: str | os.PathLike,
    method: str,
    *,
    macs_reduction: float = DEFAULT_MACS_REDUCTION,
    rounds: int = 3,
    min_keep: float = 0.25,
    finetune_epochs: int = 6,
    finetune_lr: float | None = None,
    distill_alpha: float = 0.9,
    calibration: int = 64,
    tolerance: float = DEFAULT_TOLERANCE,
    check: bool = True,
    out: str | os.PathLike | None = None,
    progress: bool = False,
    ratio: float | None = None,
) -> Path:
    """Compress a student (run directory or checkpoint) with ``method`` in slim | int8 | onnx.

    Returns the written file; its summary (sizes, MACs, the validation check) is added to the run's
    ``compress.json``. slim: ``macs_reduction`` of the MACs removed in ``rounds`` rounds with
    ``finetune_epochs`` epochs of fine-tuning in all (spread over the rounds; 0: prune only) at
    ``finetune_lr`` (default half the training rate), distilled from the fp32 model with
    ``distill_alpha``; no layer below ``min_keep`` of its width. ``calibration``: crops for int8
    calibration, Taylor importance and the ONNX check. ``check``: compare slim/int8 results with
    the fp32 model on the validation part (``tolerance``: PCK@0.1 it may lose).
    ``ratio`` is the former name of ``macs_reduction`` (deprecated).
    """
    require("torch", "train")
    from gaitdata.student.checkpoint import load_checkpoint, model_from_checkpoint

    if method not in METHODS:
        raise GaitdataError(f"unknown compression method {method!r}; valid: {', '.join(METHODS)}")
    if ratio is not None:
        warnings.warn("compress(ratio=...) is deprecated: use macs_reduction=", DeprecationWarning, stacklevel=2)
        macs_reduction = ratio
    if not 0.0 < macs_reduction < 1.0:
        raise GaitdataError(f"macs_reduction must be in (0, 1), got {macs_reduction}")
    ckpt = load_checkpoint(model_path)
    src = Path(ckpt["path"])
    if ckpt.get("kind") == "int8":
        raise GaitdataError(f"{src} is already int8; compress the fp32 (best.pt) or pruned (pruned.pt) checkpoint")
    model = model_from_checkpoint(ckpt)
    summary: dict[str, Any] = {"source": str(src), "method": method}
    if method == "slim":
        target = Path(out) if out else src.parent / "pruned.pt"
        compressed = compress_slim(ckpt, model, target, summary, macs_reduction=macs_reduction, rounds=rounds,
                                   min_keep=min_keep, finetune_epochs=finetune_epochs, finetune_lr=finetune_lr,
                                   distill_alpha=distill_alpha, calibration=calibration, progress=progress)  # fmt: skip
    elif method == "int8":
        prefix = "pruned_" if ckpt.get("kind") == "slim" else ""
        target = Path(out) if out else src.parent / f"{prefix}int8.pt"
        compressed = compress_int8(ckpt, model, target, summary, calibration)
    else:
        prefix = "pruned" if ckpt.get("kind") == "slim" else "model"
        target = Path(out) if out else src.parent / f"{prefix}.onnx"
        compress_onnx(ckpt, model, target, summary, calibration)
        compressed = None
    if check and compressed is not None:
        summary["check"] = validation_check(ckpt, model, compressed, tolerance)
    summary["output"] = str(target)
    summary["size_bytes"] = target.stat().st_size
    record_summary(target.parent, target.name, summary)
    return target


def record_summary(run_dir: Path, name: str, summary: dict[str, Any]) -> None:
    log = run_dir / "compress.json"
    prev = json.loads(log.read_text()) if log.is_file() else {}
    prev[name] = summary
    atomic_write_json(log, prev)


def _strip(ckpt: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ckpt.items() if k not in ("optimizer", "scheduler", "scaler", "path", "format", "version")}


# ------------------------------------------------------------------------------------------------
# slim: budgeted, iterative pruning with distilled fine-tuning


def compress_slim(ckpt: dict[str, Any], model, target: Path, summary: dict[str, Any], *, macs_reduction: float,
                  rounds: int, min_keep: float, finetune_epochs: int, finetune_lr: float | None,
                  distill_alpha: float, calibration: int, progress: bool):  # fmt: skip
    """Prune ``model`` to the MAC budget in rounds with fine-tuning; writes ``target``; returns the model."""
    from gaitdata.student.checkpoint import save_checkpoint
    from gaitdata.student.models import count_flops, count_parameters
    from gaitdata.student.slim import prunable_groups, prune, select_budget

    if rounds < 1:
        raise GaitdataError(f"rounds must be at least 1, got {rounds}")
    base_macs = count_flops(model)
    units = {g.name: model.state_dict()[f"{g.score_bn}.weight"].shape[0] // g.chunk for g in prunable_groups(model)}
    floors = {n: max(1, math.ceil(min_keep * u)) for n, u in units.items()}
    batches = _importance_batches(ckpt, calibration)
    per_round = _spread(finetune_epochs, rounds)
    current, history = model, []
    for r in range(1, rounds + 1):
        goal = base_macs * (1.0 - macs_reduction * r / rounds)
        keep = select_budget(current, goal, _importance(current, batches), floors)
        current = prune(current, keep)
        row: dict[str, Any] = {"round": r, "target_macs": int(goal), "macs": count_flops(current)}
        if per_round[r - 1] > 0:
            current, ft_metrics = finetune(current, ckpt, model, per_round[r - 1], finetune_lr, distill_alpha,
                                           target, progress)  # fmt: skip
            row["val_pck"] = ft_metrics.get("val_pck")
        history.append(row)
    macs = count_flops(current)
    summary.update(
        macs_reduction_target=macs_reduction, rounds=rounds, min_keep=min_keep, finetune_epochs=finetune_epochs,
        distill_alpha=distill_alpha, params_before=count_parameters(model), params_after=count_parameters(current),
        macs_before=base_macs, macs_after=macs, macs_reduction=1.0 - macs / base_macs, budget_met=macs <= base_macs * (1 - macs_reduction) * 1.001,
        channels_removed={k: int(model.widths[k] - current.widths[k]) for k in model.widths
                          if model.widths[k] != current.widths[k]},
        history=history,
    )  # fmt: skip
    pruned_ckpt = {
        **_strip(ckpt), "kind": "slim", "arch": current.arch.to_dict(), "state_dict": current.state_dict(),
        "prune": {"macs_reduction": macs_reduction, "rounds": rounds, "min_keep": min_keep, "source": ckpt["path"]},
    }  # fmt: skip
    save_checkpoint(target, pruned_ckpt)
    return current.eval()


def _spread(epochs: int, rounds: int) -> list[int]:
    """``epochs`` fine-tuning epochs over ``rounds`` rounds, the remainder on the last rounds."""
    base, extra = divmod(max(0, epochs), rounds)
    return [base + (1 if i >= rounds - extra else 0) for i in range(rounds)]


def _importance_batches(ckpt: dict[str, Any], n: int, batch_size: int = 16) -> list[dict[str, Any]]:
    import torch

    ds = _crop_dataset(ckpt, n, None)
    items = [ds[i] for i in range(len(ds))]
    out = []
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        out.append({k: torch.from_numpy(np.stack([it[k] for it in chunk])) for k in ("image", "target", "weight")})
    return out


def _importance(model, batches: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    from gaitdata.student.slim import taylor_importance
    from gaitdata.student.trainer import heatmap_loss

    return taylor_importance(model, batches, lambda m, b: heatmap_loss(m(b["image"]), b["target"], b["weight"]))


def finetune(pruned, ckpt: dict[str, Any], fp32, epochs: int, lr: float | None, distill_alpha: float, target: Path,
             progress: bool):  # fmt: skip
    """Fine-tune a pruned model on the training export, distilling the fp32 model's heatmaps;
    returns the tuned model and its last validation metrics."""
    from gaitdata.student.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
    from gaitdata.student.trainer import train

    data = ckpt.get("data") or {}
    if not data.get("export"):
        return pruned, {}
    tmp = target.with_name(f".{target.stem}.round.pt")
    ft_dir = target.parent / f".{target.stem}_finetune"
    save_checkpoint(tmp, {**_strip(ckpt), "kind": "slim", "arch": pruned.arch.to_dict(), "state_dict": pruned.state_dict()})
    cfg = dict(ckpt.get("config") or {})
    for k in ("model", "epochs", "seed", "init_from", "teacher_weights", "slim_l1", "teacher_input_size",
              "distill_alpha", "lr", "warmup_epochs"):  # fmt: skip
        cfg.pop(k, None)
    base_lr = float((ckpt.get("config") or {}).get("lr", 2e-3))
    try:
        train(
            data["root"], data["export"], model=(ckpt.get("config") or {}).get("model", "student"), epochs=epochs,
            out=ft_dir, seed=int((ckpt.get("config") or {}).get("seed", 0)), progress=progress, overwrite=True,
            image_root=data["image_root"], train_split=data.get("train_split", "train"),
            val_split=data.get("val_split", "val"), init_from=tmp, teacher_model=fp32.train(False),
            teacher_input_size=tuple(pruned.arch.input_size), distill_alpha=distill_alpha, slim_l1=0.0,
            lr=lr if lr is not None else base_lr * 0.5, warmup_epochs=0.0, **cfg,
        )  # fmt: skip
        tuned = load_checkpoint(ft_dir / "last.pt")
        return model_from_checkpoint(tuned), tuned.get("metrics", {})
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(ft_dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# int8 and ONNX


def compress_int8(ckpt: dict[str, Any], model, target: Path, summary: dict[str, Any], calibration: int):
    import torch

    from gaitdata.student.checkpoint import save_checkpoint
    from gaitdata.student.quant import quantize_int8

    crops = calibration_crops(ckpt, calibration)
    q = quantize_int8(model, crops)
    x = torch.as_tensor(crops[: min(16, len(crops))])
    with torch.no_grad():
        ref = model(x)
        diff = float((ref - q(x)).abs().max())
        scale = float(ref.abs().max())
    save_checkpoint(target, {**_strip(ckpt), "kind": "int8", "source_kind": ckpt.get("kind", "fp32"),
                             "state_dict": q.state_dict(), "calibration_crops": len(crops)})  # fmt: skip
    summary.update(calibration_crops=len(crops), max_abs_diff=diff, heatmap_max=scale)
    return q


def compress_onnx(ckpt: dict[str, Any], model, target: Path, summary: dict[str, Any], calibration: int) -> None:
    from gaitdata.student.checkpoint import schema_of
    from gaitdata.student.quant import export_onnx, onnx_metadata

    crops = calibration_crops(ckpt, min(calibration, 8))
    meta = onnx_metadata(model.arch, schema_of(ckpt), ckpt)
    summary.update(export_onnx(model, target, crops, metadata=meta))


# ------------------------------------------------------------------------------------------------
# the check against fp32


def validation_check(ckpt: dict[str, Any], fp32, variant, tolerance: float) -> dict[str, Any] | None:
    """PCK@0.1 (and mean OKS) of the fp32 model and of ``variant`` on the validation part of the
    training export, against its labels; None when the export has no validation part."""
    from gaitdata.student.trainer import dataset_metrics

    data = ckpt.get("data") or {}
    val = Path(data.get("export") or ".") / f"{data.get('val_split', 'val')}.json"
    if not data.get("export") or not val.is_file():
        return None
    ds = _crop_dataset(ckpt, None, data.get("val_split", "val"), require_any=False)
    if len(ds) == 0:
        return None
    ref = dataset_metrics(fp32, ds)
    got = dataset_metrics(variant, ds)
    drop = ref["pck"] - got["pck"]
    return {
        "metric": "PCK@0.1", "against": "validation labels", "part": data.get("val_split", "val"),
        "persons": len(ds), "reference": ref["pck"], "value": got["pck"], "drop": drop,
        "reference_oks": ref["oks"], "value_oks": got["oks"], "tolerance": tolerance,
        "within_tolerance": bool(drop <= tolerance + 1e-12),
    }  # fmt: skip
