"""User errors through the command line: one line on stderr naming the file and the fix, exit status 2,
never a traceback."""

from __future__ import annotations

import errno
import math
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import _cli_driver  # noqa: F401  (registers the test_fixed teacher)
import pytest

from gaitdata.cli import main, user_error_line
from gaitdata.containers import write
from gaitdata.errors import CheckpointError, GaitdataError, GaitdataNotFoundError, UnsafeCheckpointError
from gaitdata.extract import ExtractOptions, extract
from gaitdata.io import load_torch_file
from gaitdata.testing.recordings import plane_recording

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("_cli_driver.py")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    from pseudolabel.runner import label

    base = tmp_path_factory.mktemp("errs")
    for i in range(2):
        write(plane_recording(n=6, size=(96, 72), seed=i), base / "in" / f"s{i}" / "walk.mp4", "video")
    out = base / "root"
    assert extract([base / "in"], out, ExtractOptions(workers=1), progress=False).ok
    label(out, teacher="test_fixed", progress=False)
    return out


def run_main(capsys, *args: str | Path) -> tuple[int, str]:
    """``gaitdata ARGS`` in this process; (exit status, stderr)."""
    try:
        main([str(a) for a in args])
        rc = 0
    except SystemExit as exc:
        rc = int(exc.code or 0)
    return rc, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module")
def evil(tmp_path_factory) -> tuple[Path, Path]:
    """A checkpoint whose pickle would run a shell command when loaded unsafely; and the file it would touch."""
    import torch

    d = tmp_path_factory.mktemp("evil")
    marker = d / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = d / "fast_res50_256x192.pth"
    torch.save({"conv.weight": torch.zeros(2), "cfg": Payload()}, path)
    return path, marker


def _unsafe_message_ok(line: str, path: Path) -> None:
    assert str(path.name) in line
    assert "contains Python objects that are not plain weights" in line
    assert "only load checkpoints you trust" in line
    assert "weights_only" not in line and "truncated" not in line and "corrupt" not in line


# ---- the cases users met -------------------------------------------------------------------------------
def _drop_privileges() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a root read-only for this process")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


