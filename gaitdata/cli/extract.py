"""``gaitdata extract SRC... --out ROOT``."""

from __future__ import annotations

import click

from gaitdata.cli.common import make_ray_options, no_wait_option, output_options, ray_options


def _resize(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    try:
        w, h = (int(v) for v in value.lower().replace("x", ",").split(","))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT (one may be -1), got {value!r}") from None
    return w, h


@click.command()
@no_wait_option
@output_options
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Dataset root to write.",
)
@click.option(
    "--stride", type=click.IntRange(min=1), default=1, show_default=True, help="Keep every n-th frame."
)
@click.option(
    "--fps",
    "target_fps",
    type=float,
    default=None,
    help="Target frame rate (keeps the first frame of each slot).",
)
@click.option(
    "--start", "start_s", type=float, default=None, help="Start time in seconds from the first frame."
)
@click.option("--end", "end_s", type=float, default=None, help="End time in seconds from the first frame.")
@click.option(
    "--max-frames", type=click.IntRange(min=1), default=None, help="At most this many frames per recording."
)
@click.option(
    "--resize", callback=_resize, default=None, help="Store frames at WIDTHxHEIGHT (-1 keeps the aspect)."
)
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Processes across recordings (0: one per CPU).")  # fmt: skip
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Encode/write threads inside one recording [default: 2; on Ray: --cpus-per-task].")  # fmt: skip
@click.option("--overwrite", is_flag=True,
              help="Re-extract recordings already done; replace a recording whose id or source changed.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Discover, index and pair; write nothing.")
@click.option("--id-pattern", default=None,
              help="Metadata from the path, e.g. '{subject}/{session}_{view}'; levels beyond the input root join the id.")  # fmt: skip
@click.option("--metadata", "metadata_csv", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="CSV with video_id|source_rel|path and subject, session, view, condition.")  # fmt: skip
@click.option("--keep-going", is_flag=True, help="Exit 0 even when some recordings fail or lose frames.")
@click.option("--reader", type=click.Choice(["auto", "pyrealsense2", "python"]), default="auto", show_default=True,
              help="RealSense reader (auto: pyrealsense2 when importable).")  # fmt: skip
@ray_options(gpus=False)
def command(sources: tuple[str, ...], out: str, ray_address: str | None, cpus_per_task: float, **opts) -> None:
    """Extract time-aligned RGB + registered raw 16-bit depth frames into a dataset root.

    SOURCES are files or folders (searched recursively): RealSense .bag/.db3, colour+depth pairs
    (<stem>_color.mp4 + <stem>_depth.mkv or <stem>_depth/, optional <stem>_color.csv/<stem>_depth.csv
    timestamps and <stem>_calib.json), colour videos and image folders. Recordings without depth are
    extracted colour-only (noted in the summary). Rerunning skips what is done; a failed recording is
    reported in one line and marked failed in videos.parquet; frames lost to damaged data get status
    decode_error. Either gives exit status 1 unless --keep-going. A recording whose id already holds
    another source in ROOT is refused (unless --overwrite); a new --id-pattern/--metadata updates the
    metadata of recordings already extracted.

    \b
    Examples:
      gaitdata extract recordings/ --out data/root
      gaitdata extract recordings/ --out data/root --fps 10 --resize 640x-1 --id-pattern '{subject}/{session}_{view}'
      gaitdata extract a.bag b.db3 --out data/root --start 2 --end 12 --max-frames 100 --keep-going
      gaitdata extract recordings/ --out data/root --dry-run
      gaitdata extract /shared/recordings --out /shared/root --ray auto          # Ray: one task per recording
      gaitdata extract /shared/recordings --out /shared/root --ray 10.0.0.5:6379 --cpus-per-task 2
    """
    from rich.console import Console

    from gaitdata.extract import ExtractOptions, extract

    err = Console(stderr=True)
    opts["ray"] = make_ray_options(ray_address, cpus_per_task)
    try:
        options = ExtractOptions(**opts)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    def report(r) -> None:
        if r.status == "failed":
            err.print(f"[red]failed[/red] {r.error}", highlight=False, soft_wrap=True)
        elif r.n_decode_error:
            when = {"skipped": " when it was extracted", "planned": " (found by indexing)"}.get(r.status, "")
            err.print(f"[yellow]damaged[/yellow] {r.source}: {r.n_decode_error} frames could not be decoded{when} "
                      f"(status decode_error); the other frames are extracted", highlight=False, soft_wrap=True)  # fmt: skip

    summary = extract(list(sources), out, options, progress=True, on_result=None if options.dry_run else report)
    if not summary.results:
        err.print(f"no recordings found under {', '.join(sources)} (.bag, .db3, videos, image folders)")
        raise click.exceptions.Exit(1)
    _print_summary(summary)
    if summary.dry_run:
        for r in summary.results:
            report(r)
    if not summary.ok and not options.keep_going:
        raise click.exceptions.Exit(1)


