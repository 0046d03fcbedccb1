"""The main job on built-in sample data: synth -> extract -> validate -> label -> split -> export
-> train -> compress -> evaluate -> label with the trained student (-> browse). Every stage is an
ordinary library call; rerunning resumes.
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

STUDENT = "fastpose_res18_w050_128x96"


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

    _stage(
        console, result, f"label ({opts.teacher})",
        lambda: _with_summary(
            _label_demo(console, root, opts.teacher),
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
        result.report = _student_stages(console, result, root, files, opts)

    _print_summary(console, result)
    return result


def _student_stages(console: Console, result: DemoResult, root: Path, files: dict, opts: DemoOptions) -> Path:
    """train -> compress (pruned to a MAC budget, int8, ONNX) -> evaluate -> label with the student."""
    from gaitdata import student

    export_dir = Path(next(iter(files.values()))).parent
    run_dir = _stage(
        console, result, "train student",
        lambda: _with_summary(_train_demo(console, root, export_dir, opts), lambda p: f"run {Path(p).name} (models/)"),
    )  # fmt: skip
    _stage(console, result, "compress", lambda: _compress(run_dir))
    ev = _stage(
        console, result, "evaluate",
        lambda: _with_summary(
            student.evaluate(root, run_dir, split="test", labels=opts.teacher, progress=not is_quiet()),
            lambda e: f"{Path(e.report).name} in the run folder",
        ),
    )  # fmt: skip
    _print_student(console, ev, opts.teacher)
    _stage(console, result, "label (student)", lambda: _label_with_student(root, run_dir, files, opts.teacher))
    return Path(ev.report)


def _train_demo(console: Console, root: Path, export_dir: Path, opts: Any) -> Path:
    """The demo's student: resumed, or trained again when its run was made from other export files (an
    earlier demo whose labels were made again, e.g. by another gaitdata release)."""
    from gaitdata import student
    from gaitdata.staleness import OtherExportsError

    kw = dict(model=STUDENT, batch_size=8, epochs=opts.epochs, seed=opts.seed, progress=not is_quiet())
    try:
        return student.train(root, export_dir, **kw)
    except OtherExportsError as e:
        console.print(f"[yellow]{e.args[0].split(';')[0]}: this demo trains it again[/]")
        return student.train(root, export_dir, overwrite=True, **kw)


def _compress(run_dir: Path) -> tuple[list[Path], str]:
    """Pruned (30% fewer MACs, distilled fine-tuning), int8 and ONNX; each checked against fp32."""
    import json

    from gaitdata import student

    paths = [student.compress(run_dir, "slim", macs_reduction=0.3, rounds=3, finetune_epochs=6,
                              progress=not is_quiet()),
             student.compress(run_dir, "int8"), student.compress(run_dir, "onnx")]  # fmt: skip
    info = json.loads((run_dir / "compress.json").read_text())
    notes = []
    for name in ("pruned.pt", "int8.pt"):
        c = info.get(name, {}).get("check")
        if c is None:
            notes.append(f"{name}: not checked (no validation part)")
        elif c["within_tolerance"]:
            notes.append(f"{name}: PCK@0.1 on val {c['value']:.3f} vs fp32 {c['reference']:.3f}, within tolerance")
        else:
            notes.append(f"{name}: PCK@0.1 on val {c['value']:.3f} vs fp32 {c['reference']:.3f}, MISSES its tolerance")
    pr = info.get("pruned.pt", {})
    head = f"pruned to {1 - pr.get('macs_reduction', 0):.0%} of the MACs; " if pr else ""
    return paths, head + "; ".join(notes)


def _label_demo(console: Console, root: Path, teacher: str) -> Any:
    """The demo's label set: resumed, or made again when an earlier demo (another gaitdata release) used other settings."""
    from pseudolabel.runner import LabelSettingsChangedError, label

    try:
        return label(root, teacher=teacher, label_set=teacher, progress=True)
    except LabelSettingsChangedError as e:
        console.print(f"[yellow]{e}: this demo relabels it[/]")
        return label(root, teacher=teacher, label_set=teacher, progress=True, overwrite=True)


