"""``gaitdata audit ROOT --split NAME``: leakage checks and statistics per part."""

from __future__ import annotations

import json

import click

from gaitdata.cli.common import output_options


@click.command()
@output_options
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--split", "name", default="default", show_default=True, help="Split name (ROOT/splits/NAME.json)."
)
@click.option(
    "--labels", default=None, help="Label set for the statistics (default: the split's, or the only one)."
)
@click.option(
    "--threshold",
    type=int,
    default=4,
    show_default=True,
    help="Near-duplicate if the 64-bit perceptual hashes differ in at most this many bits.",
)
@click.option("--frames-per-video", type=int, default=8, show_default=True, help="Frames hashed per video.")
@click.option("--all-frames", is_flag=True, help="Hash every written frame (slow on big roots).")
@click.option("--no-near-duplicates", is_flag=True, help="Skip the perceptual-hash check.")
@click.option(
    "--region",
    type=click.Choice(["auto", "frame", "person"]),
    default="auto",
    show_default=True,
    help="Hash the whole frame or the labelled person's box (auto: person when a label set is known).",
)
@click.option("--strict", is_flag=True, help="Near-duplicate frames across parts are errors, not warnings.")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Also write the full report as JSON to this file.",
)
@click.option("--max-pairs", type=int, default=20, show_default=True, help="Near-duplicate pairs to print.")
def command(root: str, name: str, labels: str | None, threshold: int, frames_per_video: int, all_frames: bool,
            no_near_duplicates: bool, region: str, strict: bool, json_out: str | None, max_pairs: int) -> None:  # fmt: skip
    """Audit a split: a video or subject in two of its parts is an error (exit status 1); near-duplicate
    frames across parts (perceptual hash) are listed with their paths; statistics per part
    (subjects, videos, frames, labelled persons, mean confidence, QA flags) are printed.

    \b
    Examples:
      gaitdata audit data/root --split default
      gaitdata audit data/root --split cv5 --labels mediapipe --all-frames --threshold 2
      gaitdata audit data/root --json audit.json --strict
    """
    from gaitdata.io import atomic_write_json
    from gaitdata.progress import console as make_console
    from gaitdata.progress import warnings_console
    from splits.audit import audit, print_report

    console = make_console()
    report = audit(
        root, name, labels=labels, near_duplicates=not no_near_duplicates, threshold=threshold,
        frames_per_video=0 if all_frames else frames_per_video, all_frames=all_frames, strict=strict,
        raise_on_leak=False, progress=True, region=region,
    )  # fmt: skip
    print_report(report, console, max_pairs=max_pairs, warnings_to=warnings_console())
    if json_out:
        atomic_write_json(json_out, json.loads(json.dumps(report.to_dict(), default=str)))
    if not report.ok:
        raise click.exceptions.Exit(1)
    console.print(f"[green]ok:[/] no video or subject shared across the parts of {name!r}")
