"""Labelling throughput: the whole run (decode, inference, post-processing, writes) vs the model alone.

Renders a synthetic walk, writes it as a dataset root, then in one process:

1. model only: the teacher on the same frames, decoded beforehand, in batches of ``--batch-size``;
2. end to end: ``pseudolabel.runner.label`` over the root (frames decoded in background threads).

Prints both rates and their ratio (goal: >= 0.9, the pipeline adds under 10%). Then, when the
``alphapose`` teacher is available, FastPose CPU throughput at batch 1 and 32 with a randomly
initialised checkpoint saved in AlphaPose's official layout (a raw state_dict).

    python tools/bench_label.py --frames 100 --size 640x480
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

ROOT_DIR = Path(__file__).resolve().parents[1]
if str(ROOT_DIR) not in sys.path:
    sys.path.insert(0, str(ROOT_DIR))

from gaitdata.dataset import DatasetRoot  # noqa: E402


def write_root(path: Path, rec) -> DatasetRoot:
    root = DatasetRoot(path)
    root.init()
    vid = "bench_walk"
    rows = []
    for i, img in enumerate(rec.colour):
        rgb, dep = root.rgb_relpath(vid, i), root.depth_relpath(vid, i)
        root.abspath(rgb).parent.mkdir(parents=True, exist_ok=True)
        root.abspath(dep).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root.abspath(rgb)), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(root.abspath(dep)), rec.depth_registered[i])
        rows.append({"video_id": vid, "frame_index": i, "colour_frame_number": i, "colour_ts_ms": i * 1000 / rec.fps,
                     "rgb_path": rgb, "depth_path": dep, "status": "ok"})  # fmt: skip
    h, w = rec.colour.shape[1:3]
    root.write_videos(pd.DataFrame([{
        "video_id": vid, "source_path": "synthetic", "kind": "bag", "status": "ok", "n_colour_frames": len(rows),
        "n_written": len(rows), "fps": rec.fps, "width": w, "height": h, "depth_scale": rec.depth_scale,
    }]))  # fmt: skip
    root.write_frames(pd.DataFrame(rows))
    return root


def bench_teacher(args: argparse.Namespace) -> None:
    from gaitdata.synth import WalkSpec, render_walk
    from pseudolabel.registry import create_teacher
    from pseudolabel.runner import label

    w, h = (int(v) for v in args.size.split("x"))
    print(f"rendering {args.frames} frames at {w}x{h} ...", flush=True)
    rec = render_walk(WalkSpec(n_frames=args.frames, colour_size=(w, h), depth_size=(w, h), seed=3))
    with tempfile.TemporaryDirectory() as tmp:
        root = write_root(Path(tmp) / "root", rec)
        frames = [cv2.cvtColor(cv2.imread(str(root.abspath(root.rgb_relpath("bench_walk", i)))), cv2.COLOR_BGR2RGB)
                  for i in range(args.frames)]  # fmt: skip
        teacher = create_teacher(args.teacher)
        teacher.predict(frames[:2])  # warm-up
        teacher.reset()
        t0 = time.perf_counter()
        for s in range(0, len(frames), args.batch_size):
            teacher.predict(frames[s : s + args.batch_size])
        model_fps = len(frames) / (time.perf_counter() - t0)
        del teacher

        t0 = time.perf_counter()
        summary = label(root.path, teacher=args.teacher, batch_size=args.batch_size, progress=False, overwrite=True)
        e2e_fps = summary.n_frames / (time.perf_counter() - t0)
    print(f"{args.teacher}: model only {model_fps:.1f} frames/s, end to end {e2e_fps:.1f} frames/s "
          f"(decode + post-processing + writes), ratio {e2e_fps / model_fps:.2f} (goal >= 0.90)")  # fmt: skip


def bench_fastpose(args: argparse.Namespace) -> None:
    try:
        import torch

        from pseudolabel.models.fastpose import build_fastpose_r50
        from pseudolabel.registry import create_teacher
    except ImportError as exc:
        print(f"FastPose: not available in this build ({exc}); skipped")
        return
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "fast_res50_256x192.pth"
        torch.save(build_fastpose_r50().state_dict(), ckpt)  # random init, official layout (raw state_dict)
        img = np.full((480, 640, 3), 127, np.uint8)
        for bs in (1, 32):
            teacher = create_teacher("alphapose", weights=str(ckpt), device="cpu", flip=False, batch_size=bs)
            boxes = [np.tile(np.array([[200.0, 60.0, 120.0, 360.0]]), (bs, 1))]
            teacher.predict([img], boxes)  # warm-up
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.fastpose_seconds:
                teacher.predict([img], boxes)
                n += bs
            rate = n / (time.perf_counter() - t0)
            print(f"FastPose-R50 CPU ({args.threads} threads), batch {bs}, no flip: {rate:.1f} crops/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="mediapipe")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for FastPose")
    ap.add_argument("--fastpose-seconds", type=float, default=5.0)
    ap.add_argument("--skip-fastpose", action="store_true")
    args = ap.parse_args()
    bench_teacher(args)
    if not args.skip_fastpose:
        bench_fastpose(args)


if __name__ == "__main__":
    main()
