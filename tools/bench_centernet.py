"""CenterNet (one-stage) against FastPose (top-down) labelling throughput on the CPU, in one run.

Both teachers get checkpoints written here in their official layouts with random weights (the
speed does not depend on the weights), the same frames, the same thread count. Two levels:

- model: ``teacher.predict(images, boxes)`` (pre-processing, network, decoding); FastPose gets one
  person box per frame (a gait recording), CenterNet none (it finds the persons itself);
- labelling: ``pseudolabel.runner.label`` on a small dataset root written here (decoding JPEGs,
  depth person boxes for FastPose, post-processing, writing the label set).

Prints frames/s of each and the ratio CenterNet / FastPose. Never asserts times.

    .venv/bin/python tools/bench_centernet.py --frames 6 --threads 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd


def synthetic_frames(
    n: int, h: int, w: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """A textured background with a person-sized foreground block walking across; depth to match."""
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 3)
    rgbs, depths, boxes = [], [], []
    bw, bh = w // 6, int(h * 0.7)
    for i in range(n):
        x = int(w * 0.1 + (w * 0.7 - bw) * i / max(n - 1, 1))
        y = int(h * 0.15)
        img = bg.copy()
        img[y : y + bh, x : x + bw] = (200, 60, 40)
        dep = np.full((h, w), 4000, np.uint16)
        dep[y : y + bh, x : x + bw] = 2000
        rgbs.append(img)
        depths.append(dep)
        boxes.append(np.array([[x, y, bw, bh]], np.float64))
    return np.stack(rgbs), np.stack(depths), boxes


def write_root(path: Path, rgb: np.ndarray, depth: np.ndarray):
    from gaitdata.dataset import DatasetRoot

    root = DatasetRoot(path)
    root.init()
    vid = "bench_walk"
    n, h, w = rgb.shape[:3]
    frows = []
    for i in range(n):
        rp, dp = root.rgb_relpath(vid, i), root.depth_relpath(vid, i)
        for rel, img in ((rp, cv2.cvtColor(rgb[i], cv2.COLOR_RGB2BGR)), (dp, depth[i])):
            root.abspath(rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root.abspath(rel)), img)
        frows.append({"video_id": vid, "frame_index": i, "colour_frame_number": i, "colour_ts_ms": i * 1000 / 30,
                      "rgb_path": rp, "depth_path": dp, "status": "ok"})  # fmt: skip
    root.write_videos(pd.DataFrame([{
        "video_id": vid, "source_path": f"/bench/{vid}.bag", "source_rel": f"{vid}.bag", "kind": "bag",
        "status": "ok", "n_colour_frames": n, "n_depth_frames": n, "n_written": n, "fps": 30.0, "width": w,
        "height": h, "fx": 600.0, "fy": 600.0, "cx": w / 2, "cy": h / 2, "depth_scale": 0.001, "subject": "bench",
    }]))  # fmt: skip
    root.write_frames(pd.DataFrame(frows))
    return root


def official_checkpoints(folder: Path) -> dict[str, Path]:
    import torch

    from pseudolabel.models.dla import build_centernet_dla34

    out = {}
    cn = build_centernet_dla34()
    sd = {f"module.{k}": v for k, v in cn.state_dict().items()}
    sd["module.base.fc.weight"] = torch.zeros(1000, 512, 1, 1)
    sd["module.base.fc.bias"] = torch.zeros(1000)
    out["centernet"] = folder / "multi_pose_dla_3x.pth"
    torch.save({"epoch": 0, "state_dict": sd}, out["centernet"])
    try:
        from pseudolabel.models.fastpose import build_fastpose_r50
    except ImportError as exc:  # FastPose not part of this build
        print(f"FastPose unavailable ({exc}); benchmarking CenterNet only")
        return out
    out["alphapose"] = folder / "fast_res50_256x192.pth"
    torch.save(build_fastpose_r50().state_dict(), out["alphapose"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--size", default="480x640", help="frame HxW")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="model level: best of this many runs")
    ap.add_argument("--flip", action="store_true", help="flip test on for both teachers")
    ap.add_argument("--no-runner", action="store_true", help="model level only")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    import torch

    from gaitdata.errors import GaitdataError
    from pseudolabel.registry import create_teacher

    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    rgb, depth, boxes = synthetic_frames(args.frames, h, w)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpts = official_checkpoints(tmp)
        opts = {
            "centernet": {"flip": args.flip, "score_threshold": 0.3},
            "alphapose": {"flip": args.flip, "amp": False},
        }
        for name, ck in ckpts.items():
            try:
                t = create_teacher(name, weights=str(ck), device="cpu", **opts[name])
            except (GaitdataError, TypeError) as exc:
                print(f"{name}: cannot create the teacher ({exc})")
                continue
            bx = boxes if t.cfg.top_down else None
            t.predict([rgb[0]], None if bx is None else [bx[0]])  # warm-up
            dt = float("inf")
            for _ in range(args.repeat):  # best of: the machine is shared
                t0 = time.perf_counter()
                t.predict(list(rgb), bx)
                dt = min(dt, time.perf_counter() - t0)
            results[name] = {"model_fps": args.frames / dt}
            print(
                f"{name:10s} model:     {args.frames / dt:7.3f} frames/s ({dt / args.frames * 1000:.0f} ms/frame)"
            )
            del t
        if not args.no_runner:
            from pseudolabel.runner import label

            root = write_root(tmp / "root", rgb, depth)
            for name, ck in ckpts.items():
                if name not in results:
                    continue
                t0 = time.perf_counter()
                label(root.path, teacher=name, weights=ck, device="cpu", progress=False, batch_size=4,
                      label_set=f"bench_{name}", **opts[name])  # fmt: skip
                dt = time.perf_counter() - t0
                results[name]["label_fps"] = args.frames / dt
                print(f"{name:10s} labelling: {args.frames / dt:7.3f} frames/s (incl. teacher creation)")
    print(f"frames {args.frames} of {h}x{w}, {args.threads} thread(s), flip {'on' if args.flip else 'off'}, "
          f"deformable conv: {__import__('pseudolabel.models.dcn', fromlist=['x']).deform_backend()}")  # fmt: skip
    if "centernet" in results and "alphapose" in results:
        for level in ("model_fps", "label_fps"):
            if level in results["centernet"]:
                r = results["centernet"][level] / results["alphapose"][level]
                results[f"ratio_{level}"] = r
                print(f"ratio CenterNet / FastPose ({level.split('_')[0]}): {r:.2f}")
    elif "alphapose" not in results:
        print("FastPose not benchmarked: no ratio")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
