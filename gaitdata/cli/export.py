"""``gaitdata export coco|gait-poses``: COCO person-keypoints files and gait pose arrays."""

from __future__ import annotations

import click


@click.group()
def command() -> None:
    """Export a label set: COCO person keypoints per split, or pose sequences for gait recognition.

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
    from rich.console import Console

    from gaitdata.coco import count_entries, export_coco

    console = Console()
    files = export_coco(
        root, labels, None if split_name.lower() == "none" else split_name, out=out, min_score=min_score,
        min_visible=min_visible, exclude_flags=exclude_flags, subject_only=subject_only,
        exclude_frames=_read_exclude(exclude_frames), progress=console.is_terminal, parts=parts or None,
        images=images or "none",
    )  # fmt: skip
    for part, path in files.items():
        n_img, n_ann = count_entries(path)
        console.print(f"{part}: {n_img} images, {n_ann} person annotations -> {path}", highlight=False)


@command.command("gait-poses")
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option("--labels", required=True, help="Label set to export.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Output folder (default ROOT/exports/gait_poses/LABELS).",
)
@click.option("--split", "split_name", default=None, help="Only videos of this split ...")
@click.option("--part", default=None, help="... and of this part of it (e.g. test).")
@click.option(
    "--layout",
    type=click.Choice(["npz", "opengait"]),
    default="npz",
    show_default=True,
    help="npz: SUBJECT/VIDEO.npz with frame mapping; opengait: SUBJECT/TYPE/VIEW/VIEW.pkl pickles.",
)
def gait_poses(
    root: str, labels: str, out: str | None, split_name: str | None, part: str | None, layout: str
) -> None:
    """Per recording a [T, 17, 3] float32 array (x, y, confidence; COCO order) with its frame
    indices and timestamps, as OUT/<subject>/<video_id>.npz, plus OUT/index.csv.

    \b
    Examples:
      gaitdata export gait-poses data/root --labels mediapipe
      gaitdata export gait-poses data/root --labels mediapipe --split default --part test --out gait_test
      gaitdata export gait-poses data/root --labels mediapipe --layout opengait --out opengait_pose
    """
    import pandas as pd
    from rich.console import Console

    from gaitdata.gaitposes import export_gait_poses

    console = Console()
    index = export_gait_poses(
        root, labels, out, split_name=split_name, split_part=part, progress=console.is_terminal, layout=layout
    )
    df = pd.read_csv(index)
    console.print(
        f"{len(df)} recordings of {df['subject'].nunique()} subjects, {int(df['frames'].sum())} frames "
        f"({int(df['frames_with_pose'].sum())} with a pose) -> {index}",
        highlight=False,
    )
