#!/usr/bin/env python
"""Extraction throughput on synthetic recordings (one run; prints frames/s and ratios).

(a) colour-only extraction of an H.264 and an mp4v 640x480 video against
    ``ffmpeg -i X -q:v 2 %06d.jpg`` (goal: ratio >= 1.0);
(b) RealSense ``.bag`` RGB-D extraction (registered depth PNG + JPEG) against a naive sequential
    loop written here: textbook pyrealsense2 pipeline -> rs.align -> cv2.imwrite (goal: >= 1.5x).

Needs the ``ffmpeg`` binary for (a) (Debian: ``apt-get install -y ffmpeg``) and pyrealsense2 for the
naive loop of (b); missing pieces are reported and skipped. Absolute numbers depend on the machine;
compare the ratios.

    python tools/bench_extract.py                 # 300 frames per video, 150 RGB-D frames
    python tools/bench_extract.py --frames 120 --rgbd-frames 60 --keep /tmp/bench
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def source_frames(n_unique: int, seed: int = 0):
    """Synthetic 640x480 RGB-D frames: the walker renderer when available, else a textured plane."""
    try:
        from gaitdata.synth import WalkSpec, render_walk

        rec = render_walk(WalkSpec(n_frames=n_unique, colour_size=(640, 480), depth_size=(640, 480), seed=seed,
                                   depth_noise_mm=2.0))  # fmt: skip
        how = "gaitdata.synth.render_walk"
    except ImportError:
        from gaitdata.testing.recordings import plane_recording

        rec = plane_recording(n=n_unique, size=(640, 480), depth_size=(640, 480), noise_units=2, seed=seed)
        how = "gaitdata.testing.recordings.plane_recording"
    return rec, how


def looped(rec, n: int):
    """``rec`` cycled to ``n`` frames with fresh, increasing timestamps and frame numbers."""
    idx = np.arange(n) % len(rec.colour)
    period = 1000.0 / rec.fps
    ts = 1000.0 + np.arange(n) * period
    kw = dict(colour=rec.colour[idx], colour_ts_ms=ts, colour_frame_numbers=np.arange(n) + 1,
              keypoints_2d=None, joints_3d=None, depth_registered=None)  # fmt: skip
    if rec.has_depth:
        didx = np.arange(n) % len(rec.depth)
        kw.update(depth=rec.depth[didx], depth_ts_ms=ts + 1.0, depth_frame_numbers=np.arange(n) + 1)
    return dataclasses.replace(rec, **kw)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_colour(work: Path, rec, n: int) -> list[tuple[str, float, float | None]]:
    from gaitdata.containers import write
    from gaitdata.extract import ExtractOptions, extract

    ffmpeg = shutil.which("ffmpeg")
    rows = []
    for codec in ("h264", "mp4v"):
        video = write(looped(rec, n), work / f"walk_{codec}.mp4", "video", codec=codec)
        out = work / f"root_{codec}"
        t_ours = timed(
            lambda v=video, o=out: extract([v], o, ExtractOptions(workers=1, threads=2), progress=False)
        )
        t_ff = None
        if ffmpeg:
            jpgs = work / f"ffmpeg_{codec}"
            jpgs.mkdir()
            cmd = [ffmpeg, "-loglevel", "error", "-i", str(video), "-q:v", "2", str(jpgs / "%06d.jpg")]
            t_ff = timed(lambda c=cmd: subprocess.run(c, check=True))
        rows.append((codec, n / t_ours, n / t_ff if t_ff else None))
    return rows


def naive_rgbd(bag: Path, out: Path) -> int:
    """The textbook loop: pipeline playback, wait_for_frames, rs.align, write JPEG + 16-bit PNG, one by one."""
    import cv2
    import pyrealsense2 as rs

    out.mkdir(parents=True)
    pipe = rs.pipeline()
    cfg = rs.config()
    cfg.enable_device_from_file(str(bag), repeat_playback=False)
    profile = pipe.start(cfg)
    profile.get_device().as_playback().set_real_time(False)
    align = rs.align(rs.stream.color)
    n = 0
    try:
        while True:
            ok, frames = pipe.try_wait_for_frames(2000)
            if not ok:
                break
            frames = align.process(frames)
            colour, depth = frames.get_color_frame(), frames.get_depth_frame()
            if not colour or not depth:
                continue
            cv2.imwrite(
                str(out / f"{n:06d}.jpg"),
                np.asanyarray(colour.get_data())[..., ::-1],
                [cv2.IMWRITE_JPEG_QUALITY, 95],
            )
            cv2.imwrite(
                str(out / f"{n:06d}.png"), np.asanyarray(depth.get_data()), [cv2.IMWRITE_PNG_COMPRESSION, 1]
            )
            n += 1
    finally:
        pipe.stop()
    return n


def bench_rgbd(work: Path, rec, n: int) -> tuple[float, float | None, int, int | None]:
    from gaitdata.containers import write
    from gaitdata.extract import ExtractOptions, extract

    bag = write(looped(rec, n), work / "walk.bag", "bag")
    summary = None

    def ours():
        nonlocal summary
        summary = extract([bag], work / "root_bag", ExtractOptions(workers=1, threads=2), progress=False)

    t_ours = timed(ours)
    written = summary.frames_written
    try:
        import pyrealsense2  # noqa: F401
    except ImportError:
        return written / t_ours, None, written, None
    naive_n = 0

    def naive():
        nonlocal naive_n
        naive_n = naive_rgbd(bag, work / "naive")

    t_naive = timed(naive)
    return written / t_ours, naive_n / t_naive, written, naive_n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300, help="frames per colour video")
    ap.add_argument("--rgbd-frames", type=int, default=150, help="frames in the RealSense bag")
    ap.add_argument("--unique", type=int, default=30, help="distinct rendered frames (cycled)")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="gaitdata-bench-"))
    if work.exists() and args.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        rec, how = source_frames(args.unique)
        print(
            f"source: {args.unique} distinct 640x480 RGB-D frames from {how} ({time.perf_counter() - t:.1f} s)"
        )
        if not shutil.which("ffmpeg"):
            print(
                "ffmpeg not found: (a) prints our frames/s only. Install it with: apt-get install -y ffmpeg"
            )
        print("\n(a) colour-only extraction, 640x480, JPEG q95 vs ffmpeg -q:v 2")
        for codec, ours, ff in bench_colour(work, rec, args.frames):
            ratio = f"ratio {ours / ff:.2f}" if ff else "ratio n/a"
            ffs = f"{ff:7.1f}" if ff else "    n/a"
            print(
                f"  {codec:5s}: gaitdata {ours:7.1f} frames/s   ffmpeg {ffs} frames/s   {ratio}  (goal >= 1.0)"
            )
        print(
            f"\n(b) RealSense .bag RGB-D extraction ({args.rgbd_frames} frames, colour 640x480, depth registered)"
        )
        ours, naive, n_ours, n_naive = bench_rgbd(work, rec, args.rgbd_frames)
        if naive is None:
            print(f"  gaitdata {ours:.1f} frames/s; pyrealsense2 not importable: naive loop skipped")
        else:
            print(f"  gaitdata {ours:7.1f} frames/s ({n_ours} framesets)   naive loop {naive:7.1f} frames/s "
                  f"({n_naive} framesets)   ratio {ours / naive:.2f}  (goal >= 1.5)")  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
