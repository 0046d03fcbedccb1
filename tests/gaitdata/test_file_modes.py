"""Every artefact gets the mode the umask gives new files, so another user (or a training container)
can read a dataset root: 0644 files / 0755 folders under umask 022, 0640 / 0750 under 027."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import _cli_driver  # noqa: F401  (registers the test_fixed teacher)
import pytest

from gaitdata.cli import main
from gaitdata.containers import write
from gaitdata.io import atomic_open, atomic_write_json, current_umask
from gaitdata.testing.recordings import plane_recording


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def gaitdata(*args: str | Path) -> None:
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert not exc.code, f"gaitdata {' '.join(map(str, args))} exited {exc.code}"


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_atomic_writes_take_the_umask_mode(tmp_path, mask):
    with umask(mask):
        assert current_umask() == mask
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        with atomic_open(tmp_path / "sub" / "b.bin") as fh:
            fh.write(b"x")
    for name in ("a.json", "sub/b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o777 & ~mask


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder outside pytest's private temporary tree, which another user can traverse."""
    d = Path(tempfile.mkdtemp(prefix="gaitdata-modes-"))
    d.chmod(0o711)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _pipeline(base: Path, with_student: bool) -> Path:
    for i in range(3):
        write(plane_recording(n=6, size=(96, 72), seed=i), base / "in" / f"s{i}" / "walk.mp4", "video")
    root = base / "root"
    gaitdata("extract", base / "in", "--out", root, "-q", "--workers", "1")
    gaitdata("label", root, "--teacher", "test_fixed", "-q")
    gaitdata("label", root, "--teacher", "test_fixed", "--label-set", "second", "-q")
    gaitdata("compare-labels", root, "test_fixed", "second", "--merge", "merged", "--quiet")
    gaitdata("split", root, "--by", "video", "--fractions", "0.34,0.33,0.33", "--no-near-duplicates")
    gaitdata("audit", root, "--no-near-duplicates", "--json", root / "exports" / "audit.json")
    gaitdata("export", "coco", root, "--labels", "test_fixed", "--copy-images")
    gaitdata("export", "gait-poses", root, "--labels", "test_fixed")
    if with_student:
        run = root / "models" / "tiny"
        gaitdata("train", root, "--model", "fastpose_res10_w025", "--input-size", "64x48", "--epochs", "1",
                 "--batch-size", "6", "--out", run, "-q")  # fmt: skip
        gaitdata("compress", run, "--method", "int8", "--method", "onnx", "-q")
        gaitdata("evaluate", root, "--model", run, "--no-latency", "--no-variants", "--gt", "none")
    return root


def _wrong_modes(root: Path, file_mode: int, dir_mode: int) -> list[str]:
    bad = []
    for p in [root, *root.rglob("*")]:
        if p.is_symlink():
            continue
        want = dir_mode if p.is_dir() else file_mode
        got = stat.S_IMODE(p.lstat().st_mode)
        if got != want:
            bad.append(f"{p.relative_to(root.parent)} {oct(got)}")
    return bad


def _unreadable_for(root: Path, uid: int, gid: int, *, denied_ok: bool = False) -> list[str]:
    """Paths that user ``uid`` (group ``gid``, no other groups) cannot read or, for folders, list."""
    if shutil.which("setpriv") is None or shutil.which("find") is None:
        pytest.skip("setpriv and find are needed to act as another user")
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "find", str(root),
           "(", "-type", "f", "!", "-readable", ")", "-o", "(", "-type", "d", "!", "(", "-readable", "-executable", ")", ")"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 or denied_ok, res.stderr
    return res.stdout.split()


def test_another_user_reads_the_whole_root_under_umask_022(shared_dir):
    with umask(0o022):
        root = _pipeline(shared_dir, with_student=False)
    assert _wrong_modes(root, 0o644, 0o755) == []
    assert (root / "labels" / "merged.parquet").is_file() and (root / "exports" / "gait_poses").is_dir()
    if os.geteuid() != 0:
        pytest.skip("modes checked; reading them as another user needs root (setpriv --reuid)")
    assert _unreadable_for(root, 65534, 65534) == []
    private = root / "exports" / "private.txt"  # the check itself can fail
    private.write_text("x")
    private.chmod(0o600)
    assert _unreadable_for(root, 65534, 65534) == [str(private)]


@pytest.mark.slow
def test_every_artefact_follows_umask_027(shared_dir):
    with umask(0o027):
        root = _pipeline(shared_dir, with_student=True)
    run = root / "models" / "tiny"
    for name in ("best.pt", "last.pt", "int8.pt", "model.onnx", "metrics.json", "report.md", "config.json"):
        assert (run / name).is_file(), name
    assert any((run / "report").glob("*.png"))
    assert _wrong_modes(root, 0o640, 0o750) == []
    if os.geteuid() == 0 and shutil.which("setpriv"):
        shared_dir.chmod(0o711)
        assert _unreadable_for(root, 65534, 0) == []  # a member of the owner's group reads everything
        assert _unreadable_for(root, 65534, 65534, denied_ok=True) == [str(root)]  # anybody else: not even the root
