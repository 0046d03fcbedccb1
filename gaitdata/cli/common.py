"""Options shared by the verbs that write into a dataset root."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def no_wait_option(f: F) -> F:
    """Add ``--no-wait``: refuse at once (exit status 2) when another command writes the same root."""

    @click.option(
        "--no-wait",
        is_flag=True,
        help="If another gaitdata command is writing the dataset root, refuse at once instead of waiting for it.",
    )
    @functools.wraps(f)
    def wrapper(*args: Any, no_wait: bool = False, **kwargs: Any) -> Any:
        from gaitdata.lock import lock_policy

        with lock_policy(wait=not no_wait):
            return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
