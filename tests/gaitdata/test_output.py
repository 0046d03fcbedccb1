"""What the command line writes into a log file or a pipe: plain progress lines (no carriage-return
animation, no escape codes), no native log lines, summary tables that fit 80 columns, nothing
but warnings and errors with ``-q``; the progress display itself; verbs that work without tqdm;
and a ``gaitdata --help`` that imports no heavy module.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from gaitdata.nativelog import NATIVE_LOGS_ENV, strip_native_noise
from gaitdata.progress import ProgressBar, console, is_quiet, progress_bar, quiet_output, say

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tests" / "gaitdata" / "_cli_driver.py"
HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
TEACHER = "mediapipe" if HAS_MEDIAPIPE else "test_fixed"
NATIVE = re.compile(r"^[IW]\d{4} |absl::InitializeLog|inference_feedback_manager|TensorFlow Lite", re.M)
HEAVY = ("numpy", "pandas", "pyarrow", "torch", "cv2")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


# ---- the progress display ------------------------------------------------------------------------------
def _plain(total: int, seconds_per_unit: float) -> list[str]:
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(total=total, desc="label x", unit="frame", stream=out, clock=clock)
    assert bar.mode == "plain"
    for _ in range(total):
        clock.t += seconds_per_unit
        bar.update(1)
    bar.close()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    return out.getvalue().splitlines()


def test_plain_lines_every_tenth_and_at_the_end():
    lines = _plain(100, 0.25)  # a tenth every 2.5 s
    assert [ln.split()[2] for ln in lines[:-1]] == [f"{n}/100" for n in range(10, 100, 10)]
    assert lines[0] == "label x: 10/100 frames (10%) in 0:02, 4.0 frames/s, ~0:22 left"
    assert lines[-1] == "label x: 100 frames in 25.0 s (4.0 frames/s)"


def test_plain_lines_at_most_once_a_second():
    lines = _plain(100, 0.0625)  # a tenth every 0.625 s: a line when a new tenth is reached a second later
    assert [ln.split()[2] for ln in lines[:-1]] == ["16/100", "32/100", "48/100", "64/100", "80/100", "96/100"]
    assert lines[-1] == "label x: 100 frames in 6.2 s (16.0 frames/s)"


def test_plain_heartbeat_on_a_slow_step_and_a_stopped_bar():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(total=1000, desc="train", unit="batch", stream=out, clock=clock)
    clock.t = 3.0
    bar.update(1)  # 0.1% after 3 s: not yet
    assert out.getvalue() == ""
    clock.t = 10.5
    bar.set_postfix(loss="0.00250")  # no progress, but 10 s since the start: a heartbeat
    clock.t = 12.0
    bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "train: 1/1000 batches (0%) in 0:10, 10.5 s/batch, ~2:54:50 left, loss=0.00250"
    assert lines[1] == "train: stopped at 2/1000 batches (0%) after 12.0 s, loss=0.00250"
    assert len(lines) == 2


def test_a_quick_transient_bar_prints_nothing_and_a_slow_one_says_it_finished():
    clock, out = Clock(), io.StringIO()
    for _ in ProgressBar(range(50), desc="hashes", stream=out, clock=clock, transient=True):
        clock.t += 0.001
    assert out.getvalue() == ""
    for _ in ProgressBar(range(50), desc="hashes", stream=out, clock=clock, transient=True):
        clock.t += 0.1
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("hashes: 50 items in 5.0 s") and len(lines) > 2


def test_quiet_and_disabled_bars_print_nothing(capsys):
    with quiet_output():
        assert is_quiet()
        bar = progress_bar(range(3), desc="x")
        assert bar.mode == "off" and list(bar) == [0, 1, 2]
        console().print("a summary")
        say("a line")
    assert not is_quiet()
    assert progress_bar(range(3), enabled=False).mode == "off"
    assert capsys.readouterr() == ("", "")


def test_a_terminal_animates_and_a_nested_bar_joins_the_same_display():
    out = Tty()
    outer = ProgressBar(total=3, desc="outer", stream=out)
    assert outer.mode == "live"
    inner = ProgressBar(total=5, desc="inner", stream=out, transient=True)
    assert inner._live is outer._live and len(outer._live.tasks) == 2
    for _ in range(5):
        inner.update(1)
    inner.close()
    assert len(outer._live.tasks) == 1  # the transient row is gone, the display stays
    outer.update(3)
    outer.close()
    text = out.getvalue()
    assert "outer" in text and "\x1b[" in text  # drawn with escape codes on a terminal
    after = ProgressBar(total=1, desc="next", stream=out)
    assert after._owner  # the closed display is not reused
    after.close()


def test_tqdm_style_iteration_update_and_postfix():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(iter(range(4)), desc="epoch 1/2", unit="batch", stream=out, clock=clock)
    assert bar.total is None
    for _ in bar:
        clock.t += 3
        bar.set_postfix(loss=f"{0.5:.3f}")
    lines = out.getvalue().splitlines()
    assert lines[-1] == "epoch 1/2: 4 batches in 12.0 s (3.0 s/batch), loss=0.500"


# ---- native log lines -----------------------------------------------------------------------------------
def test_native_noise_is_dropped_and_everything_else_kept():
    data = (
        b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"W0000 00:00:1796546594.105808   19725 inference_feedback_manager.cc:114] Feedback manager ...\n"
        b"I0612 10:11:12.123456  4242 calculator_graph.cc:77] starting\n"
        b"E0000 00:00:1796546594.105808   19725 model.cc:10] a real error\n"
        b"a Python warning line\n"
    )
    assert strip_native_noise(data) == b"E0000 00:00:1796546594.105808   19725 model.cc:10] a real error\na Python warning line\n"


_FD2_SCRIPT = """
import os, sys
from gaitdata.nativelog import filtered_native_logs
with filtered_native_logs():
    os.write(2, b"W0000 00:00:1796546594.105808   19725 inference_feedback_manager.cc:114] noise\\n")
    print("kept from Python", file=sys.stderr, flush=True)
    os.write(2, b"E0000 00:00:1796546594.1   1 x.cc:1] kept error\\n")
