"""``gaitdata migrate ROOT``."""

from __future__ import annotations

import click


@click.command()
@click.argument("root", type=click.Path(file_okay=False, exists=True, path_type=str))
def command(root: str) -> None:
    """Upgrade a dataset root written by an older gaitdata to the current layout, in place.

    Safe to interrupt and rerun; a root that is already current is left as it is. Run it while
    no other gaitdata command writes into ROOT.

    \b
    Example:
      gaitdata migrate data/root
    """
    from gaitdata.migrate import migrate

    rep = migrate(root)
    if not rep.migrated:
        click.echo(f"{rep.root}: already at dataset schema {rep.to_version}; nothing to do")
        return
    for c in rep.changes:
        click.echo(f"  {c}")
    click.echo(f"{rep.root}: migrated from dataset schema {rep.from_version} to {rep.to_version}")
