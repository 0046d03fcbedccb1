"""``gaitdata import coco FILE... --root ROOT --label-set NAME``."""

from __future__ import annotations

import click


@click.group()
def command() -> None:
    """Import annotations back into a label set.

    \b
    Example:
      gaitdata import coco exports/coco/train.json --root data/root --label-set reviewed
    """


@command.command("coco")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=str))
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=str), help="Dataset root.")
@click.option("--label-set", required=True, help="Name of the label set to create.")
@click.option("--overwrite", is_flag=True, help="Replace an existing label set of that name.")
@click.option("--teacher", default=None, help="Teacher name to record when the file does not say.")
def coco(files: tuple[str, ...], root: str, label_set: str, overwrite: bool, teacher: str | None) -> None:
    """Read COCO person-keypoints FILE(s) (e.g. train/val/test of one export) into one label set.
    Images are matched to frames by their video_id/frame_index fields or by file_name (relative
    to the dataset root). Export -> import -> export reproduces the files byte for byte.

    \b
    Examples:
      gaitdata import coco data/root/exports/coco/*.json --root data/root --label-set roundtrip
      gaitdata import coco corrected.json --root data/root --label-set reviewed --teacher human
    """
    from rich.console import Console

    from gaitdata.coco import import_coco
    from gaitdata.labels import read_labels

    path = import_coco(list(files), root, label_set, overwrite=overwrite, teacher=teacher)
    df = read_labels(root, label_set)
    n_frames = len(df.drop_duplicates(["video_id", "frame_index"]))
    n_persons = int(df["has_person"].fillna(False).astype(bool).sum())
    Console().print(
        f"label set {label_set}: {n_frames} frames, {n_persons} persons -> {path}", highlight=False
    )
