"""Scale-out on Ray: one task per recording on every CPU and GPU of a cluster.

``gaitdata extract ... --ray ADDRESS`` and ``gaitdata label ... --ray ADDRESS`` run the same
per-recording work as a local run (:func:`gaitdata.extract.extract_one`, one recording of
:func:`pseudolabel.runner.label`) as Ray tasks instead of local worker processes; :class:`RayPool`
is a :class:`concurrent.futures.Executor`, so the stages plug it in where they use
:func:`gaitdata.procs.worker_pool`.

Addresses: ``auto`` joins the cluster named by ``RAY_ADDRESS`` or, without it, starts a cluster on
this machine for the run (every server on 127.0.0.1, all CPUs and GPUs of the machine; stopped at
the end); ``HOST:PORT`` joins a running cluster (``ray start --head`` prints its address). Ray
Client addresses (``ray://``) are refused: the driver must see the dataset root to hold its lock and
merge its tables, so run the command on a node of the cluster.

What travels where: workers read recordings and write frames, per-recording table parts and label
parts straight into the dataset root, which every node mounts at the same path (a shared
filesystem); only small things go through Ray's object store (the job description, a recording's
frame table, per-recording statistics). The driver holds the root's write lock for the whole run and
commits and merges exactly as a local run does, so the tables are the same row for row.

Faults: a task whose worker process or node dies is retried by Ray (``max_retries``); every
attempt starts its recording from scratch. A task that keeps dying raises :class:`TaskLostError`
(extraction records the recording as failed and goes on). An exception inside a task is not retried:
it comes back to the driver as the original exception.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gaitdata.errors import GaitdataError, require

EXTRA = "distributed"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray keeps 127.0.0.1 instead of the machine's address
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class TaskLostError(GaitdataError):
    """A task's worker (or node) died on every attempt; the message names the task and the likely causes."""


@dataclass(frozen=True)
class RayOptions:
    """Where to run and what each task asks of the cluster.

    ``gpus_per_task``: ``None`` lets the stage decide (labelling with ``--device cuda``: 1, else 0);
    a fraction packs several tasks on one GPU (0.25: four).
    """

    address: str = "auto"
    cpus_per_task: float = 1.0
    gpus_per_task: float | None = None
    max_retries: int = 3  # further attempts after a worker or node died

    def __post_init__(self) -> None:
        check_address(self.address)
        for name, v in (("--cpus-per-task", self.cpus_per_task), ("--gpus-per-task", self.gpus_per_task)):
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {v}")
        gpus = self.gpus_per_task or 0.0
        if gpus > 1 and gpus != int(gpus):
            raise ValueError(f"--gpus-per-task above 1 must be a whole number of GPUs, got {gpus:g}")
        if self.cpus_per_task == 0 and gpus == 0:
            raise ValueError("a task must ask for some CPU or GPU: --cpus-per-task and --gpus-per-task are both 0")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")


def check_address(address: str) -> None:
    """``auto`` or ``HOST:PORT``; anything else raises ValueError saying what is expected."""
    if address == "auto":
        return
    if address.startswith("ray://"):
        raise ValueError(
            f"Ray Client addresses are not supported ({address}): the driver must see the dataset root; "
            f"run gaitdata on a node of the cluster with --ray HEAD_IP:6379"
        )
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Ray address must be auto or HOST:PORT (e.g. 10.0.0.5:6379), got {address!r}")


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _import_ray(local: bool) -> Any:
    """``ray`` (or an error naming the extra). A cluster on this machine keeps every server on loopback."""
    if local and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    ray = require("ray", EXTRA)
    require("ray.exceptions", EXTRA)
    return ray


