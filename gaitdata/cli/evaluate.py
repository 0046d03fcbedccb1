"""``gaitdata evaluate ROOT --run RUN --part test``."""

from __future__ import annotations

import click

from gaitdata.cli.common import no_wait_option, output_options, tolerance_option


@click.command()
@no_wait_option
@output_options
@click.argument("root", type=click.Path(file_okay=False, exists=True, path_type=str))
@click.option(
    "--run",
    "run_path",
    type=click.Path(exists=True, path_type=str),
    help="Student run directory (evaluates best.pt and the pruned.pt / int8.pt found there) or a checkpoint.",
)
@click.option("--model", "model_path", type=click.Path(exists=True, path_type=str), hidden=True,
              help="Deprecated spelling of --run.")  # fmt: skip
@click.option("--part", default=None, show_default="test", help="Part of the export to evaluate on (train, val or test).")
@click.option("--split", "split_part", default=None, hidden=True, help="Deprecated spelling of --part.")
@click.option("--labels", help="Teacher label set used as reference [default: the export's annotations].")
@click.option(
    "--gt",
    default="auto",
    show_default=True,
    help="Ground-truth label set ('auto': ground_truth when present, 'none' to skip).",
)
@click.option(
    "--export",
    type=click.Path(exists=True, path_type=str),
    help="COCO export folder or file [default: the one the model was trained from].",
)
@click.option(
    "--teacher-weights",
    type=click.Path(dir_okay=False, exists=True, path_type=str),
    help="FastPose-R50 checkpoint for the cost table (random weights otherwise: cost only).",
)
@click.option("--no-latency", is_flag=True, help="Skip latency measurements.")
@click.option(
    "--flip-test", is_flag=True, help="Average each prediction with the mirrored crop's (2x inference)."
)
@click.option(
    "--no-consistency",
    is_flag=True,
    help="Evaluate the raw per-frame poses (by default left/right are made consistent along each track).",
)
@click.option(
    "--smooth-sigma",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Zero-phase Gaussian smoothing of the student's poses along each track, in frames (0: off).",
)
@tolerance_option("compressed variant may lose against fp32")
@click.option(
    "--make-variants",
    is_flag=True,
    help="First create the run's missing pruned.pt / int8.pt with gaitdata compress defaults.",
)
@click.option("--no-variants", is_flag=True, hidden=True, help="Deprecated: variants are made only with --make-variants.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=str),
    help="Report folder [default: the run directory].",
)
def command(root: str, run_path: str | None, model_path: str | None, part: str | None, split_part: str | None,
            labels: str | None, gt: str,
            export: str | None, teacher_weights: str | None, no_latency: bool, flip_test: bool, no_consistency: bool,
            smooth_sigma: float, tolerance: float, make_variants: bool, no_variants: bool, out: str | None) -> None:  # fmt: skip
    """Evaluate a student on held-out videos against the teacher (and ground truth on synthetic data).

    Accuracy (OKS AP, PCK, per joint), gait angles per view, heel strikes / step time / cadence in
    side views, each compressed variant against fp32, and cost. Writes report.md, metrics.json and
    report/*.png into the run directory (or --out); writes nothing else.

    \b
    Examples:
      gaitdata evaluate data/root --run data/root/models/fastpose_res18_w050 --part test
      gaitdata evaluate data/root --run data/root/models/fastpose_res18_w050 --labels mediapipe --gt ground_truth
      gaitdata evaluate data/root --run run/pruned.pt --no-latency --out /tmp/eval
    """
    from gaitdata import student
    from gaitdata.progress import console as make_console
    from gaitdata.progress import warnings_console
    from gaitdata.student.consistency import ConsistencyConfig
    from gaitdata.tables import key_column, make_table, num_column

    console, warn = make_console(), warnings_console()
    if model_path is not None:
        warn.print("[yellow]warning:[/] evaluate --model is deprecated; use --run RUN_DIR|CHECKPOINT")
        if run_path is not None and run_path != model_path:
            raise click.UsageError("give the run once: --run (or the deprecated --model), not both")
        run_path = run_path or model_path
    if run_path is None:
        raise click.UsageError("missing --run RUN_DIR|CHECKPOINT (the student to evaluate)")
    if split_part is not None:
        warn.print("[yellow]warning:[/] evaluate --split is deprecated; use --part (train, val or test)")
        if part is not None and part != split_part:
            raise click.UsageError("give the part once: --part (or the deprecated --split), not both")
        part = split_part
    part = part or "test"
    if no_variants:
        warn.print("[yellow]warning:[/] --no-variants is deprecated: variants are only made with --make-variants")
    res = student.evaluate(
        root, run_path, split=part, labels=labels, gt=None if gt == "none" else gt, out=out, export=export,
        teacher_weights=teacher_weights, latency=not no_latency, make_variants=make_variants,
        flip_test=flip_test, consistency=None if no_consistency else ConsistencyConfig(smooth_sigma=smooth_sigma),
        tolerance=tolerance,
    )  # fmt: skip
    m = res.metrics
    table = make_table(f"student vs {m['reference']} ({m['persons']} persons)")
    key_column(table, "model")
    for col in ("AP", "PCK@0.1", "vs GT\nPCK@0.1", "side-view\nangle r", "CPU ms", "vs fp32"):
        num_column(table, col)
    cpu = {c["model"]: c["cpu_ms"] for c in res.cost}
    for name, v in m["variants"].items():
        g = v.get("vs_gt", {}).get("PCK@0.1")
        check = v.get("check")
        verdict = "-" if check is None else ("ok" if check["within_tolerance"] else "[bold red]MISSES[/]")
        table.add_row(
            name, f"{v['vs_teacher']['AP']:.3f}", f"{v['vs_teacher']['PCK@0.1']:.3f}",
            "-" if g is None else f"{g:.3f}", _num(v.get("side_angle_r")),
            _num(cpu.get("student " + name), 2), verdict,
        )  # fmt: skip
    t = m.get("teacher_vs_gt")
    tc = next((c for c in res.cost if c["model"].startswith("teacher")), None)
    if t is not None or tc is not None:
        table.add_row(
            f"teacher ({m.get('teacher') or m['reference']})", "-", "-",
            "-" if t is None else f"{t['PCK@0.1']:.3f}", _num(m["angles"]["side_r"].get("teacher_vs_gt")),
            "-" if tc is None else f"{tc['cpu_ms']:.2f}/{tc.get('per', 'crop')}", "-",
        )  # fmt: skip
    console.print(table)
    for name, v in m["variants"].items():
        c = v.get("check")
        if c is not None and not c["within_tolerance"]:
            warn.print(f"[bold red]warning:[/] {name} misses its tolerance: PCK@0.1 vs {c['against']} {c['value']:.3f}, "
                       f"fp32 {c['reference']:.3f} ({c['drop'] * 100:.1f} points lost, {c['tolerance'] * 100:.1f} allowed)")  # fmt: skip
    console.print(f"report: {res.report}", highlight=False, soft_wrap=True)


def _num(v: float | None, digits: int = 3) -> str:
    import math

    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"
