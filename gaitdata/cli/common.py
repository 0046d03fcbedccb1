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


def tolerance_option(against: str) -> Callable[[F], F]:
    """Add ``--tolerance`` (default 0.02); ``against`` ends its help: "PCK@0.1 (fraction) a ..."."""
    return click.option(
        "--tolerance", default=0.02, show_default=True, type=click.FloatRange(0, 1),
        help=f"PCK@0.1 (fraction) a {against}.",
    )  # fmt: skip


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

def ray_options(*, gpus: bool) -> Callable[[F], F]:
    """Add ``--ray ADDRESS`` and ``--cpus-per-task`` (and ``--gpus-per-task`` where a stage uses GPUs)."""

    def deco(f: F) -> F:
        if gpus:
            f = click.option(
                "--gpus-per-task", type=click.FloatRange(min=0), default=None,
                help="With --ray: GPUs per recording task; a fraction packs tasks on one GPU (0.25: four). "
                     "Default: 1 with --device cuda, else 0.",
            )(f)  # fmt: skip
        f = click.option(
            "--cpus-per-task", type=click.FloatRange(min=0), default=1.0, show_default=True,
            help="With --ray: CPUs each recording task reserves on its node.",
        )(f)  # fmt: skip
        return click.option(
            "--ray", "ray_address", metavar="ADDRESS", default=None,
            help="Run one Ray task per recording: 'auto' (RAY_ADDRESS, else a cluster on this machine) or HOST:PORT "
                 "of a running cluster. The dataset root must be on a filesystem every node mounts at the same path.",
        )(f)  # fmt: skip

    return deco


def make_ray_options(address: str | None, cpus_per_task: float, gpus_per_task: float | None = None) -> Any:
    """The stage's ``RayOptions`` from the command line (None without ``--ray``), checked before the
    stage starts: Ray is installed and the cluster's address answers."""
    if address is None:
        return None
    from gaitdata.distributed import RayOptions, preflight

    try:
        options = RayOptions(address=address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ray") from None
    preflight(options)
    return options
