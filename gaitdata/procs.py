"""Worker processes that die with their parent, and running calls on any executor with a bound.

A process pool's workers outlive a parent killed with SIGKILL: nothing tells them. Workers made here
ask the kernel to kill them when the parent goes (Linux ``prctl(PR_SET_PDEATHSIG)``) and, on every
platform, watch their parent's pid from a daemon thread and exit when it changes.

:func:`as_done` feeds calls to an executor — :func:`worker_pool` here, or
:class:`gaitdata.distributed.RayPool` across a cluster — keeping at most ``window`` in flight, and
yields each one as it finishes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

K = TypeVar("K")

_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no libc symbol: the watchdog thread still covers it
        pass


def _watch_parent(parent_pid: int, interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent_pid:
            os._exit(1)


def die_with_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    """Call first thing in a child process: it ends (SIGKILL or exit 1) as soon as ``parent_pid`` is gone."""
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid, interval_s), daemon=True,
                     name="gaitdata-parent-watch").start()  # fmt: skip


def _init_worker(parent_pid: int, then: Callable[[], None] | None) -> None:
    die_with_parent(parent_pid)
    if then is not None:
        then()


def worker_pool(max_workers: int, initializer: Callable[[], None] | None = None) -> ProcessPoolExecutor:
    """A spawn-context process pool whose workers die with this process (kill -9 included)."""
    import multiprocessing as mp

    return ProcessPoolExecutor(max_workers=max_workers, mp_context=mp.get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(), initializer))  # fmt: skip


def as_done(keys: Iterable[K], submit: Callable[[K], Future], window: int | None = None) -> Iterator[tuple[K, Future]]:
    """``submit(key)`` for each key with at most ``window`` futures in flight (None: all at once);
    yields ``(key, future)`` as each finishes, in completion order. Keys are consumed lazily, so the
    arguments of calls not yet submitted need not exist yet."""
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    todo = iter(keys)
    live: dict[Future, K] = {}

    def top_up() -> None:
        while window is None or len(live) < window:
            for key in todo:
                live[submit(key)] = key
                break
            else:
                return

    top_up()
    while live:
        done, _ = wait(live, return_when=FIRST_COMPLETED)
        for fut in done:
            key = live.pop(fut)
            top_up()
            yield key, fut


__all__ = ["as_done", "die_with_parent", "worker_pool"]
