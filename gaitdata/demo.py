"""The main job on built-in sample data: synth -> extract -> validate -> label -> split -> export
-> train -> evaluate (-> browse). Every stage is an ordinary library call; rerunning resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gaitdata.lock import writes_root
from gaitdata.progress import console as make_console
from gaitdata.progress import is_quiet

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class DemoOptions:
    out: Path = Path("demo_output")
    subjects: int = 4
    frames: int = 48
    seed: int = 0
    teacher: str = "mediapipe"
    epochs: int = 20
    train: bool = True
    browse: bool = False
    port: int | None = None


@dataclass
class DemoResult:
    root: Path
    stages: list[tuple[str, float, str]] = field(default_factory=list)  # (stage, seconds, summary)
    report: Path | None = None


def _stage(console: Console, result: DemoResult, name: str, fn: Callable[[], tuple[Any, str]]) -> Any:
    console.rule(f"[bold]{name}")
    t0 = time.perf_counter()
    value, summary = fn()
    dt = time.perf_counter() - t0
    result.stages.append((name, dt, summary))
    console.print(f"[green]✓[/] {name} [dim]({dt:.1f} s)[/]: {summary}", highlight=False)
    return value


def run_demo(opts: DemoOptions = DemoOptions(), console: Console | None = None) -> DemoResult:
    """Run every stage (holding the dataset root's lock), then open the App when asked (without it)."""
    result = _run_stages(opts, console or make_console())
    if opts.browse:
        from gaitdata import browse

        browse.launch(result.root, labels=None, split="demo", port=opts.port)
    return result


@writes_root("demo", lambda a: [Path(a["opts"].out).resolve() / "dataset"], create=True)
def _run_stages(opts: DemoOptions, console: Console) -> DemoResult:
    from gaitdata import synth
    from gaitdata.dataset import validate
    from gaitdata.errors import GaitdataError
    from gaitdata.extract import ExtractOptions, extract

    out = Path(opts.out).resolve()
    rec_dir = out / "recordings"
    root = out / "dataset"
    result = DemoResult(root=root)

    sample = _stage(
        console, result, "synth",
        lambda: _with_summary(
            synth.make_sample_set(rec_dir, n_subjects=opts.subjects, n_frames=opts.frames, seed=opts.seed,
                                  progress=True),
            lambda s: f"{len(s.recordings)} recordings of {opts.subjects} subjects in {rec_dir.name}/",
        ),
    )  # fmt: skip

    ex_opts = ExtractOptions(id_pattern=sample.id_pattern, metadata_csv=sample.metadata_csv)
    summary = _stage(
        console, result, "extract",
        lambda: _with_summary(
            extract([rec_dir], root, ex_opts, progress=True),
            lambda s: f"{s.n_ok} recordings ok, {s.n_failed} failed, {s.frames_written} frames written",
        ),
    )  # fmt: skip
    if summary.n_failed:
        raise GaitdataError(f"{summary.n_failed} sample recordings failed to extract; see the table above")

    def _validate() -> tuple[Any, str]:
        report = validate(root)
        if not report.ok:
            raise GaitdataError(f"validation of {root} failed: {report.errors[:3]}")
        return report, f"valid ({report.counts['frames_written']} frames)"

    _stage(console, result, "validate", _validate)

    _stage(
        console, result, "ground truth",
        lambda: (synth.write_ground_truth_labels(root), "synthetic ground truth stored as label set 'ground_truth'"),
    )  # fmt: skip

    from pseudolabel.runner import label

    _stage(
        console, result, f"label ({opts.teacher})",
        lambda: _with_summary(
            label(root, teacher=opts.teacher, label_set=opts.teacher, progress=True),
            lambda s: f"{s.n_frames} frames, {s.n_persons} persons, mean confidence {s.mean_confidence:.2f}",
        ),
    )  # fmt: skip

    _stage(console, result, "agreement with ground truth", lambda: _agreement(console, root, opts.teacher))

    import splits

    _stage(
        console, result, "split",
        lambda: _with_summary(
            splits.make_split(root, by="subject", fractions=_fractions(opts.subjects), seed=opts.seed, name="demo"),
            lambda s: "by subject: " + ", ".join(f"{k}={len(s.videos(k))} videos" for k in ("train", "val", "test")),
        ),
    )  # fmt: skip
    _stage(console, result, "audit", lambda: (splits.audit(root, "demo"), "no video or subject shared across parts"))

    from gaitdata.coco import export_coco

    files = _stage(
        console, result, "export coco",
        lambda: _with_summary(
            export_coco(root, opts.teacher, "demo"),
            lambda f: ", ".join(f"{k}: {Path(v).name}" for k, v in f.items()),
        ),
    )  # fmt: skip

    if opts.train:
        from gaitdata import student

        export_dir = Path(next(iter(files.values()))).parent
        run_dir = _stage(
            console, result, "train student",
            lambda: _with_summary(
                student.train(root, export_dir, model="fastpose_res18_w050_128x96", batch_size=8,
                              epochs=opts.epochs, seed=opts.seed, progress=not is_quiet()),
                lambda p: f"run {Path(p).name} (models/)",
            ),
        )  # fmt: skip
        _stage(
            console, result, "compress",
            lambda: _with_summary(
                [student.compress(run_dir, "slim", ratio=0.2, finetune_epochs=6, progress=not is_quiet()),
                 student.compress(run_dir, "int8"), student.compress(run_dir, "onnx")],
                lambda paths: ", ".join(Path(p).name for p in paths),
            ),
        )  # fmt: skip
        ev = _stage(
            console, result, "evaluate",
            lambda: _with_summary(
                student.evaluate(root, run_dir, split="test", labels=opts.teacher, progress=not is_quiet()),
                lambda e: f"{Path(e.report).name} in the run folder",
            ),
        )  # fmt: skip
        _print_student(console, ev, opts.teacher)
        result.report = Path(ev.report)

    _print_summary(console, result)
    return result


def _fractions(n_subjects: int) -> tuple[float, float, float]:
    """Train/val/test fractions that leave one subject each for val and test, the rest for training."""
    held_out = 1.0 / n_subjects
    return (1.0 - 2 * held_out, held_out, held_out)


def _print_student(console: Console, ev: Any, teacher: str) -> None:
    """Student variants against the teacher and the ground truth, with their cost, side by side."""
    from gaitdata.tables import key_column, make_table, num_column

    m = ev.metrics
    cost = {row.get("model"): row for row in ev.cost}
    table = make_table("student on the held-out subject")
    key_column(table, "model")
    for col in (f"AP vs\n{teacher}", "PCK@0.1\nvs GT", "MMACs", "CPU\nms/crop"):
        num_column(table, col)

    def _cost(row: dict) -> tuple[str, str]:
        macs, ms = row.get("macs"), row.get("cpu_ms")
        return (f"{macs / 1e6:.0f}" if macs else "-", f"{ms:.1f}" if ms else "-")

    gt = m.get("teacher_vs_gt")
    if gt:
        table.add_row(f"teacher ({teacher})", "1.000", f"{gt['PCK@0.1']:.3f}", "-", "-")
    for name, v in m.get("variants", {}).items():
        pck_gt = f"{v['vs_gt']['PCK@0.1']:.3f}" if v.get("vs_gt") else "-"
        table.add_row(f"student {name}", f"{v['vs_teacher']['AP']:.3f}", pck_gt, *_cost(cost.get(f"student {name}", {})))
    for name, row in cost.items():
        if name and not name.startswith("student "):
            table.add_row(f"{name} (cost reference)", "-", "-", *_cost(row))
    console.print(table)


def _with_summary(value: Any, fmt: Callable[[Any], str]) -> tuple[Any, str]:
    return value, fmt(value)


def _agreement(console: Console, root: Path, teacher: str) -> tuple[Any, str]:
    """Per-recording agreement of the teacher with the synthetic ground truth (OKS, PCK@0.1)."""
    import numpy as np

    from gaitdata.tables import key_column, make_table, num_column
    from pseudolabel.agreement import compare_label_sets

    df = compare_label_sets(root, "ground_truth", teacher)
    table = make_table(f"{teacher} vs synthetic ground truth")
    key_column(table, "recording")
    for col in ("persons", "mean OKS", "PCK@0.1"):
        num_column(table, col)
    matched = df[df["oks"].notna()] if "oks" in df else df
    for vid, g in matched.groupby("video_id", sort=True):
        table.add_row(str(vid), str(len(g)), f"{g['oks'].mean():.3f}", f"{_pck(g):.3f}")
    console.print(table)
    return df, f"mean OKS {float(np.nanmean(matched['oks'])):.3f} over {len(matched)} persons"


def _pck(g: Any) -> float:
    import numpy as np

    if "pck_0.1" in g:
        return float(np.nanmean(g["pck_0.1"]))
    return float("nan")


def _print_summary(console: Console, result: DemoResult) -> None:
    from gaitdata.tables import key_column, make_table, num_column, text_column

    table = make_table("gaitdata demo")
    key_column(table, "stage")
    num_column(table, "time")
    text_column(table, "result")
    for name, dt, summary in result.stages:
        table.add_row(name, f"{dt:.1f} s", summary)
    console.print(table)
    console.print(f"dataset root: {result.root}", highlight=False, soft_wrap=True)
    if result.report:
        console.print(f"report: {result.report}", highlight=False, soft_wrap=True)
