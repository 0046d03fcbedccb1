"""``gaitdata export coco|gait-poses``: COCO person-keypoints files and gait pose arrays."""

from __future__ import annotations

import click

from gaitdata.cli.common import no_wait_option, output_options


@click.group()
def command() -> None:
    """Export a label set: COCO person keypoints per part of a split, or pose sequences for gait recognition.

    \b
    Examples:
      gaitdata export coco data/root --labels mediapipe --split default
      gaitdata export gait-poses data/root --labels mediapipe --out gait_poses
    """


def _read_exclude(path: str | None) -> set[tuple[str, int]] | None:
    if path is None:
        return None
    import pandas as pd

    df = pd.read_csv(path)
    if not {"video_id", "frame_index"} <= set(df.columns):
        raise click.BadParameter(f"{path}: needs columns video_id,frame_index", param_hint="--exclude-frames")
    return {(str(v), int(f)) for v, f in zip(df["video_id"], df["frame_index"], strict=True)}


@command.command("coco")
@no_wait_option
@output_options
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option("--labels", required=True, help="Label set to export (ROOT/labels/NAME.parquet).")
@click.option(
    "--split",
    "split_name",
    default="default",
    show_default=True,
    help="Split whose parts become files (train.json, ...); 'none' exports every frame as all.json.",
)
@click.option("--part", "parts", multiple=True, help="Only these parts of the split (repeatable).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Output folder (default ROOT/exports/coco[/SPLIT]).",
)
@click.option(
    "--min-score", type=float, default=0.0, show_default=True, help="Drop persons scored below this."
)
@click.option(
    "--min-visible", type=int, default=1, show_default=True, help="Drop persons with fewer visible joints."
)
@click.option(
    "--exclude-flag", "exclude_flags", multiple=True, help="Drop persons carrying this QA flag (repeatable)."
)
@click.option("--subject-only", is_flag=True, help="Only the gait subject of each recording (no bystanders).")
@click.option(
    "--exclude-frames",
    type=click.Path(dir_okay=False, exists=True, path_type=str),
    default=None,
    help="CSV (video_id,frame_index) of frames to leave out, e.g. frames tagged in review.",
)
@click.option("--copy-images", "images", flag_value="copy", help="Copy the frames to OUT/images/.")
@click.option("--link-images", "images", flag_value="link", help="Symlink the frames into OUT/images/.")
def coco(root: str, labels: str, split_name: str, parts: tuple[str, ...], out: str | None, min_score: float,
         min_visible: int, exclude_flags: tuple[str, ...], subject_only: bool, exclude_frames: str | None,
         images: str | None) -> None:  # fmt: skip
    """One COCO person-keypoints JSON per part of a split. Each image's file_name is its path
    relative to the dataset root; info.image_root (relative to the JSON's folder) points at the
    dataset root, or at OUT/images with --copy-images/--link-images (same relative paths inside).

    \b
    Examples:
      gaitdata export coco data/root --labels mediapipe
      gaitdata export coco data/root --labels mediapipe --split cv5 --out coco_cv5 --min-score 0.5 --min-visible 8
      gaitdata export coco data/root --labels reviewed --split none --subject-only --exclude-flag jitter --copy-images
    """
    import warnings

    from gaitdata.coco import EmptyPartWarning, count_entries, export_coco
    from gaitdata.progress import console as make_console

    console = make_console()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EmptyPartWarning)
        files = export_coco(
            root, labels, None if split_name.lower() == "none" else split_name, out=out, min_score=min_score,
            min_visible=min_visible, exclude_flags=exclude_flags, subject_only=subject_only,
            exclude_frames=_read_exclude(exclude_frames), progress=True, parts=parts or None,
            images=images or "none",
        )  # fmt: skip
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    for part, path in files.items():
        n_img, n_ann = count_entries(path)
        console.print(f"{part}: {n_img} images, {n_ann} person annotations -> {path}", highlight=False, soft_wrap=True)


