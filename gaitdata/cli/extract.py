"""``gaitdata extract SRC... --out ROOT``."""

from __future__ import annotations

import click


def _resize(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    try:
        w, h = (int(v) for v in value.lower().replace("x", ",").split(","))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT (one may be -1), got {value!r}") from None
    return w, h


@click.command()
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
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="Encode/write threads inside one recording.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Re-extract recordings already done.")
@click.option("--dry-run", is_flag=True, help="Discover, index and pair; write nothing.")
@click.option(
    "--id-pattern", default=None, help="Metadata from the relative path, e.g. '{subject}/{session}_{view}'."
)
@click.option("--metadata", "metadata_csv", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="CSV with video_id|source_rel|path and subject, session, view, condition.")  # fmt: skip
@click.option("--keep-going", is_flag=True, help="Exit 0 even when some recordings fail.")
@click.option("--reader", type=click.Choice(["auto", "pyrealsense2", "python"]), default="auto", show_default=True,
              help="RealSense reader (auto: pyrealsense2 when importable).")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(sources: tuple[str, ...], out: str, quiet: bool, **opts) -> None:
    """Extract time-aligned RGB + registered raw 16-bit depth frames into a dataset root.

    SOURCES are files or folders (searched recursively): RealSense .bag/.db3, colour+depth pairs
    (<stem>_color.mp4 + <stem>_depth.mkv or <stem>_depth/, optional <stem>_color.csv/<stem>_depth.csv
    timestamps and <stem>_calib.json), colour videos and image folders. Recordings without depth are
    extracted colour-only (noted in the summary). Rerunning skips what is done; a failed recording is
    reported in one line and marked failed in videos.parquet (exit status 1 unless --keep-going).

    \b
    Examples:
      gaitdata extract recordings/ --out data/root
      gaitdata extract recordings/ --out data/root --fps 10 --resize 640x-1 --id-pattern '{subject}/{session}_{view}'
      gaitdata extract a.bag b.db3 --out data/root --start 2 --end 12 --max-frames 100 --keep-going
      gaitdata extract recordings/ --out data/root --dry-run
    """
    from rich.console import Console
    from rich.table import Table

    from gaitdata.extract import ExtractOptions, extract

    err = Console(stderr=True)
    try:
        options = ExtractOptions(**opts)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    def report(r) -> None:
        if r.status == "failed":
            err.print(f"[red]failed[/red] {r.error}", highlight=False, soft_wrap=True)

    summary = extract(list(sources), out, options, progress=not quiet, on_result=report)
    if not summary.results:
        err.print(f"no recordings found under {', '.join(sources)} (.bag, .db3, videos, image folders)")
        raise click.exceptions.Exit(1)
    console = Console()
    table = Table(title=f"{'dry run: ' if summary.dry_run else ''}{summary.root}")
    for col in (
        "recording",
        "kind",
        "status",
        "colour",
        "depth",
        "written",
        "no depth",
        "depth unpaired",
        "notes",
    ):
        table.add_column(
            col,
            justify="right"
            if col in ("colour", "depth", "written", "no depth", "depth unpaired")
            else "left",
        )
    for r in summary.results:
        style = {"failed": "red", "skipped": "dim"}.get(r.status, "")
        table.add_row(r.video_id, r.kind, f"[{style}]{r.status}[/{style}]" if style else r.status, str(r.n_colour),
                      str(r.n_depth), str(r.n_written), str(r.n_no_depth_partner), str(r.n_depth_unpaired),
                      "; ".join(r.notes))  # fmt: skip
    console.print(table)
    if summary.dry_run:
        for r in summary.failures():
            report(r)
        planned = [r for r in summary.results if r.status == "planned"]
        console.print(
            f"dry run: {len(planned)} recordings readable, {summary.n_failed} failed; "
            f"{sum(r.n_written for r in planned)} frames would be written; nothing was written"
        )
        if summary.n_failed and not options.keep_going:
            raise click.exceptions.Exit(1)
        return
    console.print(
        f"{summary.n_ok} ok, {summary.n_failed} failed, {summary.n_skipped} skipped; "
        f"{summary.frames_written} frames written; "
        f"{sum(r.n_depth_unpaired for r in summary.results)} depth frames unpaired, "
        f"{sum(r.n_no_depth_partner for r in summary.results)} colour frames without depth; "
        f"{summary.seconds:.1f} s"
    )
    if summary.n_failed and not options.keep_going:
        raise click.exceptions.Exit(1)
