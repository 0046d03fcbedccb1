"""Benchmark: ingesting frames with labels into FiftyOne, batched vs one sample at a time.

Writes a synthetic dataset root (tiny frames, 16-bit depth, one label set) with N frames, then

- batched: ``gaitdata.browse.build_dataset`` (``add_samples`` in batches, labels converted per
  label set in one pass);
- naive: the same samples, with FiftyOne Label objects, added with ``dataset.add_sample`` one
  at a time, on a subset (``--naive-frames``), extrapolated by its per-frame rate.

Depth previews are generated once before timing, so both paths measure the database ingest.
Prints both rates and the ratio (goal: >= 5x). Uses its own temporary FiftyOne database.

    python tools/bench_browse.py                 # 5,000 frames, naive on 500
    python tools/bench_browse.py --frames 1000 --naive-frames 200
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gaitdata.dataset import DatasetRoot  # noqa: E402
from gaitdata.labels import encode_keypoints, read_labels, write_labels  # noqa: E402

W, H = 64, 48


def make_root(path: Path, n_frames: int, per_video: int = 250) -> DatasetRoot:
    r = DatasetRoot(path)
    r.init()
    rng = np.random.default_rng(0)
    jpg = cv2.imencode(".jpg", rng.integers(0, 255, (H, W, 3), dtype=np.uint8))[1].tobytes()
    png = cv2.imencode(".png", rng.integers(500, 4000, (H, W), dtype=np.uint16))[1].tobytes()
    videos, frames, labels = [], [], []
    for v in range((n_frames + per_video - 1) // per_video):
        vid = f"s{v:02d}_walk"
        n = min(per_video, n_frames - v * per_video)
        videos.append({"video_id": vid, "kind": "bag", "subject": f"s{v:02d}", "session": "a", "view": "side",
                       "condition": "normal", "status": "ok", "n_colour_frames": n, "n_written": n,
                       "width": W, "height": H, "depth_scale": 0.001})  # fmt: skip
        (r.path / "frames" / vid / "rgb").mkdir(parents=True, exist_ok=True)
        (r.path / "frames" / vid / "depth").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rr, dr = r.rgb_relpath(vid, i), r.depth_relpath(vid, i)
            r.abspath(rr).write_bytes(jpg)
            r.abspath(dr).write_bytes(png)
            frames.append({"video_id": vid, "frame_index": i, "colour_frame_number": i, "colour_ts_ms": 33.3 * i,
                           "depth_ts_ms": 33.3 * i, "rgb_path": rr, "depth_path": dr, "status": "ok"})  # fmt: skip
            kp = np.column_stack([rng.uniform(0, W, 17), rng.uniform(0, H, 17), rng.uniform(0.3, 1, 17)])
            labels.append({"video_id": vid, "frame_index": i, "person_index": 0, "has_person": True, "bbox_x": 5.0,
                           "bbox_y": 4.0, "bbox_w": 40.0, "bbox_h": 40.0, "score": 0.9,
                           "keypoints": encode_keypoints(kp), "visibility": [2] * 17, "num_visible": 17,
                           "track_id": 0, "is_subject": True, "teacher": "bench", "qa_flags": []})  # fmt: skip
    r.write_videos(pd.DataFrame(videos))
    r.write_frames(pd.DataFrame(frames))
    write_labels(r, "bench", pd.DataFrame(labels), {"teacher": "bench"})
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--naive-frames", type=int, default=500)
    ap.add_argument("--keep", action="store_true", help="keep the temporary root and database")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gaitdata-bench-browse-"))
    try:
        t = time.perf_counter()
        r = make_root(tmp / "root", args.frames)
        print(f"root: {args.frames} frames written in {time.perf_counter() - t:.1f} s ({tmp / 'root'})")

        from gaitdata.browse import build
        from gaitdata.browse.db import connect

        fo = connect(r.path, tmp / "db")
        p = build.plan(r, ["bench"])
        frames = r.read_frames()
        videos = r.read_videos().set_index("video_id", drop=False)
        sizes = {v: (W, H) for v in videos.index}
        ranges = {v: build.depth_units_range(0.001) for v in videos.index}
        jobs = [(f.depth_path, build.preview_relpath(f.video_id, f.frame_index), ranges[f.video_id])
                for f in frames.itertuples(index=False)]  # fmt: skip
        t = time.perf_counter()
        build.make_previews(r, jobs)
        print(f"depth previews: {time.perf_counter() - t:.1f} s (generated once, outside both timings)")

        # naive: one sample at a time on a subset
        sub = frames.iloc[: args.naive_frames]
        keys = list(zip(sub["video_id"], sub["frame_index"].astype(int), strict=True))
        table = read_labels(r, "bench")
        naive = fo.Dataset()
        naive.add_group_field("group", default=build.RGB)
        t = time.perf_counter()
        per_set = {"bench": build.label_docs(table, sizes, keys, 17)}
        for i in range(len(sub)):  # the obvious way: Label objects on each sample, add_sample one by one
            for spec in build.make_specs(p, sub.iloc[i : i + 1], videos, sizes, ranges, per_set, {}):
                naive.add_sample(spec.sample(fo))
        naive_s = time.perf_counter() - t
        naive_rate = len(sub) / naive_s
        naive.delete()

        # batched: the real build
        t = time.perf_counter()
        ds = build.build_dataset(r, labels=["bench"], db_dir=tmp / "db")
        batched_s = time.perf_counter() - t
        n = len(ds.select_group_slices(build.RGB))
        persons = ds.select_group_slices(build.RGB).count("bench.keypoints")
        if n != args.frames or persons != args.frames or len(ds.select_group_slices(build.DEPTH)) != args.frames:
            raise SystemExit(f"batched build incomplete: {n} frames, {persons} persons (expected {args.frames})")
        batched_rate = n / batched_s
        print(f"naive   (add_sample, {len(sub)} frames): {naive_s:6.1f} s  {naive_rate:7.1f} frames/s "
              f"-> {args.frames / naive_rate:6.1f} s extrapolated to {args.frames}")  # fmt: skip
        print(f"batched (build_dataset, {n} frames): {batched_s:6.1f} s  {batched_rate:7.1f} frames/s "
              f"(incl. labels, split, saved views)")  # fmt: skip
        print(f"ratio batched/naive: {batched_rate / naive_rate:.1f}x (goal >= 5x)")
        ds.delete()
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