print("after", file=sys.stderr, flush=True)
"""


@pytest.mark.parametrize("shown", [False, True])
def test_descriptor_two_is_filtered_around_native_code(shown):
    env = {**os.environ, NATIVE_LOGS_ENV: "1" if shown else ""}
    res = subprocess.run([sys.executable, "-c", _FD2_SCRIPT], env=env, capture_output=True, text=True, check=True)
    lines = res.stderr.splitlines()
    assert lines[-3:] == ["kept from Python", "E0000 00:00:1796546594.1   1 x.cc:1] kept error", "after"]
    assert (len(lines) == 4) is shown and ("noise" in res.stderr) is shown


# ---- the command line into a pipe ----------------------------------------------------------------------
def _run(*args: object, cwd: Path, block_tqdm: bool = False) -> subprocess.CompletedProcess:
    """``gaitdata ARGS`` (with the test teacher ``test_fixed``) with stdout and stderr into pipes."""
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(REPO)}
    env.pop(NATIVE_LOGS_ENV, None)
    for var in ("FORCE_COLOR", "FORCE_TERMINAL", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(var, None)
    if block_tqdm:
        code = (
            "import sys, runpy\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'tqdm' or name.startswith('tqdm.'):\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Block())\n"
            f"sys.argv = [{str(DRIVER)!r}] + sys.argv[1:]\n"
            f"runpy.run_path({str(DRIVER)!r}, run_name='__main__')\n"
        )
        cmd = [sys.executable, "-c", code, *map(str, args)]
    else:
        cmd = [sys.executable, str(DRIVER), *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _assert_clean(res: subprocess.CompletedProcess, what: str) -> None:
    assert res.returncode == 0, f"{what}: {res.stderr}"
    for name, text in (("stdout", res.stdout), ("stderr", res.stderr)):
        assert "\r" not in text, f"{what} {name}: carriage-return animation\n{text}"
        assert "\x1b" not in text, f"{what} {name}: escape codes\n{text}"
        assert not NATIVE.search(text), f"{what} {name}: native log lines\n{text}"


def _assert_tables_fit(text: str, what: str, names: list[str]) -> None:
    """Tables (their rules, and every line without a path) fit 80 columns, no cell is cut with an
    ellipsis, every name is whole on one line. Lines naming a path are not wrapped, on purpose."""
    rules = [ln for ln in text.splitlines() if "─" in ln or "━" in ln]
    assert all(len(ln) <= 80 for ln in rules), f"{what}: a table wider than 80 columns\n{text}"
    assert all(len(ln) <= 80 for ln in text.splitlines() if "/" not in ln), f"{what}: a line over 80\n{text}"
    assert "…" not in text, f"{what}: a cell cut short\n{text}"
    for name in names:
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", text, re.M), f"{what}: {name!r} not shown whole\n{text}"


@pytest.fixture(scope="module")
def piped(tmp_path_factory) -> dict[str, subprocess.CompletedProcess | Path]:
    """The pipeline run verb by verb into pipes: synth, extract, label, split, audit, export, compare."""
    w = tmp_path_factory.mktemp("piped")
    out: dict = {"dir": w}
    out["synth"] = _run("synth", "rec", "--sample-set", "--subjects", 3, "--frames", 8, "--size", "320x240",
                        "--depth-size", "240x180", cwd=w, block_tqdm=True)  # fmt: skip
    out["extract"] = _run("extract", "rec", "--out", "root", "--id-pattern", "{subject}/{session}_{view}",
                          "--metadata", "rec/metadata.csv", "--workers", 1, cwd=w)  # fmt: skip
    out["label"] = _run("label", "root", "--teacher", TEACHER, "--label-set", "teacher", cwd=w, block_tqdm=True)
    out["label2"] = _run("label", "root", "--teacher", "test_fixed", "--label-set", "fixed", cwd=w)
    out["split"] = _run("split", "root", "--labels", "teacher", cwd=w)
    out["audit"] = _run("audit", "root", "--labels", "teacher", cwd=w)
    out["export"] = _run("export", "coco", "root", "--labels", "teacher", cwd=w)
    out["compare"] = _run("compare-labels", "root", "teacher", "fixed", cwd=w)
    out["validate"] = _run("validate", "root", cwd=w)
    return out


RECORDINGS = [f"sub0{s}__ses1_{v}" for s in (1, 2, 3) for v in ("front", "side")]


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["synth", "extract", "label", "label2", "split", "audit", "export", "compare",
                                  "validate"])  # fmt: skip
def test_piped_output_is_plain_and_free_of_native_logs(piped, verb):
    _assert_clean(piped[verb], verb)


@pytest.mark.slow
def test_piped_progress_is_plain_lines(piped):
    """Label and synth report progress as whole lines on stderr (and work without tqdm installed)."""
    lines = piped["label"].stderr.splitlines()
    assert re.fullmatch(r"label teacher: \d+ frames in [0-9.]+ s \([0-9.]+ frames/s\)", lines[-1]), lines
    assert piped["synth"].stderr.splitlines()[-2].startswith("sample set: 6 recordings in ")
    assert piped["extract"].stderr.splitlines()[-1].startswith("extract: 6 recordings in ")


@pytest.mark.slow
@pytest.mark.parametrize("verb,names", [
    ("synth", None), ("extract", RECORDINGS), ("label", RECORDINGS), ("split", ["train", "val", "test"]),
    ("audit", ["train", "val", "test"]), ("compare", ["persons_matched", "fraction_below_threshold"]),
])  # fmt: skip
def test_summary_tables_fit_80_columns(piped, verb, names):
    if names is None:  # the recordings written, by their path relative to OUT
        rec = piped["dir"] / "rec"
        names = [p.relative_to(rec).as_posix() for p in rec.glob("sub*/*") if p.suffix in (".bag", ".db3")]
        assert len(names) >= 2
    _assert_tables_fit(piped[verb].stdout, verb, names)


@pytest.mark.slow
def test_quiet_prints_nothing_but_errors(piped):
    w = piped["dir"]
    runs = {
        "synth": _run("synth", "rec_q", "--kind", "bag", "--frames", 4, "--size", "160x120", "--depth-size",
                      "128x96", "-q", cwd=w),  # fmt: skip
        "extract": _run("extract", "rec_q", "--out", "root_q", "-q", "--workers", 1, cwd=w),
        "label": _run("label", "root", "--teacher", TEACHER, "--label-set", "q", "--video", RECORDINGS[0], "-q", cwd=w),
        "validate": _run("validate", "root_q", "-q", cwd=w),
        "split": _run("split", "root", "--name", "q", "--no-near-duplicates", "-q", cwd=w),
        "audit": _run("audit", "root", "--split", "q", "--no-near-duplicates", "-q", cwd=w),
        "export": _run("export", "coco", "root", "--labels", "teacher", "--split", "q", "-q", cwd=w),
        "gait-poses": _run("export", "gait-poses", "root", "--labels", "teacher", "-q", cwd=w),
        "compare": _run("compare-labels", "root", "teacher", "fixed", "--merge", "both", "-q", cwd=w),
        "migrate": _run("migrate", "root", "-q", cwd=w),
    }
    for verb, res in runs.items():
        assert res.returncode == 0, f"{verb}: {res.stderr}"
        assert (res.stdout, res.stderr) == ("", ""), f"{verb} -q printed:\n{res.stdout}{res.stderr}"
    bad = _run("label", "no_such_root", "-q", cwd=w)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1
    assert bad.stderr.startswith("error: ")


@pytest.mark.slow
@pytest.mark.mediapipe
def test_verbose_shows_native_logs(piped):
    res = _run("label", "root", "--teacher", "mediapipe", "--label-set", "v", "--video", RECORDINGS[0], "--verbose",
               cwd=piped["dir"])  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert NATIVE.search(res.stderr), res.stderr


@pytest.mark.slow
def test_demo_stages_into_a_log_file(tmp_path):
    log = tmp_path / "demo.log"
    with open(log, "w") as f:
        res = subprocess.run(
            [sys.executable, "-m", "gaitdata", "demo", "--out", tmp_path / "d", "--subjects", "3", "--frames", "10",
             "--no-train"],
            env={**os.environ, "COLUMNS": "80", "PYTHONPATH": str(REPO)}, stdout=f, stderr=subprocess.STDOUT,
            timeout=600,
        )  # fmt: skip
    text = log.read_text()
    _assert_clean(subprocess.CompletedProcess([], res.returncode, text, ""), "demo")
    _assert_tables_fit(text, "demo", ["sub01__ses1_front", "agreement with ground truth"])
    assert re.search(r"^label mediapipe: \d+ frames in ", text, re.M) or not HAS_MEDIAPIPE


# ---- every verb: -q and --verbose; a fast --help ---------------------------------------------------------
def _commands() -> list[tuple[str, click.Command]]:
    from gaitdata.cli import VERBS, cli

    ctx = click.Context(cli)
    out = []
    for name in VERBS:
        cmd = cli.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            out += [(f"{name} {sub}", c) for sub, c in cmd.commands.items()]
        else:
            out.append((name, cmd))
    return out


def test_every_verb_takes_quiet_and_verbose():
    for name, cmd in _commands():
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        assert {"-q", "--quiet", "--verbose"} <= opts, f"gaitdata {name} lacks -q/--quiet/--verbose"


_IMPORTED = """
import sys
sys.argv = ["gaitdata", *sys.argv[1:]]
try:
    from gaitdata.cli import main
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY", ",".join(heavy), file=sys.stderr)
"""


def test_help_imports_no_heavy_module():
    code = _IMPORTED.format(heavy=HEAVY)
    res = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)  # fmt: skip
    assert "evaluate" in res.stdout and "Compare two label sets (OKS, per-joint distance)" in res.stdout
    assert res.stderr.strip().splitlines()[-1] == "HEAVY", res.stderr


def test_verb_modules_import_no_heavy_module():
    from gaitdata.cli import VERBS

    mods = sorted({m for m, _ in VERBS.values()})
    code = (f"import sys\nfor m in {mods!r}:\n    __import__(m)\n"
            f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))")  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)  # fmt: skip
    assert res.stdout.strip() == "", res.stdout
