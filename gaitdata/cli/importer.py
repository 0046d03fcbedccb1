"""``gaitdata import coco|alphapose|labels ... --root ROOT``."""

from __future__ import annotations

import click

from gaitdata.cli.common import no_wait_option, output_options
from gaitdata.cli.label import _thresholds, recordings_table


@click.group()
def command() -> None:
    """Import annotations or other tools' results into a label set.

    \b
    Examples:
      gaitdata import coco exports/coco/train.json --root data/root --label-set reviewed
      gaitdata import alphapose ap_out/ --root data/root --label-set alphapose
      gaitdata import labels gpu_root/labels/centernet.parquet --root data/root
    """


@command.command("coco")
@no_wait_option
@output_options
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=str))
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=str), help="Dataset root.")
@click.option("--label-set", required=True, help="Name of the label set to create.")
@click.option("--overwrite", is_flag=True, help="Replace an existing label set of that name.")
@click.option("--teacher", default=None, help="Teacher name to record when the file does not say.")
@click.option("--video", default=None, help="Recording of bare file names (file_name without folders).")
def coco(
    files: tuple[str, ...], root: str, label_set: str, overwrite: bool, teacher: str | None, video: str | None
) -> None:
    """Read COCO person-keypoints FILE(s) (e.g. train/val/test of one export) into one label set.
    Images are matched to frames by their video_id/frame_index fields or by file_name (relative
    to the dataset root, or an absolute path inside it; a bare name within --video or the root's
    only recording). Export -> import -> export reproduces the files byte for byte. Files of other
    tools: a category without keypoint names but 17 points is read as COCO-17, a missing bbox is
    the visible points' extent (both reported). From FiftyOne, export with
    export_media=False, rel_dir=ROOT so file names stay mappable.

    \b
    Examples:
      gaitdata import coco data/root/exports/coco/*.json --root data/root --label-set roundtrip
      gaitdata import coco corrected.json --root data/root --label-set reviewed --teacher human
    """
    from gaitdata.coco import import_coco
    from gaitdata.labels import read_label_meta, read_labels
    from gaitdata.progress import say

    path = import_coco(list(files), root, label_set, overwrite=overwrite, teacher=teacher, video=video)
    df = read_labels(root, label_set)
    n_frames = len(df.drop_duplicates(["video_id", "frame_index"]))
    n_persons = int(df["has_person"].fillna(False).astype(bool).sum())
    for note in read_label_meta(root, label_set).get("import_notes", []):
        click.echo(f"note: {note}", err=True)
    say(f"label set {label_set}: {n_frames} frames, {n_persons} persons -> {path}")


@command.command("alphapose")
@no_wait_option
@output_options
@click.argument("path", type=click.Path(exists=True, path_type=str))
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=str), help="Dataset root.")
@click.option("--video", default=None, help="Recording of a results file with bare image names (or the one to take from a folder).")
@click.option("--label-set", default="alphapose", show_default=True, help="Name of the label set to create.")
@click.option("--overwrite", is_flag=True, help="Replace an existing label set of that name.")
@click.option(
    "--vis-thresholds", default="0.2,0.5", show_default=True, callback=_thresholds,
    help="Confidence thresholds LOW,HIGH for COCO visibility 0/1/2 (as gaitdata label).",
)  # fmt: skip
@click.option("--smooth", is_flag=True, help="Smooth keypoints over time (One-Euro filter per track).")
@click.option("--no-subject", is_flag=True, help="Do not pick a gait subject (every person is_subject).")
@click.option("--no-qa", is_flag=True, help="Skip the QA flags.")
@click.option("--body17", is_flag=True, help="Halpe-26/136 or COCO-WholeBody-133 results: keep their 17 COCO body joints.")
def alphapose(
    path: str, root: str, video: str | None, label_set: str, overwrite: bool, vis_thresholds: tuple[float, float],
    smooth: bool, no_subject: bool, no_qa: bool, body17: bool,
) -> None:  # fmt: skip
    """Import AlphaPose's own results (alphapose-results.json) as a label set.

    PATH is one results file or a folder of <video_id>/alphapose-results.json (or <video_id>.json).
    A file's recording is --video, else its folder's name (or stem) when that is a video id, else
    the root's only recording; root-relative image paths name their recording themselves. Every
    written frame of each recording gets rows (no-person rows where AlphaPose found nobody);
    keypoints are kept exactly, joint confidences clipped into [0, 1]; AlphaPose's proposal score
    is kept as raw_score and normalised into score; then tracks, visibility, subject and QA flags
    as gaitdata label does.

    \b
    Examples (AlphaPose run as: python scripts/demo_inference.py --cfg ... --checkpoint ...
              --indir ROOT/frames/<video_id>/rgb --outdir ap_out/<video_id>):
      gaitdata import alphapose ap_out/ --root data/root
      gaitdata import alphapose ap_out/s01_walk/alphapose-results.json --root data/root
      gaitdata import alphapose results.json --root data/root --video s01_walk --label-set ap_s01
    """
    from gaitdata.progress import console as make_console
    from pseudolabel.importers.alphapose import import_alphapose

    s = import_alphapose(
        path, root, label_set, video=video, overwrite=overwrite, vis_thresholds=vis_thresholds,
        smooth="one_euro" if smooth else None, select_subject=not no_subject, qa=not no_qa, body17=body17,
    )  # fmt: skip
    console = make_console()
    console.print(recordings_table(f"label set {s.label_set} (AlphaPose results)", s.recordings))
    for f in s.files:
        console.print(
            f"{f['path']}: {f['persons']} persons, {f['keypoints_written'] or 0} joints each "
            f"({f['layout'] or '-'}), score: {f['score_method']}", highlight=False, soft_wrap=True,
        )  # fmt: skip
    console.print(f"wrote {s.path}", highlight=False, soft_wrap=True)


@command.command("labels")
@no_wait_option
@output_options
@click.argument("src", type=click.Path(dir_okay=False, exists=True, path_type=str))
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=str), help="Dataset root.")
@click.option("--label-set", default=None, help="Name in this root (default: the file's own name).")
@click.option("--overwrite", is_flag=True, help="Replace an existing label set of that name.")
def labels(src: str, root: str, label_set: str | None, overwrite: bool) -> None:
    """Add a label set written by gaitdata label in another copy of the root (e.g. on a GPU machine).

    SRC is that root's labels/<name>.parquet (metadata inside; an older root's .json beside it). It must have
    been made over the same extraction: every row a written frame of ROOT, every recording it
    covers complete.

    \b
    Example:
      gaitdata import labels /mnt/gpu/root/labels/centernet.parquet --root data/root
      gaitdata compare-labels data/root mediapipe centernet --merge agreed
    """
    from gaitdata.labels import read_labels
    from gaitdata.progress import say
    from pseudolabel.importers.labelset import import_label_set

    path = import_label_set(src, root, label_set, overwrite=overwrite)
    df = read_labels(root, path.stem)
    n_frames = len(df.drop_duplicates(["video_id", "frame_index"]))
    n_persons = int(df["has_person"].fillna(False).astype(bool).sum())
    say(f"label set {path.stem}: {n_frames} frames, {n_persons} persons -> {path}")
