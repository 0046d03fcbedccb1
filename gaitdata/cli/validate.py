"""``gaitdata validate ROOT``."""

from __future__ import annotations

import click

from gaitdata.cli.common import output_options


@click.command()
@output_options
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option("--no-files", is_flag=True, help="Skip checking that every referenced file exists.")
def command(root: str, no_files: bool) -> None:
    """Check a dataset root: every referenced file exists, counts match the recordings, keys are
    unique, and no label set, split, export or model is stale (made from inputs that changed since).

    Each stale artefact is listed with what changed and the command that refreshes it; artefacts
    written before lineage was recorded are listed as "unknown lineage" (a warning). Exits 1 when
    anything is wrong or stale.

    \b
    Example:
      gaitdata validate data/root
    """
    from gaitdata.dataset import validate
    from gaitdata.progress import say
    from gaitdata.staleness import DAMAGED, STALE, UNKNOWN, check_root

    report = validate(root, check_files=not no_files)
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    for e in report.errors:
        click.echo(f"error: {e}", err=True)
    states = check_root(report.root) if report.counts else []
    for s in states:
        if s.state == UNKNOWN:
            click.echo(f"warning: {s.describe()}", err=True)
    damaged = [s for s in states if s.state == DAMAGED]
    for s in damaged:
        click.echo(f"error: {s.describe()}", err=True)
    stale = [s for s in states if s.state == STALE]
    for s in stale:
        click.echo(f"stale: {s.describe()}", err=True)
    c = report.counts
    if c:
        say(
            f"{report.root}: {c['videos_ok']}/{c['videos']} recordings ok, {c['videos_failed']} failed, "
            f"{c['frames_written']}/{c['frames']} frames written, label sets: {', '.join(c['label_sets']) or 'none'}"
        )
    if stale:
        click.echo(f"{len(stale)} stale artefact(s): refresh them in the order listed", err=True)
    if not report.ok or stale or damaged:
        raise click.exceptions.Exit(1)
    say("valid")
