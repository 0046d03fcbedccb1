"""One writer at a time per dataset root: real processes through the command line, and the lock API."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import _cli_driver  # noqa: F401  (registers the test_fixed teacher)
import pandas as pd
import pytest

from gaitdata.containers import write
from gaitdata.dataset import DatasetRoot, validate
from gaitdata.errors import GaitdataError
from gaitdata.lock import (
    RootLockedError,
    check_output_dir,
    holds_root_lock,
    lock_policy,
    read_holder,
    root_lock,
    tables_lock,
    writes_root,
)
from gaitdata.testing.recordings import plane_recording

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("_cli_driver.py")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "PYTHONUNBUFFERED": "1"}  # fmt: skip


class Cli:
    """``gaitdata ARGS`` in its own process; stderr collected line by line as it comes."""

    def __init__(self, *args: str | Path):
        self.proc = subprocess.Popen([sys.executable, str(DRIVER), *map(str, args)], env=_env(), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        self.err: list[str] = []
        self.out = ""
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = next((ln for ln in self.err if text in ln), None)
            if hit is not None:
                return hit
            if self.proc.poll() is not None and not self._t.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not printed; rc={self.proc.poll()} stderr={self.err}")

    def finish(self, timeout: float = 180) -> int:
        assert self.proc.stdout is not None
        self.out = self.proc.stdout.read()  # stderr belongs to the reader thread
        self.proc.wait(timeout=timeout)
        self._t.join(timeout=10)
        return self.proc.returncode


def _sources(path: Path, names: list[str], n: int = 40, seed: int = 0) -> Path:
    for i, name in enumerate(names):
        write(plane_recording(n=n, size=(160, 120), seed=seed + i), path / name / "walk.mp4", "video")
    return path


def _wait_for_holder(root: Path, pid: int, proc: Cli, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = read_holder(root)
        if h is not None and h.pid == pid:
            return
        assert proc.proc.poll() is None, f"the holder exited early: {proc.err}"
        time.sleep(0.005)
    raise AssertionError(f"process {pid} never took the lock of {root}")


def _sources_in(root: Path) -> set[Path]:
    v = DatasetRoot(root).read_videos()
    assert (v["status"] == "ok").all() and v["video_id"].is_unique
    return {Path(p).resolve() for p in v["source_path"]}


def test_two_extracts_into_one_root_keep_every_recording(tmp_path):
    """The second writer waits, naming the holder; both runs' recordings end up in the tables.
    A third command with --no-wait refuses at once, in one line."""
    a_src = _sources(tmp_path / "day1", [f"a{i}" for i in range(5)])
    b_src = _sources(tmp_path / "day2", [f"b{i}" for i in range(5)], seed=10)
    root = tmp_path / "root"
    a = Cli("extract", a_src, "--out", root, "-q", "--workers", "1")
    _wait_for_holder(root, a.pid, a)
    os.kill(a.pid, signal.SIGSTOP)  # the holder is held mid-run, so that the others surely meet its lock
    try:
        b = Cli("extract", b_src, "--out", root, "-q", "--workers", "1")
        line = b.wait_for("waiting for dataset root")
        assert f"pid {a.pid} on {socket.gethostname()}" in line and "`gaitdata extract`" in line and "since" in line
        assert b.proc.poll() is None

        c = Cli("label", root, "--teacher", "test_fixed", "--no-wait", "-q")
        assert c.finish(60) == 2
        assert len(c.err) == 1, c.err
        assert c.err[0].startswith("error: ") and f"pid {a.pid}" in c.err[0] and "--no-wait" in c.err[0]
        assert not (root / "labels" / "test_fixed.parquet").exists()
    finally:
        os.kill(a.pid, signal.SIGCONT)
    assert a.finish() == 0, a.err
    assert b.finish() == 0, b.err
    assert _sources_in(root) == {p.resolve() for p in [*a_src.rglob("walk.mp4"), *b_src.rglob("walk.mp4")]}
    assert len(_sources_in(root)) == 10
    report = validate(root)
    assert report.ok, report.errors
    assert report.counts["frames_written"] == 10 * 40
    assert read_holder(root) is None  # released: nothing names a holder any more


def test_label_started_during_extract_waits_and_labels_the_new_frames(tmp_path):
    src = _sources(tmp_path / "in", [f"s{i}" for i in range(4)], n=30)
    root = tmp_path / "root"
    early = _sources(tmp_path / "early", ["e0"], n=30, seed=9)
    first = Cli("extract", early, "--out", root, "-q", "--workers", "1")  # a root with one recording
    assert first.finish() == 0, first.err
    ex = Cli("extract", src, "--out", root, "-q", "--workers", "1")
    _wait_for_holder(root, ex.pid, ex)
    os.kill(ex.pid, signal.SIGSTOP)
    try:
        lab = Cli("label", root, "--teacher", "test_fixed", "-q")
        assert "`gaitdata extract`" in lab.wait_for("waiting for dataset root")
    finally:
        os.kill(ex.pid, signal.SIGCONT)
    assert ex.finish() == 0, ex.err
    assert lab.finish() == 0, lab.err
    r = DatasetRoot(root)
    written = r.read_frames().query("status == 'ok'")
    labelled = pd.read_parquet(r.label_path("test_fixed"))
    assert len(written) == 5 * 30
    assert set(zip(labelled["video_id"], labelled["frame_index"], strict=True)) == set(
        zip(written["video_id"], written["frame_index"], strict=True)
    )


def test_kill_9_of_the_holder_releases_the_lock(tmp_path):
    src = _sources(tmp_path / "in", [f"s{i}" for i in range(3)], n=30)
    root = tmp_path / "root"
    a = Cli("extract", src, "--out", root, "-q", "--workers", "1")
    _wait_for_holder(root, a.pid, a)
    os.kill(a.pid, signal.SIGKILL)
    a.finish()
    assert read_holder(root).pid == a.pid  # the dead holder's note is still there ...
    b = Cli("extract", src, "--out", root, "-q", "--workers", "1", "--no-wait")
    assert b.finish() == 0, b.err  # ... but the kernel released its lock
    assert _sources_in(root) == {p.resolve() for p in src.rglob("walk.mp4")} and len(_sources_in(root)) == 3
    assert validate(root).ok


_HALF_WRITER = """
import sys, time, pathlib
from gaitdata.dataset import DatasetRoot
from gaitdata.lock import root_lock, tables_lock
r = DatasetRoot(sys.argv[1])
with root_lock(r.path, "extract"):
    v, f = r.read_videos(), r.read_frames()
    gone = v["video_id"].iloc[0]
    with tables_lock(r.path, exclusive=True):
        r.write_videos(v[v["video_id"] != gone])  # frames.parquet now names an unknown video ...
        pathlib.Path(sys.argv[2]).write_text("half")
        time.sleep(1.5)
        r.write_frames(f[f["video_id"] != gone])  # ... until this line
