"""SIGKILL mid-run, then rerun: the same tables as an uninterrupted run, and a valid root at every point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from gaitdata.containers import write
from gaitdata.dataset import DatasetRoot, validate
from gaitdata.extract import ExtractOptions, extract
from gaitdata.testing.recordings import plane_recording


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


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process table from /proc")
def test_workers_die_when_the_parent_is_killed(tmp_path):
    """kill -9 of `gaitdata extract --workers 2`: no worker process outlives it; the rerun cleans up and completes."""
    src = tmp_path / "in"
    for i in range(3):
        write(plane_recording(n=16, size=(320, 240), depth_size=(160, 120), seed=i), src / f"r{i}.bag", "bag")
    root = tmp_path / "root"
    cmd = [sys.executable, "-m", "gaitdata", "extract", str(src), "--out", str(root), "-q", "--workers", "2",
           "--reader", "python"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = root / "frames" / ".staging"
    kids: list[int] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            kids = _children(proc.pid)
            if len(kids) >= 2 and staging.is_dir() and any(staging.rglob("*.jpg")):
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the run finished before it could be killed")
    assert len(kids) >= 2  # the pool's worker processes were running
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.05)
    survivors = [k for k in kids if _alive(k)]
    for k in survivors:  # do not leak them into the rest of the suite
        os.kill(k, signal.SIGKILL)
    assert not survivors, f"worker processes {survivors} outlived their killed parent"
    assert staging.is_dir()  # what the killed run left behind ...
    torn = root / ".gaitdata" / "parts" / ".r0.video.parquet.x1y2.tmp"  # a write cut short by the kill
    torn.parent.mkdir(parents=True, exist_ok=True)
    torn.write_bytes(b"PAR1")
    summary = extract([src], root, ExtractOptions(workers=1, reader="python"), progress=False)
    assert summary.ok and not staging.exists() and not torn.exists()  # ... the rerun removed and redid
    assert validate(root).ok
