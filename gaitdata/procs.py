"""Worker processes that die with their parent.

A process pool's workers outlive a parent killed with SIGKILL: nothing tells them. Workers made here
ask the kernel to kill them when the parent goes (Linux ``prctl(PR_SET_PDEATHSIG)``) and, on every
platform, watch their parent's pid from a daemon thread and exit when it changes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

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


__all__ = ["die_with_parent", "worker_pool"]
