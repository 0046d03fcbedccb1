"""Options shared by the verbs: output (``-q/--quiet``, ``--verbose``) and root locking (``--no-wait``)."""

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


def output_options(f: F) -> F:
    """Add ``-q/--quiet`` (only warnings and errors) and ``--verbose`` (native libraries' logs too)."""

    @click.option("--quiet", "-q", is_flag=True, help="Print only warnings and errors: no progress, no summary.")
    @click.option("--verbose", is_flag=True,
                  help="Also show the log lines of native libraries (mediapipe, TF Lite, absl), hidden by default.")  # fmt: skip
    @functools.wraps(f)
    def wrapper(*args: Any, quiet: bool = False, verbose: bool = False, **kwargs: Any) -> Any:
        from gaitdata.nativelog import native_logs
        from gaitdata.progress import quiet_output

        with quiet_output(quiet), native_logs(verbose):
            return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
