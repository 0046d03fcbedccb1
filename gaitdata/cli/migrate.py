"""``gaitdata migrate ROOT``."""

from __future__ import annotations

import click

from gaitdata.cli.common import no_wait_option, output_options


@click.command()
@no_wait_option
@output_options
@click.argument("root", type=click.Path(file_okay=False, exists=True, path_type=str))
def command(root: str) -> None:
    """Upgrade a dataset root written by an older gaitdata to the current layout, in place.

    Safe to interrupt and rerun; a root that is already current is left as it is. Like every
    command that writes into ROOT, it first waits for any other one writing there.

    \b
    Example:
      gaitdata migrate data/root
    """
    from gaitdata.migrate import migrate
    from gaitdata.progress import say

    rep = migrate(root)
    if not rep.migrated:
        say(f"{rep.root}: already at dataset schema {rep.to_version}; nothing to do")
        return
    for c in rep.changes:
        say(f"  {c}")
    say(f"{rep.root}: migrated from dataset schema {rep.from_version} to {rep.to_version}")