def _reachable(address: str, timeout_s: float = 5.0) -> str | None:
    """None when something listens at ``address``, else the reason."""
    host, port = _split(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def _target(options: RayOptions) -> str | None:
    """The address to join, or None for a new cluster on this machine."""
    env_address = os.environ.get("RAY_ADDRESS", "").strip()
    target = options.address if options.address != "auto" else (env_address or None)
    if target is not None:
        check_address(target)
    return target


def preflight(options: RayOptions) -> None:
    """Fail early, before a stage writes anything: Ray is importable and the cluster's address answers."""
    target = _target(options)
    _import_ray(target is None or _split(target)[0] in _LOOPBACK_HOSTS)
    if target is not None:
        _check_reachable(target)


def _check_reachable(target: str) -> None:
    why = _reachable(target)
    if why is not None:
        raise GaitdataError(
            f"cannot reach the Ray cluster at {target} ({why}); start it with `ray start --head --port "
            f"{_split(target)[1]}` on that machine, or use --ray auto for a cluster on this machine"
        )


@dataclass(frozen=True)
class _Checks:
    """Run first in every task: the node sees the shared paths and runs the driver's gaitdata."""

    paths: tuple[str, ...]
    version: str

    def __call__(self) -> None:
        from gaitdata._version import __version__

        node = f"{socket.gethostname()} ({_node_ip()})"
        if __version__ != self.version:
            raise GaitdataError(
                f"Ray node {node} runs gaitdata {__version__}, the driver {self.version}: install the same version on every node"
            )
        for p in self.paths:
            if not Path(p).is_dir():
                raise GaitdataError(
                    f"{p} is not visible on Ray node {node}: every node must mount the shared filesystem "
                    f"that holds the dataset root at the same path"
                )


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # outside a Ray worker
        return "?"


def _call(checks: _Checks, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """The body of every task: the checks, then ``fn(*args, **kwargs)``."""
    checks()
    return fn(*args, **kwargs)


class RayPool(Executor):
    """An executor whose calls run as Ray tasks; futures resolve to the call's value or exception.

    ``paths`` must be visible on every node (checked in each task); ``gpus_per_task`` overrides the
    options' ``None`` (auto). Leaving the ``with`` block cancels what is still pending or running
    (the workers are stopped) and disconnects; a cluster started for the pool is stopped.
    """

    def __init__(self, options: RayOptions, *, paths: Sequence[str | os.PathLike] = (),
                 gpus_per_task: float = 0.0, note: Callable[[str], None] | None = None) -> None:  # fmt: skip
        from gaitdata._version import __version__

        self.options = options
        target = _target(options)
        local = target is None or _split(target)[0] in _LOOPBACK_HOSTS
        ray = self._ray = _import_ray(local)
        self._owner = not ray.is_initialized()
        self.address = self._connect(target) if self._owner else f"cluster {ray.get_runtime_context().gcs_address}"
        gpus = options.gpus_per_task if options.gpus_per_task is not None else gpus_per_task
        self.cpus_per_task, self.gpus_per_task = float(options.cpus_per_task), float(gpus)
        try:
            self.slots, self.description = self._capacity()
        except BaseException:
            self._disconnect()
            raise
        self._remote = ray.remote(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
                                  max_retries=options.max_retries, retry_exceptions=False)(_call)  # fmt: skip
        self._checks = _Checks(tuple(str(Path(p).expanduser().resolve()) for p in paths), __version__)
        self._lock = threading.Lock()
        self._refs: dict[Future, Any] = {}
        self._closed = False
        if note is not None:
            note(self.description)

    # ---- connection ---------------------------------------------------------------------------
    def _connect(self, target: str | None) -> str:
        ray = self._ray
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if target is None:
            ctx = ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, **quiet)
            return f"local cluster {ctx.address_info.get('gcs_address', '127.0.0.1')}"
        _check_reachable(target)
        try:
            ray.init(address=target, **quiet)
        except ray.exceptions.AuthenticationError:
            raise GaitdataError(
                f"the Ray cluster at {target} requires a token: set RAY_AUTH_MODE=token and the cluster's token "
                f"(RAY_AUTH_TOKEN, or the file ~/.ray/auth_token), then rerun"
            ) from None
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise GaitdataError(f"cannot join the Ray cluster at {target}: {' '.join(str(exc).split())}") from None
        return f"cluster {target}"

    def _capacity(self) -> tuple[int, str]:
        """Tasks that fit at once, and one line describing the cluster; an error when no node fits one."""
        nodes = [n.get("Resources", {}) for n in self._ray.nodes() if n.get("Alive")]
        cpu = sum(r.get("CPU", 0.0) for r in nodes)
        gpu = sum(r.get("GPU", 0.0) for r in nodes)

        def fits(r: dict) -> int:
            per = [r.get(k, 0.0) / need for k, need in (("CPU", self.cpus_per_task), ("GPU", self.gpus_per_task)) if need]
            return int(min(per) + 1e-9) if per else 0

        slots = sum(fits(r) for r in nodes)
        ask = f"{self.cpus_per_task:g} CPU" + (f" + {self.gpus_per_task:g} GPU" if self.gpus_per_task else "")
        desc = (f"Ray {self.address}: {len(nodes)} node{'s' * (len(nodes) != 1)}, {cpu:g} CPUs, {gpu:g} GPUs; "
                f"{slots} tasks at a time ({ask} each)")  # fmt: skip
        if slots == 0:
            fix = ("add GPU nodes, or run on CPUs (--device cpu, --gpus-per-task 0)" if self.gpus_per_task and not gpu
                   else "lower --cpus-per-task/--gpus-per-task")  # fmt: skip
            raise GaitdataError(f"no node of the Ray {self.address} can run a task asking for {ask} ({cpu:g} CPUs, {gpu:g} GPUs in all); {fix}")
        return slots, desc

    def _disconnect(self) -> None:
        if self._owner and self._ray.is_initialized():
            self._ray.shutdown()

    # ---- Executor ---------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self.run(getattr(fn, "__name__", "task"), fn, *args, **kwargs)

    def run(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Like :meth:`submit`, with the task's name (shown by ``ray`` tools and in error messages)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a RayPool after shutdown")
            ref = self._remote.options(name=name).remote(self._checks, fn, args, kwargs)
            out: Future = Future()
            out.set_running_or_notify_cancel()
            self._refs[out] = ref
        ref.future().add_done_callback(lambda f: self._settle(out, name, f))
        return out

    def _settle(self, out: Future, name: str, done: Future) -> None:
        try:
            value, error = done.result(), None
        except BaseException as exc:  # every outcome goes to the caller's future
            value, error = None, self._translate(name, exc)
        with self._lock:
            self._refs.pop(out, None)
            if out.done():  # cancelled at shutdown
                return
            if error is not None:
                out.set_exception(error)
            else:
                out.set_result(value)

    def _translate(self, name: str, exc: BaseException) -> BaseException:
        rex = self._ray.exceptions
        if isinstance(exc, rex.RayTaskError):  # raised by the task's own code: the original exception
            cause = getattr(exc, "cause", None)
            return cause if isinstance(cause, BaseException) else exc
        if isinstance(exc, rex.TaskCancelledError | CancelledError):
            return CancelledError(name)
        if isinstance(exc, rex.RayError):
            attempts = self.options.max_retries + 1
            reason = " ".join(str(exc).split())[:300]
            return TaskLostError(
                f"{name}: the Ray worker running it was lost on all {attempts} attempts (killed, out of memory, "
                f"a crash in native code, or its node left the cluster): {type(exc).__name__}: {reason}"
            )
        return exc

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting calls; cancel pending and running tasks (``cancel_futures``), then disconnect."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = list(self._refs.items())
        if cancel_futures or not wait:
            for fut, ref in pending:
                with contextlib.suppress(Exception):  # already finished or lost: nothing left to stop
                    self._ray.cancel(ref, force=True)
                with self._lock:
                    if not fut.done():
                        fut.set_exception(CancelledError())
        elif pending:
            self._ray.wait([r for _, r in pending], num_returns=len(pending))
        self._disconnect()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        self.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)
        return None


__all__ = ["EXTRA", "RayOptions", "RayPool", "TaskLostError", "check_address", "preflight"]
