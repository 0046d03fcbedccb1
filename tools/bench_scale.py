#!/usr/bin/env python
"""Scale-out on Ray: extraction and labelling with 1 and 2 Ray workers on this machine vs the local
run, the driver's merge against corpus size, and what that means for 100,000 recordings.

One run measures, on the same synthetic corpus (RGB-D ``.bag`` recordings of a rendered walker,
colour 640x480, depth 480x360):

(a) extraction: local (one process; and two worker processes for reference), then a Ray cluster on
    this machine with 1 CPU and with 2 CPUs (one task per recording, 1 CPU each; every configuration,
    local ones included, encodes with ``--threads`` 1 per recording, so each does the same work per
    recording and a task uses the one CPU it reserves). Ratios: Ray 2
    workers / Ray 1 worker (goal >= 1.6) and Ray 1 worker / local (goal: within 15%, i.e. time
    ratio <= 1.15). Every Ray root is checked equal to the local root, row for row (timing columns
    aside).
(b) labelling with BlazePose (``mediapipe``, static mode) the same way; label sets checked equal.
(c) the driver's manifest: synthetic per-recording parts (``--merge-parts``, ``--merge-frames``
    frames each) loaded and merged into ``videos.parquet``/``frames.parquet`` as an extraction run
    does, with time and memory per frame row, extrapolated to ``--corpus`` recordings.

Wall-clock ratios need free cores: each configuration runs after the 1-minute load average is
printed; on a shared machine compare ratios from one run, and rerun when the load is low.

    python tools/bench_scale.py                          # 8 recordings x 90 frames
    python tools/bench_scale.py --recordings 4 --frames 30 --merge-parts 100,300 --skip-label

Estimate for 100,000 recordings on N GPU nodes (figures from this script on the 2-core development
machine, load 6-10; README "Scaling out on Ray" has one run's table)
--------------------------------------------------------------------------------------------------
Assume 100,000 recordings of 30 s at 30 fps (900 frames; 90 M frames), N GPU nodes of 16 cores and
1-8 GPUs, the dataset root on a shared filesystem, 16 extraction tasks or 4-16 labelling tasks
(``--gpus-per-task 0.25``-``1``) per node.

* Tasks: 100,000 per stage, one per recording. The driver keeps at most 2 x (tasks that fit at
  once) + 2 in flight and tops up as they finish (:func:`gaitdata.procs.as_done`), so Ray holds a
  few hundred task specs at a time, never 100,000; a task's arguments are a recording's description
  (extraction, ~2 KB) or its frame table (labelling, ~100 bytes per frame). A task is 10-60 s of
  work, so even 1,000 slots finish only ~20-100 tasks per second: Ray's scheduler is idle.
* Shared-filesystem I/O per frame: extraction reads the recording (1.27 MB per RGB-D frame in a
  .bag, measured) and writes a JPEG and a 16-bit PNG (168 KB for the synthetic walker, measured;
  ~0.3-0.45 MB for real 640x480 footage with sensor noise), each as a temporary file renamed into
  place; labelling reads them back. 90 M frames: ~115 TB read, 15-40 TB and 180 M files written.
  At ~30 frames/s per extraction task, 16 tasks on each of 8 nodes move ~4.9 GB/s of reads and
  0.7-1.7 GB/s of writes with ~8,000 file creations per second: **the shared filesystem breaks
  first** (an NFS server's bandwidth and metadata rate), long before Ray, the driver or the GPUs.
  The design writes each file once and renames it into place (no read-modify-write, safe on NFS),
  keeps directories small (``frames/<id>/rgb``: one recording's frames), and lets
  ``--cpus-per-task``/``--gpus-per-task`` cap the concurrent tasks at what the filesystem sustains.
* Labelling's final merge: the run reads every part and writes one label-set file; measured
  20-40 us and ~560 bytes of driver memory per person row (pandas, keypoint lists as objects), so
  90 M rows take 0.5-1 h and ~50 GB, with a second copy while the file is written. **This is
  the driver's first limit** (~40 M person rows, ~45,000 recordings of 900 frames, per 64 GB
  driver, counting the copies made while writing): label a large corpus as
  several dataset roots (one per cohort or site; splits and exports take recordings by id), or
  with ``--video`` batches into several label sets. The parts themselves
  (``.gaitdata/labels/<set>/<id>.parquet``) are complete and readable by pyarrow/duckdb/polars as
  one table; streaming them into the label-set file as Arrow tables would make this merge O(one
  part) in memory.
* Extraction's manifest: the driver keeps every recording's frame rows (190 bytes per row,
  measured: ~17 GB for 90 M rows), reads all parts when a run starts (5-10 ms per recording:
  8-17 min for 100,000) and rewrites ``frames.parquet`` from them (2.4-4 us per row: 4-6 min for
  90 M rows) at most every 5 s and at least 10x its own duration apart, so merging takes at most
  ~10% of the driver's time; the window of queued tasks (2 per slot) keeps the nodes busy through
  a merge as long as a task lasts longer than a merge's share. A 32-64 GB driver holds this.
* GPUs: a GPU task gets a fresh worker process (Ray's default for GPU tasks, so each task sees
  only its own GPU), so the teacher loads once per recording (~1-2 s for FastPose);
  ``--gpus-per-task 0.25``-``0.5`` runs 2-4 recordings per GPU and hides the loading.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

ROOT_DIR = Path(__file__).resolve().parents[1]
if str(ROOT_DIR) not in sys.path:
    sys.path.insert(0, str(ROOT_DIR))

# the clusters of this benchmark live on this machine only: loopback, no token file in the home folder
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} CPUs"


def timed(label: str, fn: Callable[[], object], repeat: int) -> float:
    """The shortest of ``repeat`` runs (other work on a shared machine only ever adds time)."""
    times, loads = [], []
    for _ in range(repeat):
        loads.append(load())
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    runs = ", ".join(f"{t:.1f}" for t in times)
    print(f"  {label:34s} {min(times):7.1f} s   (runs {runs} s; {loads[0]} before the first)", flush=True)
    return min(times)


def warm(folder: Path) -> None:
    """Read every file once, so that no configuration pays for a cold page cache."""
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(1 << 22):
                    pass


def make_corpus(src: Path, n_recordings: int, n_frames: int, unique: int) -> tuple[int, int]:
    """``n_recordings`` RGB-D .bag files of ``n_frames`` frames; returns (files, bytes)."""
    from gaitdata.containers import write
    from gaitdata.synth import WalkSpec, render_walk

    rec = render_walk(WalkSpec(n_frames=unique, colour_size=(640, 480), depth_size=(480, 360), seed=0,
                               depth_noise_mm=2.0))  # fmt: skip
    idx = np.arange(n_frames) % unique
    ts = 1000.0 + np.arange(n_frames) * 1000.0 / rec.fps
    rec = dataclasses.replace(
        rec, colour=rec.colour[idx], colour_ts_ms=ts, colour_frame_numbers=np.arange(n_frames) + 1,
        depth=rec.depth[idx], depth_ts_ms=ts + 1.0, depth_frame_numbers=np.arange(n_frames) + 1,
        keypoints_2d=None, joints_3d=None, depth_registered=None,
    )  # fmt: skip
    for i in range(n_recordings):
        write(rec, src / f"subject{i:02d}" / "walk.bag", "bag")
    files = list(src.rglob("*.bag"))
    return len(files), sum(f.stat().st_size for f in files)


@contextlib.contextmanager
def ray_cluster(num_cpus: int) -> Iterator[None]:
    """A Ray cluster on this machine with ``num_cpus`` CPUs; the stages join it (``--ray auto``)."""
    import logging

    import ray

    tmp = tempfile.mkdtemp(prefix="gdray", dir="/tmp")  # its logs and sockets, removed afterwards (short: socket paths)
    ray.init(num_cpus=num_cpus, num_gpus=0, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING, _temp_dir=tmp)  # fmt: skip
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def same_tables(a: Path, b: Path) -> bool:
    from gaitdata.dataset import DatasetRoot

    ra, rb = DatasetRoot(a), DatasetRoot(b)
    try:
        pd.testing.assert_frame_equal(ra.read_videos().drop(columns="extracted_at"),
                                      rb.read_videos().drop(columns="extracted_at"))  # fmt: skip
        pd.testing.assert_frame_equal(ra.read_frames(), rb.read_frames())
    except AssertionError:
        return False
    return True


def same_labels(a: Path, b: Path, name: str) -> bool:
    try:
        pd.testing.assert_frame_equal(pd.read_parquet(a / "labels" / f"{name}.parquet"),
                                      pd.read_parquet(b / "labels" / f"{name}.parquet"))  # fmt: skip
    except AssertionError:
        return False
    return True


def report(what: str, t: dict[str, float], frames: int) -> None:
    speedup = t["ray1"] / t["ray2"]
    overhead = t["ray1"] / t["local1"]
    print(f"  {what}: local {frames / t['local1']:.1f} frames/s, Ray 1 worker {frames / t['ray1']:.1f}, "
          f"Ray 2 workers {frames / t['ray2']:.1f}")  # fmt: skip
    print(f"  Ray 2 workers vs 1: {speedup:.2f}x (goal >= 1.6)   Ray 1 worker vs local: time x{overhead:.2f} "
          f"(goal <= 1.15)")  # fmt: skip


def bench_extract(work: Path, src: Path, n_frames_total: int, repeat: int, threads: int = 1) -> dict[str, Path]:
    from gaitdata.distributed import RayOptions
    from gaitdata.extract import ExtractOptions, extract

    roots = {k: work / f"extract_{k}" for k in ("local1", "local2", "ray1", "ray2")}
    t: dict[str, float] = {}
    warm(src)
    for k, workers in (("local1", 1), ("local2", 2)):
        opts = ExtractOptions(workers=workers, overwrite=True, threads=threads)
        t[k] = timed(f"extract, local, {workers} process(es)",
                     lambda o=opts, r=roots[k]: extract([src], r, o, progress=False), repeat)  # fmt: skip
    for k, cpus in (("ray1", 1), ("ray2", 2)):
        with ray_cluster(cpus):
            opts = ExtractOptions(ray=RayOptions("auto"), overwrite=True, threads=threads)
            t[k] = timed(f"extract, Ray, {cpus} worker(s)",
                         lambda o=opts, r=roots[k]: extract([src], r, o, progress=False), repeat)  # fmt: skip
    report("extract", t, n_frames_total)
    print(f"  local with 2 processes vs 1: {t['local1'] / t['local2']:.2f}x (the same machine's ceiling)")
    equal = all(same_tables(roots["local1"], roots[k]) for k in ("local2", "ray1", "ray2"))
    print(f"  tables of every run equal the local run's, row for row: {equal}")
    written = sum(f.stat().st_size for f in (roots["local1"] / "frames").rglob("*") if f.is_file())
    print(f"  written per frame: {written / n_frames_total / 1e3:.0f} KB in 2 files (JPEG + 16-bit PNG)")
    return roots


def bench_label(roots: dict[str, Path], n_frames_total: int, repeat: int) -> None:
    from gaitdata.distributed import RayOptions
    from pseudolabel.runner import label

    try:
        import mediapipe  # noqa: F401
    except ImportError:
        print("  mediapipe not installed (teachers extra): labelling skipped")
        return
    kw = dict(teacher="mediapipe", mode="static", label_set="bench", progress=False, overwrite=True)
    t: dict[str, float] = {}
    for k in ("local1", "ray1", "ray2"):
        warm(roots[k] / "frames")
    t["local1"] = timed("label, local (one process)", lambda: label(roots["local1"], **kw), repeat)
    for k, cpus in (("ray1", 1), ("ray2", 2)):
        with ray_cluster(cpus):
            t[k] = timed(f"label, Ray, {cpus} worker(s)", lambda r=roots[k]: label(r, ray=RayOptions("auto"), **kw), repeat)
    report("label (BlazePose static)", t, n_frames_total)
    equal = all(same_labels(roots["local1"], roots[k], "bench") for k in ("ray1", "ray2"))
    print(f"  label sets equal the local run's, row for row: {equal}")


def synthetic_parts(root_path: Path, n_parts: int, n_frames: int) -> None:
    """``n_parts`` committed recordings of ``n_frames`` frames, written as extraction writes its parts."""
    from gaitdata.dataset import FRAME_COLUMNS, VIDEO_COLUMNS, DatasetRoot, conform
    from gaitdata.extract import _Manifest
    from gaitdata.io import atomic_write_parquet

    root = DatasetRoot(root_path)
    root.init()
    manifest = _Manifest(root)
    manifest.parts.mkdir(parents=True, exist_ok=True)
    ts = 1000.0 + np.arange(n_frames) * 1000.0 / 30
    for i in range(n_parts):
        vid = f"subject{i:06d}__walk"
        frames = pd.DataFrame({
            "video_id": vid, "frame_index": np.arange(n_frames), "colour_frame_number": np.arange(n_frames) + 1,
            "depth_frame_number": np.arange(n_frames) + 1, "colour_ts_ms": ts, "depth_ts_ms": ts + 1.0,
            "dt_ms": 1.0, "rgb_path": [root.rgb_relpath(vid, k) for k in range(n_frames)],
            "depth_path": [root.depth_relpath(vid, k) for k in range(n_frames)], "status": "ok",
        })  # fmt: skip
        video = {"video_id": vid, "source_path": f"/data/recordings/subject{i:06d}/walk.bag", "kind": "bag",
                 "source_rel": f"subject{i:06d}/walk.bag", "fingerprint": f"{i:016x}", "status": "ok",
                 "n_colour_frames": n_frames, "n_depth_frames": n_frames, "n_written": n_frames, "fps": 30.0,
                 "width": 640, "height": 480, "options": "{}", "tool_version": "bench",
                 "extracted_at": "2026-01-01T00:00:00Z"}  # fmt: skip
        vpath, fpath = manifest.part_paths(vid)
        atomic_write_parquet(fpath, conform(frames, FRAME_COLUMNS, "frames"))
        atomic_write_parquet(vpath, conform(pd.DataFrame([video]), VIDEO_COLUMNS, "videos"))


def label_merge(work: Path, n_parts: int, n_frames: int) -> tuple[float, float]:
    """Seconds and bytes of memory per person row of the labelling run's final merge of its parts."""
    from gaitdata.dataset import conform
    from gaitdata.io import atomic_write_parquet
    from gaitdata.labels import LABEL_COLUMNS, labels_table

    folder = work / "label_parts"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n_parts):
        vid = f"subject{i:06d}__walk"
        kp = rng.uniform(0, 480, (n_frames, 51))
        df = pd.DataFrame({
            "video_id": vid, "frame_index": np.arange(n_frames), "person_index": 0, "has_person": True,
            "bbox_x": 100.0, "bbox_y": 50.0, "bbox_w": 120.0, "bbox_h": 380.0, "score": 0.9,
            "keypoints": list(kp), "visibility": [[2] * 17] * n_frames, "num_visible": 17, "track_id": 0,
            "is_subject": True, "teacher": "mediapipe", "weights_hash": "0" * 64, "qa_flags": [[]] * n_frames,
        })  # fmt: skip
        atomic_write_parquet(folder / f"{vid}.parquet", labels_table(df, vid))
    t0 = time.perf_counter()
    merged = pd.concat([conform(pd.read_parquet(f), LABEL_COLUMNS, f.stem) for f in sorted(folder.glob("*.parquet"))],
                       ignore_index=True)  # fmt: skip
    seconds = time.perf_counter() - t0
    mem = float(merged.memory_usage(deep=True).sum())
    shutil.rmtree(folder, ignore_errors=True)
    return seconds / len(merged), mem / len(merged)


