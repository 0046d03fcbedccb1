"""Summary tables that stay readable at 80 columns (a log file, a pipe, a narrow terminal).

Identifiers and paths are folded, never cut with an ellipsis; numbers never wrap. Wide notes go
below a table, not into a column of their own.
"""

from __future__ import annotations

from typing import Any


def make_table(title: str | None = None, **kwargs: Any) -> Any:
    """A table with a rule under the header and no vertical lines (two spaces between columns)."""
    from rich import box
    from rich.table import Table

    kwargs.setdefault("box", box.SIMPLE_HEAD)
    kwargs.setdefault("show_edge", False)
    return Table(title=title, title_justify="left", **kwargs)


def key_column(table: Any, header: str) -> None:
    """A left-aligned name (recording, split, path): kept whole, folded onto more lines if it must."""
    table.add_column(header, justify="left", overflow="fold")


def num_column(table: Any, header: str) -> None:
    """A right-aligned number that never wraps (break a long header with ``\\n``)."""
    table.add_column(header, justify="right", no_wrap=True)


def text_column(table: Any, header: str) -> None:
    """Free text that takes the width left over and wraps at words."""
    table.add_column(header, justify="left", overflow="fold", ratio=1)