@pytest.mark.parametrize(
    "verb", [["label", "--teacher", "test_fixed", "--label-set", "again"], ["split", "--no-near-duplicates"]]
)
def test_writer_on_a_read_only_root(root, tmp_path, verb):
    ro = tmp_path / "ro"
    shutil.copytree(root, ro)
    for p in sorted(ro.rglob("*"), reverse=True):
        p.chmod(0o555 if p.is_dir() else 0o444)
    ro.chmod(0o555)
    try:
        cmd = [*_drop_privileges(), sys.executable, str(DRIVER), verb[0], str(ro), *verb[1:]]
        res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    finally:
        for p in [ro, *ro.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert res.returncode == 2, res.stderr
    line = one_line(res.stderr)
    assert str(ro) in line and "not writable" in line and "copy the root" in line


def test_evaluate_a_run_folder_without_checkpoint(root, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    rc, err = run_main(capsys, "evaluate", root, "--run", run, "--no-latency")
    assert rc == 2
    line = one_line(err)
    assert str(run) in line and "best.pt" in line and "gaitdata train" in line


def test_compress_an_empty_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, err = run_main(capsys, "compress", empty, "--method", "int8")
    assert rc == 2
    line = one_line(err)
    assert str(empty) in line and "gaitdata train" in line


def test_label_with_a_missing_box_file(root, tmp_path, capsys):
    missing = tmp_path / "MISSING.json"
    rc, err = run_main(capsys, "label", root, "--teacher", "test_fixed", "--label-set", "boxed", "--boxes",
                       f"json:{missing}", "-q")  # fmt: skip
    assert rc == 2
    assert "MISSING.json" in one_line(err)
    assert not (root / "labels" / "boxed.parquet").exists()


@pytest.mark.parametrize("fps", ["nan", "inf", "-inf", "0", "-2"])
def test_extract_refuses_a_frame_rate_that_is_not_a_positive_number(tmp_path, capsys, fps):
    src = tmp_path / "in"
    write(plane_recording(n=3, size=(64, 48)), src / "walk.mp4", "video")
    rc, err = run_main(capsys, "extract", src, "--out", tmp_path / "root", f"--fps={fps}", "-q")
    assert rc == 2
    line = one_line(err)
    assert "fps must be a finite, positive number" in line and "gaitdata extract --help" in line
    assert not (tmp_path / "root").exists()


def test_every_float_extract_option_is_checked():
    for field in ("target_fps", "images_fps", "start_s", "end_s"):
        for bad in (math.nan, math.inf, -math.inf, -1.0):
            with pytest.raises(ValueError, match="must be a finite"):
                ExtractOptions(**{field: bad})
    for field in ("target_fps", "images_fps", "end_s"):
        with pytest.raises(ValueError, match="finite, positive"):
            ExtractOptions(**{field: 0.0})
    assert ExtractOptions(start_s=0.0, end_s=1.5, target_fps=7.5).start_s == 0.0


@pytest.mark.parametrize("inside", ["frames/x", "labels", ".gaitdata/x", "."])
def test_export_into_a_folder_a_stage_rewrites(root, capsys, inside):
    from splits import make_split

    make_split(root, by="video", fractions=(0.5, 0.5), near_duplicates=False, name="half")
    out = (root / inside).resolve()
    before = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
    rc, err = run_main(capsys, "export", "coco", root, "--labels", "test_fixed", "--split", "half", "--out", out)
    assert rc == 2
    line = one_line(err)
    assert str(out) in line and ("rewrites" in line or "dataset root itself" in line) and "exports" in line
    assert (sorted(p.name for p in out.iterdir()) if out.is_dir() else None) == before
    rc, err = run_main(capsys, "export", "coco", root, "--labels", "test_fixed", "--split", "half", "--out",
                       root / "exports" / "half")  # fmt: skip
    assert rc == 0 and (root / "exports" / "half" / "train.json").is_file(), err


def test_a_malicious_student_checkpoint_is_called_what_it_is(root, evil, capsys):
    path, marker = evil
    for args in (["evaluate", root, "--run", path, "--no-latency"], ["compress", path, "--method", "int8"]):
        rc, err = run_main(capsys, *args)
        assert rc == 2
        _unsafe_message_ok(one_line(err), path)
    assert not marker.exists()


def test_a_malicious_teacher_checkpoint_is_called_what_it_is(root, evil, capsys):
    path, marker = evil
    rc, err = run_main(capsys, "label", root, "--teacher", "alphapose", "--weights", path, "--label-set", "ap", "-q")
    assert rc == 2
    _unsafe_message_ok(one_line(err), path)
    assert not marker.exists()


# ---- the one torch loader --------------------------------------------------------------------------------
def test_one_loader_tells_unsafe_from_damaged(tmp_path, evil):
    import torch

    path, marker = evil
    legacy = tmp_path / "legacy.pt"
    torch.save({"x": torch.ones(1)}, legacy, _use_new_zipfile_serialization=False)
    assert float(load_torch_file(legacy)["x"]) == 1.0

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for proto in (2, 4):  # a bare pickle, not written by torch
        p = tmp_path / f"bare{proto}.pkl"
        p.write_bytes(pickle.dumps({"w": 1, "x": Payload()}, protocol=proto))
        with pytest.raises(UnsafeCheckpointError, match="references posix.system|references os.system"):
            load_torch_file(p)
    with pytest.raises(UnsafeCheckpointError, match="not plain weights") as info:
        load_torch_file(path, expected="the AlphaPose checkpoint")
    assert "weights_only" not in str(info.value) and info.value.__cause__ is None
    for proto in (4, 5):  # torch's zip container with a newer pickle protocol: the same verdicts
        p = tmp_path / f"evil{proto}.pth"
        torch.save({"conv.weight": torch.zeros(2), "cfg": Payload()}, p, pickle_protocol=proto)
        with pytest.raises(UnsafeCheckpointError, match="references posix.system|references os.system"):
            load_torch_file(p)
        plain = tmp_path / f"plain{proto}.pth"
        torch.save({"model": {"w": torch.zeros(2), "b": torch.ones(3)}, "epoch": 3}, plain, pickle_protocol=proto)
        try:
            assert float(load_torch_file(plain)["model"]["b"].sum()) == 3.0
        except CheckpointError as exc:  # a torch whose safe loader cannot read this protocol: says so
            assert not isinstance(exc, UnsafeCheckpointError) and "re-save it" in str(exc), exc
    assert not marker.exists()

    zeros = tmp_path / "zeros.pt"
    zeros.write_bytes(b"\0" * 100)
    with pytest.raises(CheckpointError, match="truncated, corrupt") as info:
        load_torch_file(zeros, fix="download it again")
    assert not isinstance(info.value, UnsafeCheckpointError) and "weights_only" not in str(info.value)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(legacy.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_torch_file(cut)
    with pytest.raises(GaitdataNotFoundError, match="not found") as info:
        load_torch_file(tmp_path / "absent.pt")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CheckpointError)


# ---- the command line's error handling -------------------------------------------------------------------
def test_os_errors_become_one_line_with_the_path_and_a_fix():
    line = user_error_line(PermissionError(errno.EACCES, "Permission denied", "/data/root/labels/x.parquet"))
    assert line.startswith("/data/root/labels/x.parquet: Permission denied; ") and "permission" in line
    line = user_error_line(OSError(errno.ENOSPC, "No space left on device", "/data/root/frames"))
    assert "/data/root/frames" in line and "free some space" in line
    assert user_error_line(FileNotFoundError("no train.json in X; export first")) == "no train.json in X; export first"
    assert user_error_line(GaitdataError("two\nlines")) == "two lines"


def test_usage_errors_are_one_line_with_where_the_help_is(capsys):
    rc, err = run_main(capsys, "split", "/nonexistent-root", "--fractions", "a,b")
    assert rc == 2
    line = one_line(err)
    assert "expected comma-separated numbers" in line and "gaitdata split --help" in line


def test_gaitdata_debug_shows_the_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("GAITDATA_DEBUG", "1")
    with pytest.raises(GaitdataError, match="not a gaitdata dataset root"):
        main(["label", str(tmp_path), "--teacher", "test_fixed"])


def test_a_damaged_table_is_named_not_traced(root, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    (bad / "videos.parquet").write_bytes(b"not a table")
    rc, err = run_main(capsys, "label", bad, "--teacher", "test_fixed", "--label-set", "x", "-q")
    assert rc == 2
    line = one_line(err)
    assert str(bad / "videos.parquet") in line and "damaged" in line


def test_a_file_where_the_bookkeeping_folder_belongs(root, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    shutil.rmtree(bad / ".gaitdata")
    (bad / ".gaitdata").write_text("x")
    rc, err = run_main(capsys, "split", bad, "--no-near-duplicates")
    assert rc == 2
    line = one_line(err)
    assert str(bad / ".gaitdata") in line and "not a folder" in line


def test_export_from_a_read_only_root_into_a_folder_of_ones_own(root, tmp_path):
    from splits import make_split

    ro = tmp_path / "ro"
    shutil.copytree(root, ro)
    make_split(ro, by="video", fractions=(0.5, 0.5), near_duplicates=False, name="half")
    for p in sorted(ro.rglob("*"), reverse=True):
        p.chmod(0o555 if p.is_dir() else 0o444)
    ro.chmod(0o555)
    mine = tmp_path / "mine"
    try:
        cmd = [*_drop_privileges(), sys.executable, str(DRIVER), "export", "coco", str(ro), "--labels", "test_fixed",
               "--split", "half"]  # fmt: skip
        inside = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
        elsewhere = subprocess.run([*cmd, "--out", str(mine)], env=_env(), capture_output=True, text=True, timeout=120)
    finally:
        for p in [ro, *ro.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert inside.returncode == 2 and "--out FOLDER outside the root" in one_line(inside.stderr)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert (mine / "train.json").is_file() and (mine / "test.json").is_file()