def bench_merge(work: Path, sizes: list[int], n_frames: int, corpus: int, corpus_frames: int) -> None:
    import gc

    from gaitdata.dataset import DatasetRoot
    from gaitdata.extract import _Manifest

    per_row_s, per_row_b, per_part_load = [], [], []
    for n in sizes:
        path = work / f"merge_{n}"
        synthetic_parts(path, n, n_frames)
        gc.collect()
        manifest = _Manifest(DatasetRoot(path))
        t0 = time.perf_counter()
        cache = manifest._load()
        t_load = time.perf_counter() - t0
        mem = sum(v.memory_usage(deep=True).sum() + (f.memory_usage(deep=True).sum() if f is not None else 0)
                  for v, f in cache.values())  # fmt: skip
        t0 = time.perf_counter()
        manifest.merge(force=True)
        t_merge = time.perf_counter() - t0
        per_part_load.append(t_load / n)
        rows = n * n_frames
        size = (path / "frames.parquet").stat().st_size
        print(f"  {n:6d} parts x {n_frames} frames = {rows / 1e6:6.2f} M rows: load {t_load:6.1f} s, "
              f"merge {t_merge:6.1f} s, manifest in memory {mem / 1e6:7.0f} MB, frames.parquet {size / 1e6:5.1f} MB "
              f"({load()})")  # fmt: skip
        per_row_s.append(t_merge / rows)
        per_row_b.append(mem / rows)
        shutil.rmtree(path, ignore_errors=True)
    rows = corpus * corpus_frames
    s, b = float(np.median(per_row_s)), float(np.median(per_row_b))
    print(f"  per frame row: merge {s * 1e6:.2f} us, driver memory {b:.0f} bytes (median over sizes)")
    opening = float(np.median(per_part_load)) * corpus  # per part of --merge-frames frames
    print(f"  extrapolated to {corpus:,} recordings x {corpus_frames} frames ({rows / 1e6:.0f} M rows): "
          f"one merge ~{s * rows / 60:.0f} min, driver memory ~{b * rows / 1e9:.0f} GB, "
          f"reading the parts when a run starts ~{opening / 60:.0f} min (parts of {n_frames} frames)")  # fmt: skip
    ls, lb = label_merge(work, min(sizes), n_frames)
    print(f"  labelling's final merge ({min(sizes)} parts x {n_frames} person rows): {ls * 1e6:.1f} us and {lb:.0f} bytes "
          f"per person row; {rows / 1e6:.0f} M rows: ~{ls * rows / 60:.0f} min, ~{lb * rows / 1e9:.0f} GB in memory")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recordings", type=int, default=8)
    ap.add_argument("--frames", type=int, default=90, help="frames per recording")
    ap.add_argument("--unique", type=int, default=15, help="distinct rendered frames (cycled)")
    ap.add_argument("--merge-parts", default="100,300,1000", help="part counts for (c), comma-separated")
    ap.add_argument("--merge-frames", type=int, default=300, help="frames per synthetic part in (c)")
    ap.add_argument("--corpus", type=int, default=100_000, help="recordings to extrapolate (c) to")
    ap.add_argument("--corpus-frames", type=int, default=900, help="frames per recording to extrapolate (c) to")
    ap.add_argument("--repeat", type=int, default=2, help="runs per configuration (the shortest counts)")
    ap.add_argument("--threads", type=int, default=1,
                    help="encode threads per recording in every configuration (1: one CPU per task, like the "
                         "Ray tasks' reservation, so local and Ray runs do the same work per recording)")
    ap.add_argument("--skip-label", action="store_true")
    ap.add_argument("--skip-merge", action="store_true")
    ap.add_argument("--merge-only", action="store_true", help="only (c)")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="gaitdata-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"machine: {os.cpu_count()} CPUs, {load()}")
        if args.merge_only:
            bench_merge(work, [int(v) for v in args.merge_parts.split(",")], args.merge_frames, args.corpus,
                        args.corpus_frames)  # fmt: skip
            return
        src = work / "recordings"
        t0 = time.perf_counter()
        n, size = make_corpus(src, args.recordings, args.frames, args.unique)
        total = n * args.frames
        print(f"corpus: {n} RGB-D .bag recordings x {args.frames} frames ({total} frames, "
              f"{size / total / 1e6:.2f} MB per frame in the recordings; {time.perf_counter() - t0:.1f} s)")  # fmt: skip
        print("\n(a) extraction")
        roots = bench_extract(work, src, total, args.repeat, args.threads)
        if not args.skip_label:
            print("\n(b) labelling")
            bench_label(roots, total, args.repeat)
        if not args.skip_merge:
            print("\n(c) the driver's manifest: load and merge of per-recording parts")
            sizes = [int(v) for v in args.merge_parts.split(",") if v.strip()]
            bench_merge(work, sizes, args.merge_frames, args.corpus, args.corpus_frames)
        print(f"\nfinished: {load()}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
