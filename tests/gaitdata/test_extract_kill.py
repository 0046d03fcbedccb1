"""SIGKILL mid-run, then rerun: the same tables as an uninterrupted run, and a valid root at every point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from gaitdata.containers import write
from gaitdata.containers.testing import plane_recording
from gaitdata.dataset import DatasetRoot, validate
from gaitdata.extract import ExtractOptions, extract


def _tables(root):
    r = DatasetRoot(root)
    return r.read_videos().drop(columns="extracted_at"), r.read_frames()


@pytest.mark.slow
@pytest.mark.parametrize("kill_when", ["first_frames", "first_part"])
def test_sigkill_then_rerun_equals_clean_run(tmp_path, kill_when):
    src = tmp_path / "in"
    for i in range(4):
        write(
            plane_recording(n=24, size=(320, 240), depth_size=(160, 120), seed=i),
            src / f"s{i}" / "walk.bag",
            "bag",
        )
    write(plane_recording(n=24, seed=9), src / "s9" / "walk.mp4", "video")
    clean = tmp_path / "clean"
    extract([src], clean, ExtractOptions(workers=1, reader="python"), progress=False)

    root = tmp_path / "root"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "gaitdata", "extract", str(src), "--out", str(root), "-q", "--workers", "1",
           "--reader", "python"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging, parts = root / "frames" / ".staging", root / ".gaitdata" / "parts"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if kill_when == "first_frames" and staging.is_dir() and any(staging.rglob("*.jpg")):
                break
            if kill_when == "first_part" and parts.is_dir() and any(parts.glob("*.video.parquet")):
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    killed = proc.returncode == -signal.SIGKILL
    if (root / "dataset.json").exists():
        assert validate(root).ok  # whatever the manifest counts is complete
    summary = extract([src], root, ExtractOptions(workers=1, reader="python"), progress=False)
    assert summary.ok
    if killed:
        assert summary.n_ok >= 1  # the rerun really resumed unfinished work
    va, fa = _tables(clean)
    vb, fb = _tables(root)
    pd.testing.assert_frame_equal(va, vb)
    pd.testing.assert_frame_equal(fa, fb)
    assert validate(root).ok
    assert not (root / "frames" / ".staging").exists()
