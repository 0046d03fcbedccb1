"""What each model costs, measured in the same run: latency, parameters, multiply-accumulates, size.

Every row names what was measured and on what: ``per`` is ``crop`` (a top-down model on one person
box) or ``frame`` (a model that finds the person itself), ``weights`` says whether the weights are
the trained ones or random (latency and MACs do not depend on weights, accuracy does), and
``accuracy`` says whether an accuracy figure of the same model is in the report. A plot or table
pairs accuracy with cost only for rows where that is the same model.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np


def measure_latency(model, input_size, device=None, warmup: int = 3, runs: int = 10, batch: int = 1) -> float:
    """Median milliseconds per forward pass of ``batch`` crops."""
    import torch

    device = device or torch.device("cpu")
    x = torch.randn(batch, 3, *input_size, device=device)
    times = []
    with torch.no_grad():
        for i in range(warmup + runs):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def model_cost(
    name: str, model, fp32_model, input_size, path: Path | None, *, gpu: bool, runs: int = 10
) -> dict[str, Any]:
    """Cost row of a PyTorch model measured on random crops (int8 models count their fp32 twin's MACs)."""
    import torch

    from gaitdata.student.models import count_flops, count_parameters

    row = {
        "model": name,
        "params": count_parameters(fp32_model),
        "macs": count_flops(fp32_model, tuple(input_size)),
        "size_bytes": path.stat().st_size if path is not None and path.is_file() else None,
        "input": f"{input_size[0]}x{input_size[1]}",
        "cpu_ms": measure_latency(model, input_size, warmup=min(3, runs), runs=runs),
        "gpu_ms": None,
        "per": "crop",
        "weights": "trained",
        "accuracy": True,
    }
    if gpu and not name.endswith("int8"):
        dev = torch.device("cuda")
        m = fp32_model.to(dev)
        row["gpu_ms"] = measure_latency(m, input_size, dev, warmup=min(3, runs), runs=runs)
        fp32_model.to("cpu")
    return row


def fastpose_cost(teacher_weights: str | None, *, gpu: bool, runs: int = 5, accuracy: bool = False) -> dict[str, Any] | None:
    """FastPose-R50 (AlphaPose's architecture) per crop; random weights unless a checkpoint is given."""
    try:
        from pseudolabel.models.fastpose import build_fastpose_r50
    except ImportError:
        return None
    import torch

    torch.manual_seed(0)
    t = build_fastpose_r50().eval()
    path = Path(teacher_weights) if teacher_weights else None
    if path is not None:
        from pseudolabel.checkpoints import load_checkpoint

        load_checkpoint(path, t, expected="AlphaPose fast_res50_256x192.pth")
    row = model_cost("FastPose-R50", t, t, (256, 192), path, gpu=gpu, runs=runs)
    row["accuracy"] = accuracy
    if path is None:
        row["size_bytes"] = sum(p.numel() * 4 for p in t.state_dict().values() if p.is_floating_point())
        row["weights"] = "random"
    return row


def mediapipe_cost(images: list[np.ndarray], mode: str = "video") -> dict[str, Any] | None:
    """BlazePose (the mediapipe teacher) per frame, timed on real frames (it finds the person
    itself, so its latency includes its own detection or tracking). None without mediapipe."""
    try:
        from pseudolabel.registry import create_teacher

        teacher = create_teacher("mediapipe", mode=mode)
    except Exception:  # mediapipe missing or unusable here: no row rather than a wrong one
        return None
    try:
        times = []
        for i, img in enumerate(images):
            t = time.perf_counter()
            teacher.predict([img])
            if i > 0:  # the first call initialises the graph
                times.append(time.perf_counter() - t)
    finally:
        close = getattr(teacher, "close", None)
        if callable(close):
            close()
    if not times:
        return None
    h, w = images[0].shape[:2]
    return {
        "model": "teacher mediapipe (BlazePose full)",
        "params": None,
        "macs": None,
        "size_bytes": None,
        "input": f"{h}x{w} frame",
        "cpu_ms": float(np.median(times) * 1000),
        "gpu_ms": None,
        "per": "frame",
        "weights": "bundled",
        "accuracy": True,
    }