@command.command("gait-poses")
@no_wait_option
@output_options
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option("--labels", required=True, help="Label set to export.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Output folder (default ROOT/exports/gait_poses/LABELS).",
)
@click.option(
    "--split",
    "split_name",
    default=None,
    help="Only videos of this split; opengait: OUT/partition.json, gaitgraph: OUT/poses_PART.csv per part.",
)
@click.option("--part", default=None, help="Only the videos of this part of the split (e.g. test).")
@click.option(
    "--layout",
    type=click.Choice(["npz", "opengait", "gaitgraph"]),
    default="npz",
    show_default=True,
    help="npz: ID/VIDEO.npz with frame mapping; opengait: ID/TYPE/VIEW/VIEW.pkl (OpenGait, FastPoseGait); "
    "gaitgraph: GaitGraph's pose CSV.",
)
@click.option(
    "--naming",
    type=click.Choice(["plain", "casiab"]),
    default=None,
    help="plain: SUBJECT/CONDITION-SESSION/VIEW; casiab: 001/nm-01/090 (default plain; casiab for gaitgraph).",
)
@click.option(
    "--type-map",
    multiple=True,
    metavar="CONDITION=CODE",
    help="CASIA-B type code of a condition (repeatable or comma-separated; '*' for any other), e.g. bag=bg.",
)
@click.option(
    "--view-map",
    multiple=True,
    metavar="VIEW=CODE",
    help="CASIA-B three-digit view code of a view (repeatable or comma-separated), e.g. side=090.",
)
@click.option(
    "--test-part", "test_parts", multiple=True, help="Part(s) of the split whose subjects form TEST_SET [test]."
)
@click.option(
    "--train-part", "train_parts", multiple=True, help="Part(s) whose subjects form TRAIN_SET [every other part]."
)
def gait_poses(root: str, labels: str, out: str | None, split_name: str | None, part: str | None, layout: str,
               naming: str | None, type_map: tuple[str, ...], view_map: tuple[str, ...],
               test_parts: tuple[str, ...], train_parts: tuple[str, ...]) -> None:  # fmt: skip
    """Pose sequences for gait-recognition code: per recording a [T, 17, 3] float32 array (x, y,
    confidence; COCO order) with its frame indices, plus OUT/index.csv and OUT/export.json.

    \b
    Examples:
      gaitdata export gait-poses data/root --labels mediapipe
      gaitdata export gait-poses data/root --labels mediapipe --split default --part test --out gait_test
      gaitdata export gait-poses data/root --labels mediapipe --layout opengait --naming casiab --split default
      gaitdata export gait-poses data/root --labels mediapipe --layout gaitgraph --split default --type-map bystander=nm
    """
    import json

    import pandas as pd

    from gaitdata.gaitnames import CasiaBNaming, parse_map
    from gaitdata.gaitposes import export_gait_poses
    from gaitdata.progress import console as make_console

    console = make_console()
    casiab = CasiaBNaming(parse_map(type_map, "--type-map"), parse_map(view_map, "--view-map"))
    index = export_gait_poses(
        root, labels, out, split_name=split_name, split_part=part, progress=True, layout=layout,
        naming=naming, casiab=casiab, test_parts=test_parts or None, train_parts=train_parts or None,
    )  # fmt: skip
    df = pd.read_csv(index, dtype={"path": str})
    console.print(
        f"{len(df)} recordings of {df['subject'].nunique()} subjects, {int(df['frames'].sum())} frames "
        f"({int(df['frames_with_pose'].sum())} with a pose) -> {index}",
        highlight=False,
        soft_wrap=True,
    )
    skipped = df.loc[df["path"].isna(), "video_id"].astype(str).tolist()
    if skipped:
        console.print(f"not written (no frame with a pose): {', '.join(skipped)}", highlight=False, soft_wrap=True)
    meta = json.loads((index.parent / "export.json").read_text(encoding="utf-8"))
    if meta["partition"] is not None:
        p = meta["partition"]
        console.print(
            f"partition: {len(p['TRAIN_SET'])} training, {len(p['TEST_SET'])} test subjects -> "
            f"{index.parent / 'partition.json'}",
            highlight=False,
            soft_wrap=True,
        )
    elif layout == "opengait" and split_name is not None:
        console.print(
            f"no partition.json: split {split_name!r} has no part 'test'; name the test part(s) with --test-part",
            highlight=False,
            soft_wrap=True,
        )