def _print_summary(summary) -> None:
    """The per-recording table, the notes under it (frames not written and why), and one line of totals."""
    from gaitdata.progress import console as make_console
    from gaitdata.tables import key_column, make_table, num_column

    console = make_console()
    table = make_table(f"{'dry run: ' if summary.dry_run else ''}{summary.root}")
    key_column(table, "recording")
    key_column(table, "kind")
    key_column(table, "status")
    for col in ("colour", "depth", "written"):
        num_column(table, col)
    for r in summary.results:
        style = {"failed": "red", "skipped": "dim"}.get(r.status, "")
        table.add_row(r.video_id, r.kind, f"[{style}]{r.status}[/{style}]" if style else r.status, str(r.n_colour),
                      str(r.n_depth), str(r.n_written))  # fmt: skip
    console.print(table)
    for r in summary.results:
        for note in _frame_notes(r) + [n for n in r.notes if n != "no depth stream: colour only"]:
            console.print(f"  {r.video_id}: {note}", highlight=False, soft_wrap=True)
    colour_only = sum("no depth stream: colour only" in r.notes for r in summary.results)
    n_no_depth = sum(r.n_no_depth for r in summary.results)
    lost = f"{summary.n_frames_lost} frames lost to decode errors; " if summary.n_frames_lost else ""
    extra = (f"{colour_only} recordings colour only; " if colour_only else "") + (
        f"{n_no_depth} colour frames written without depth; " if n_no_depth else "")  # fmt: skip
    if summary.dry_run:
        planned = [r for r in summary.results if r.status == "planned"]
        console.print(
            f"dry run: {len(planned)} recordings to extract, {summary.n_skipped} to skip, {summary.n_failed} failed; "
            f"{sum(r.n_written for r in planned)} frames would be written; {extra}{lost}nothing was written"
        )
        return
    console.print(
        f"{summary.n_ok} ok, {summary.n_failed} failed, {summary.n_skipped} skipped; "
        f"{summary.frames_written} frames written; {extra}{lost}"
        f"{sum(r.n_depth_unpaired for r in summary.results if r.status == 'ok')} depth frames unpaired, "
        f"{sum(r.n_no_depth_partner for r in summary.results if r.status == 'ok')} colour frames without a depth "
        f"partner (not written); {summary.seconds:.1f} s"
    )


def _frame_notes(r) -> list[str]:
    """Colour frames not written for want of a depth partner, and depth frames left unpaired (decode
    errors have a note of their own)."""
    def n(k: int, what: str) -> str:
        return f"{k} {what.replace('frames', 'frame') if k == 1 else what}"

    notes = []
    if r.n_no_depth_partner:
        notes.append(n(r.n_no_depth_partner, "colour frames without a depth partner (not written)"))
    if r.n_depth_unpaired:
        notes.append(n(r.n_depth_unpaired, "depth frames unpaired"))
    return notes
