"""``gaitdata compare-labels ROOT SET_A SET_B [--merge NAME --threshold 0.8]``."""

from __future__ import annotations

import click

from gaitdata.cli.common import no_wait_option, output_options


@click.command()
@no_wait_option
@output_options
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.argument("set_a")
@click.argument("set_b")
@click.option("--merge", "merge_name", default=None, help="Also write a merged label set under this name.")
@click.option("--threshold", default=0.8, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="OKS at or above which two persons agree (merge, and the summary's fraction below).")  # fmt: skip
@click.option("--keypoints", type=click.Choice(["a", "average"]), default="a", show_default=True,
              help="Merged keypoints: SET_A's, or the confidence-weighted average of both.")  # fmt: skip
@click.option("--drop-disagreeing", is_flag=True, help="Leave frames the teachers disagree on out of the merge "
              "(default: keep them, flagged 'disagree').")  # fmt: skip
def command(
    root: str, set_a: str, set_b: str, merge_name: str | None, threshold: float, keypoints: str,
    drop_disagreeing: bool,
) -> None:  # fmt: skip
    """Compare two label sets of ROOT: per-person OKS and per-joint pixel distances.

    Writes ROOT/agreement/SET_A__SET_B.parquet (one row per matched pair or unmatched person; the
    browse view of disagreements reads it) and a .json summary. With --merge, also writes a label
    set that keeps SET_A's poses, flagging frames where the two sets disagree (OKS < threshold or a
    person found by one set only) with the QA flag 'disagree'.

    \b
    Examples:
      gaitdata label data/root --teacher mediapipe --label-set mediapipe
      gaitdata label data/root --teacher centernet --weights multi_pose_dla_3x.pth --label-set centernet
      gaitdata compare-labels data/root mediapipe centernet
      gaitdata compare-labels data/root mediapipe centernet --merge agreed --threshold 0.8
    """
    from gaitdata.progress import console as make_console
    from gaitdata.tables import key_column, make_table, num_column
    from pseudolabel.agreement import agreement_path, compare_label_sets, merge_label_sets

    console = make_console()
    if merge_name:
        ms = merge_label_sets(
            root, set_a, set_b, merge_name, threshold, keypoints=keypoints,
            keep_disagreeing=not drop_disagreeing, progress=True,
        )  # fmt: skip
        from gaitdata.labels import read_label_meta

        summary = read_label_meta(root, merge_name).get("summary", {})
    else:
        summary = compare_label_sets(root, set_a, set_b, progress=True, threshold=threshold).attrs[
            "summary"
        ]
        ms = None

    def fmt(v: object) -> str:
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    t = make_table(f"{set_a} vs {set_b}", show_header=False)
    key_column(t, "measure")
    num_column(t, "value")
    for key in ("frames_compared", "frames_only_a", "frames_only_b", "persons_matched", "persons_only_a",
                "persons_only_b", "mean_oks", "median_oks", "fraction_below_threshold", "median_dist_px"):  # fmt: skip
        t.add_row(key, fmt(summary.get(key)))
    console.print(t)
    joints = summary.get("per_joint_median_dist_px", {})
    if joints:
        from rich.columns import Columns

        console.print("median distance per joint (px):")
        console.print(Columns([f"  {n} {fmt(v)}" for n, v in joints.items()], equal=True), highlight=False)
    console.print(f"table: {agreement_path(root, set_a, set_b)}", highlight=False, soft_wrap=True)
    if ms is not None:
        console.print(
            f"merged label set {ms.label_set!r}: {ms.frames_agree}/{ms.frames} frames agree (OKS >= {ms.threshold}), "
            f"{ms.frames_disagree} flagged 'disagree', {ms.frames_not_compared} not in {set_b!r}; {ms.rows} rows"
        )
        console.print(f"wrote {ms.path}", highlight=False, soft_wrap=True)