def _label_with_student(root: Path, run_dir: Path, files: dict, teacher: str) -> tuple[Any, str]:
    """The trained student (its ONNX file, onnxruntime on CPU) labels the held-out recordings behind
    the teacher's boxes, as it would label new recordings; scored against the ground truth."""
    import json

    import numpy as np

    from pseudolabel.agreement import compare_label_sets
    from pseudolabel.runner import label

    test = json.loads(Path(files["test"]).read_text())
    videos = sorted({im["video_id"] for im in test["images"]})
    s = label(root, teacher="student", weights=run_dir / "model.onnx", boxes=f"labels:{teacher}",
              label_set="student", videos=videos, overwrite=True, progress=False)  # fmt: skip
    df = compare_label_sets(root, "ground_truth", "student")
    oks = df["oks"].dropna().to_numpy(np.float64) if "oks" in df else np.zeros(0)
    return s, (
        f"{s.n_frames} frames of {len(videos)} held-out recordings at {s.frames_per_second:.0f} frames/s; "
        + (f"mean OKS vs ground truth {float(oks.mean()):.3f}" if len(oks) else "no person matched to the ground truth")
    )


def _fractions(n_subjects: int) -> tuple[float, float, float]:
    """Train/val/test fractions that leave one subject each for val and test, the rest for training."""
    held_out = 1.0 / n_subjects
    return (1.0 - 2 * held_out, held_out, held_out)


def _print_student(console: Console, ev: Any, teacher: str) -> None:
    """Student variants against the teacher and the ground truth, with their cost, side by side;
    gait figures of the side view; any variant that misses its tolerance, said plainly."""
    m = ev.metrics
    cost = {row.get("model"): row for row in ev.cost}
    side_r = m.get("angles", {}).get("side_r", {})
    from gaitdata.progress import warnings_console
    from gaitdata.tables import key_column, make_table, num_column

    table = make_table("student on the held-out subject")
    key_column(table, "model")
    for col in ("AP", "PCK", "side r", "MMACs", "ms", "vs fp32"):
        num_column(table, col)

    def _cost(row: dict) -> tuple[str, str]:
        macs, ms = row.get("macs"), row.get("cpu_ms")
        return (f"{macs / 1e6:.0f}" if macs else "-", f"{ms:.1f}" if ms else "-")

    gt = m.get("teacher_vs_gt")
    if gt:
        t_cost = next((r for n, r in cost.items() if n and n.startswith("teacher")), {})
        table.add_row(teacher, "1.000", f"{gt['PCK@0.1']:.3f}", _r(side_r.get("teacher_vs_gt")),
                      *_cost(t_cost), "-")  # fmt: skip
    for name, v in m.get("variants", {}).items():
        pck_gt = f"{v['vs_gt']['PCK@0.1']:.3f}" if v.get("vs_gt") else "-"
        c = v.get("check")
        verdict = "-" if c is None else ("ok" if c["within_tolerance"] else "[bold red]MISSES[/]")
        table.add_row(f"student {name}", f"{v['vs_teacher']['AP']:.3f}", pck_gt, _r(v.get("side_angle_r")),
                      *_cost(cost.get(f"student {name}", {})), verdict)  # fmt: skip
    for name, row in cost.items():
        if name and not name.startswith(("student ", "teacher")):
            table.add_row(f"{name.split(' (')[0]} *", "-", "-", "-", *_cost(row), "-")
    console.print(table)
    console.print(
        "[dim]AP against the teacher; PCK@0.1 and side r (side-view gait-angle correlation) against ground truth; "
        "ms: CPU per crop, per frame for the teacher (it finds the person itself). The student's poses are made "
        "left/right consistent along the track (depth and perspective say which leg is nearer); the teacher's are "
        "its label set as stored. * random weights: cost only, no accuracy.[/]"
    )
    for name, v in m.get("variants", {}).items():
        c = v.get("check")
        if c is not None and not c["within_tolerance"]:
            warnings_console().print(
                f"[bold red]warning:[/] student {name} misses its tolerance: PCK@0.1 vs {c['against']} {c['value']:.3f}, "
                f"fp32 {c['reference']:.3f} ({c['drop'] * 100:.1f} points lost, {c['tolerance'] * 100:.0f} allowed)"
            )
    for vid, g in m.get("gait", {}).items():
        parts = []
        for src in ("ground truth", "teacher", "student"):
            if src in g:
                s = g[src]
                cad = s["cadence_steps_per_min"]
                parts.append(f"{src} {s['heel_strikes']} heel strikes, cadence {cad:.0f}/min" if cad == cad
                             else f"{src} {s['heel_strikes']} heel strikes")  # fmt: skip
        console.print(f"gait cycle, {vid}: " + "; ".join(parts))


def _r(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:.2f}"


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