"""


def test_readers_never_see_tables_of_two_moments(tmp_path):
    from gaitdata.extract import ExtractOptions, extract

    src = _sources(tmp_path / "in", ["s0", "s1"], n=6)
    root = tmp_path / "root"
    extract([src], root, ExtractOptions(workers=1), progress=False)
    marker = tmp_path / "half"
    proc = subprocess.Popen([sys.executable, "-c", _HALF_WRITER, str(root), str(marker)], env=_env())
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the writer did not start"
            time.sleep(0.01)
        report = validate(root)  # blocks until both tables are rewritten
    finally:
        assert proc.wait(timeout=60) == 0
    assert report.ok, report.errors
    assert report.counts["videos"] == 1


def _drop_privileges() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a root read-only for this process")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


@pytest.mark.parametrize("lock_file", [True, False])
def test_readers_work_on_a_read_only_root(tmp_path, lock_file):
    from gaitdata.extract import ExtractOptions, extract

    root = tmp_path / "root"
    extract([_sources(tmp_path / "in", ["s0"], n=4)], root, ExtractOptions(workers=1), progress=False)
    if not lock_file:
        for p in (root / ".gaitdata").glob("*lock*"):
            p.unlink()
    for p in sorted(root.rglob("*"), reverse=True):
        p.chmod(0o555 if p.is_dir() else 0o444)
    root.chmod(0o555)
    try:
        cmd = [*_drop_privileges(), sys.executable, str(DRIVER), "validate", str(root)]
        res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and "valid" in res.stdout, res.stderr
        wr = subprocess.run([*cmd[:-2], "split", str(root), "--no-near-duplicates"], env=_env(),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
        assert wr.returncode == 2 and "not writable" in wr.stderr and str(root) in wr.stderr, wr.stderr
        assert len(wr.stderr.strip().splitlines()) == 1
    finally:
        for p in [root, *root.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_reentrant_in_a_thread_exclusive_across_threads(tmp_path):
    root = tmp_path / "root"
    DatasetRoot(root).init()
    seen: list[str] = []

    @writes_root("inner")
    def inner(root: Path) -> bool:
        return holds_root_lock(root)

    @writes_root("outer")
    def outer(root: Path) -> bool:
        return inner(root)  # the same thread takes it again without waiting

    assert outer(root) and not holds_root_lock(root)

    def other() -> None:
        try:
            with lock_policy(wait=False), root_lock(root, "label"):
                seen.append("got it")
        except RootLockedError as exc:
            seen.append(str(exc))

    with root_lock(root, "extract"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert read_holder(root).verb == "extract" and read_holder(root).pid == os.getpid()
    assert "another thread of this process" in seen[0]
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen[1] == "got it"
    assert read_holder(root) is None


def test_waiting_writer_says_whom_it_waits_for(tmp_path):
    root = tmp_path / "root"
    DatasetRoot(root).init()
    messages: list[str] = []
    got = threading.Event()

    def second() -> None:
        with lock_policy(wait=True, on_wait=messages.append), root_lock(root, "label"):
            got.set()

    with root_lock(root, "split"):
        t = threading.Thread(target=second)
        t.start()
        deadline = time.monotonic() + 10
        while not messages and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not got.is_set()
    t.join(timeout=10)
    assert got.is_set()
    assert len(messages) == 1 and "`gaitdata split`" in messages[0] and f"pid {os.getpid()}" in messages[0]


def test_dry_run_takes_no_lock_and_writes_nothing(tmp_path):
    from gaitdata.extract import ExtractOptions, extract

    src = _sources(tmp_path / "in", ["s0"], n=4)
    s = extract([src], tmp_path / "root", ExtractOptions(dry_run=True), progress=False)
    assert s.dry_run and not (tmp_path / "root").exists()


def test_output_folders_a_stage_rewrites_are_refused(tmp_path):
    root = tmp_path / "root"
    DatasetRoot(root).init()
    for bad, owner in ((root / "frames" / "x", "extract"), (root / "labels", "label"), (root / ".gaitdata" / "e", "extract")):
        with pytest.raises(GaitdataError, match=f"inside .*which `gaitdata {owner}` rewrites"):
            check_output_dir(root, bad, "export")
    with pytest.raises(GaitdataError, match="is the dataset root itself"):
        check_output_dir(root, root, "export")
    check_output_dir(root, root / "exports" / "coco_v2", "export")
    check_output_dir(root, tmp_path / "elsewhere", "export")


def test_table_lock_is_a_no_op_for_the_root_lock_holder(tmp_path):
    root = tmp_path / "root"
    DatasetRoot(root).init()
    with root_lock(root, "extract"), tables_lock(root, exclusive=True), tables_lock(root, exclusive=False):
        assert validate(root).ok  # a reader inside the writer does not wait for itself


def test_every_writing_verb_has_no_wait(tmp_path, capsys):
    """While the root is locked, each writing verb with --no-wait refuses in one line before doing anything."""
    from gaitdata.cli import main

    root = tmp_path / "root"
    DatasetRoot(root).init()
    run = root / "models" / "run"
    run.mkdir(parents=True)
    f = tmp_path / "file.json"
    f.write_text("{}")
    demo_out = tmp_path / "demo"
    verbs = [
        ["extract", tmp_path, "--out", root], ["label", root, "--teacher", "test_fixed"],
        ["compare-labels", root, "a", "b"], ["split", root], ["export", "coco", root, "--labels", "a"],
        ["export", "gait-poses", root, "--labels", "a"], ["import", "coco", f, "--root", root, "--label-set", "a"],
        ["import", "alphapose", f, "--root", root], ["import", "labels", f, "--root", root],
        ["browse", root, "--pull", "--label-set", "a"], ["train", root], ["compress", run, "--method", "int8"],
        ["evaluate", root, "--run", run], ["migrate", root], ["demo", "--out", demo_out],
    ]  # fmt: skip
    locked, done = threading.Event(), threading.Event()

    def holder() -> None:
        with root_lock(root, "extract"), root_lock(demo_out / "dataset", "extract", create=True):
            locked.set()
            done.wait(60)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert locked.wait(10)
        for args in verbs:
            with pytest.raises(SystemExit) as exc:
                main([*map(str, args), "--no-wait"])
            err = capsys.readouterr().err.strip()
            assert exc.value.code == 2 and len(err.splitlines()) == 1, (args, err)
            assert "is locked by another thread of this process" in err and "`gaitdata extract`" in err, (args, err)
    finally:
        done.set()
        t.join(10)
    assert not (root / "labels").exists() and not (root / "splits").exists()
