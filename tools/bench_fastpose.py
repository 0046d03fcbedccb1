"""Throughput of FastPose-R50 (AlphaPose's fast_res50_256x192 architecture), crops per second.

Random weights are saved in the official checkpoint layout and loaded back strictly, so the model
measured is exactly the one the ``alphapose`` teacher runs. Sections:

- CPU, model only, batch 1 and batch 32 (float32, no flip test);
- CPU, the teacher pipeline (crop + normalise + flip test + decode) at batch 32, as a ratio to
  the model-only figure with the flip test's doubled batch;
- GPU (only when CUDA is available): model only at batch 64 with fp16 autocast (AMP) and in
  float32, and the pipeline at batch 64 with AMP.

Run:  .venv/bin/python tools/bench_fastpose.py [--threads N] [--iters N] [--skip-cpu]
Each figure is the best of ``--iters`` timed runs after a warm-up (robust to a shared machine).
Figures depend on the machine; compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from pseudolabel.checkpoints import load_checkpoint
from pseudolabel.models.fastpose import build_fastpose_r50
from pseudolabel.teachers.alphapose import EXPECTED_CHECKPOINT, predict_poses


def official_layout_model(tmp: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    src = build_fastpose_r50()
    path = tmp / "fast_res50_256x192.pth"
    torch.save(src.state_dict(), path)  # a raw state_dict, as AlphaPose publishes it
    model = build_fastpose_r50()
    load_checkpoint(path, model, strict=True, expected=EXPECTED_CHECKPOINT)
    return model.eval()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_rate(model, batch: int, device: str, iters: int, amp: bool = False) -> float:
    x = torch.randn(batch, 3, 256, 192, device=device)
    ctx = torch.autocast(device_type="cuda", dtype=torch.float16) if amp else nullcontext()
    best = float("inf")
    with torch.inference_mode(), ctx:
        model(x)  # warm-up (allocations, cuDNN autotune)
        _sync(device)
        for _ in range(iters):
            t0 = time.perf_counter()
            model(x)
            _sync(device)
            best = min(best, time.perf_counter() - t0)
    return batch / best


def pipeline_rate(model, n_crops: int, device: str, iters: int, amp: bool) -> float:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(4)]
    per = n_crops // len(images)
    boxes = [
        np.array([[40 + (120 * j) % 480, 60, 110, 300] for j in range(per)], dtype=np.float64) for _ in images
    ]
    kw = dict(flip=True, device=device, amp=amp, batch_size=n_crops)
    predict_poses(model, images, boxes, **kw)  # warm-up
    best = float("inf")
    for _ in range(iters):
        t0 = time.perf_counter()
        predict_poses(model, images, boxes, **kw)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return per * len(images) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads (torch)")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per measurement")
    ap.add_argument("--skip-cpu", action="store_true", help="only the GPU section")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = official_layout_model(Path(tmp))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"FastPose-R50 256x192: {n_params:,} parameters, {len(model.state_dict())} state_dict entries")

    if not args.skip_cpu:
        print(f"\nCPU ({args.threads} threads), float32, model only:")
        r1 = model_rate(model, 1, "cpu", max(args.iters * 3, 3))
        r32 = model_rate(model, 32, "cpu", args.iters)
        print(f"  batch 1 : {r1:8.2f} crops/s  ({1000 / r1:.0f} ms/crop)")
        print(f"  batch 32: {r32:8.2f} crops/s  (x{r32 / r1:.2f} vs batch 1)")
        # 16 persons with the flip test = one forward of 32 crops: compare with batch 32
        rp = pipeline_rate(model, 16, "cpu", args.iters, amp=False)
        print(f"  pipeline, flip test, 16 persons per forward: {rp:8.2f} persons/s")
        print(f"  pipeline / model-only (2 crops per person): {rp / (r32 / 2):.2f}")

    if torch.cuda.is_available():
        dev = "cuda"
        gpu = torch.cuda.get_device_name(0)
        model = model.to(dev)
        torch.backends.cudnn.benchmark = True
        it = max(args.iters * 10, 20)
        print(f"\nGPU {gpu}, model only, batch 64:")
        ra = model_rate(model, 64, dev, it, amp=True)
        rf = model_rate(model, 64, dev, it, amp=False)
        print(f"  AMP fp16: {ra:9.1f} crops/s")
        print(f"  float32 : {rf:9.1f} crops/s  (AMP speed-up x{ra / rf:.2f})")
        rpa = pipeline_rate(model, 64, dev, max(args.iters * 3, 5), amp=True)
        r128a = model_rate(model, 128, dev, it, amp=True)  # 64 persons + 64 mirrored crops
        print(f"  pipeline, AMP, flip test, 64 persons per forward: {rpa:9.1f} persons/s")
        print(f"  pipeline / model-only (2 crops per person): {rpa / (r128a / 2):.2f}")
        print(f"  peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    else:
        print("\nGPU section skipped: CUDA is not available")


if __name__ == "__main__":
    main()
