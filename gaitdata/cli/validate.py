"""``gaitdata validate ROOT``."""

from __future__ import annotations

import click


@click.command()
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option("--no-files", is_flag=True, help="Skip checking that every referenced file exists.")
def command(root: str, no_files: bool) -> None:
    """Check a dataset root: every referenced file exists, counts match the recordings, keys are unique.

    \b
    Example:
      gaitdata validate data/root
    """
    from gaitdata.dataset import validate

    report = validate(root, check_files=not no_files)
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    for e in report.errors:
        click.echo(f"error: {e}", err=True)
    c = report.counts
    if c:
        click.echo(
            f"{report.root}: {c['videos_ok']}/{c['videos']} recordings ok, {c['videos_failed']} failed, "
            f"{c['frames_written']}/{c['frames']} frames written, label sets: {', '.join(c['label_sets']) or 'none'}"
        )
    if not report.ok:
        raise click.exceptions.Exit(1)
    click.echo("valid")
