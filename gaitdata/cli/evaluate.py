"""``gaitdata evaluate ROOT --model PATH --split test``."""

from __future__ import annotations

import click

from gaitdata.cli.common import no_wait_option, output_options


@click.command()
@no_wait_option
@output_options
@click.argument("root", type=click.Path(file_okay=False, exists=True, path_type=str))
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(exists=True, path_type=str),
    help="Student run directory (evaluates best.pt, pruned.pt, int8.pt found there) or a checkpoint.",
)
@click.option("--split", default="test", show_default=True, help="Export part to evaluate on (e.g. test).")
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
    help="Teacher checkpoint for the cost table (random weights otherwise; cost does not depend on them).",
)
@click.option("--no-latency", is_flag=True, help="Skip latency measurements.")
@click.option(
    "--flip-test", is_flag=True, help="Average each prediction with the mirrored crop's (2x inference)."
)
@click.option(
    "--no-variants",
    is_flag=True,
    help="Do not create the run's missing pruned.pt / int8.pt first (by default they are made with "
    "gaitdata compress defaults, so the cost table is complete).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=str),
    help="Report folder [default: the run directory].",
)
def command(root: str, model_path: str, split: str, labels: str | None, gt: str, export: str | None,
            teacher_weights: str | None, no_latency: bool,
    flip_test: bool, no_variants: bool, out: str | None) -> None:  # fmt: skip
    """Evaluate a student on held-out videos against the teacher (and ground truth on synthetic data).

    Writes report.md, metrics.json and report/*.png into the run directory (or --out).

    \b
    Examples:
      gaitdata evaluate data/root --model data/root/models/fastpose_res18_w050 --split test
      gaitdata evaluate data/root --model data/root/models/fastpose_res18_w050 --labels mediapipe --gt ground_truth
      gaitdata evaluate data/root --model run/pruned.pt --no-latency --no-variants --out /tmp/eval
    """
    from gaitdata import student
    from gaitdata.progress import console as make_console
    from gaitdata.tables import key_column, make_table, num_column

    res = student.evaluate(
        root,
        model_path,
        split=split,
        labels=labels,
        gt=None if gt == "none" else gt,
        out=out,
        export=export,
        teacher_weights=teacher_weights,
        latency=not no_latency,
        make_variants=not no_variants,
        flip_test=flip_test,
    )
    console = make_console()
    table = make_table(f"student vs {res.metrics['reference']} ({res.metrics['persons']} persons)")
    key_column(table, "model")
    for col in ("AP", "PCK@0.1", "vs GT\nPCK@0.1", "CPU\nms/crop"):
        num_column(table, col)
    cpu = {c["model"]: c["cpu_ms"] for c in res.cost}
    for name, m in res.metrics["variants"].items():
        g = m.get("vs_gt", {}).get("PCK@0.1")
        table.add_row(
            name,
            f"{m['vs_teacher']['AP']:.3f}",
            f"{m['vs_teacher']['PCK@0.1']:.3f}",
            "-" if g is None else f"{g:.3f}",
            f"{cpu.get('student ' + name, float('nan')):.2f}",
        )
    t = res.metrics.get("teacher_vs_gt")
    tc = next((c for c in res.cost if c["model"].startswith("teacher")), None)
    if t is not None or tc is not None:
        table.add_row(
            "teacher",
            "-",
            "-",
            "-" if t is None else f"{t['PCK@0.1']:.3f}",
            "-" if tc is None else f"{tc['cpu_ms']:.2f}",
        )
    console.print(table)
    console.print(f"report: {res.report}", highlight=False, soft_wrap=True)
