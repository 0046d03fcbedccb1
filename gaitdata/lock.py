"""One writer at a time per dataset root; consistent table snapshots for readers.

Two OS advisory locks (``fcntl.flock``) live in ``<root>/.gaitdata/``:

``lock``
    The **root lock**. Every library entry point that writes into a root holds it exclusively for
    its whole run (:func:`writes_root` wraps them; :func:`root_lock` is the context manager). The
    kernel drops it when its holder exits, ``kill -9`` included, so a crash never leaves a stale
    lock. The holder's pid, host, verb, command line and start time are written next to it
    (``lock.json``) so that a second writer can say whom it waits for. A second writer waits
    (printing that once), or with ``wait=False`` (``--no-wait`` on the command line) raises
    :class:`RootLockedError` at once. The lock is re-entrant within one thread of one process
    (``demo`` calls ``extract``, ``label``, ...); another thread of the same process waits like
    another process would.

``tables.lock``
    A short **table lock**. The root-lock holder takes it exclusively while it rewrites tables
    that must agree with each other (``videos.parquet`` + ``frames.parquet``); readers that do not
    write (``validate``, ``browse``, ``audit``) take it shared while they read them, so they see
    either the old or the new state, never a mix. Each
    file is replaced atomically anyway (:mod:`gaitdata.io`), so a reader never sees a half-written
    file. Readers open the lock file read-only and never create it, so they work on a root they
    cannot write (a read-only mount, another user's root); where no writer ever made it, they read
    unlocked. A process that holds the root lock reads without the table lock (nobody else writes).

Network filesystems: on Linux, ``flock`` on NFS (v3 with lockd, v4) is carried out as a whole-file
POSIX lock on the server, so clients on different machines exclude each other; the lock file must be
opened for writing to lock exclusively, which a writer can always do. Mounts with ``nolock`` or
``local_lock=flock|all`` keep locks on one client only: two machines can then write one root at
once. SMB/CIFS and most FUSE filesystems behave like ``nolock``. When several machines write one
root over such a mount, run the writers on one machine (or put the root on a local disk).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import functools
import inspect
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from gaitdata.errors import GaitdataError

LOCK_DIR = ".gaitdata"
ROOT_LOCK = "lock"
HOLDER_FILE = "lock.json"
TABLES_LOCK = "tables.lock"

# folders of a root that a stage rewrites or deletes: nothing else may write output there
MANAGED_DIRS: dict[str, str] = {
    "frames": "gaitdata extract",
    "labels": "gaitdata label",
    "splits": "gaitdata split",
    "agreement": "gaitdata compare-labels",
    LOCK_DIR: "gaitdata extract",
    ".fiftyone": "gaitdata browse",
}

F = TypeVar("F", bound=Callable[..., Any])


class RootLockedError(GaitdataError):
    """Another process (or thread) holds the root lock and the caller chose not to wait."""


@dataclass(frozen=True)
class Holder:
    """Who holds a root lock (read from ``lock.json``; best effort)."""

    pid: int
    host: str
    verb: str
    since: float  # time.time() when the lock was taken
    command: str = ""

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        ago = max(0.0, time.time() - self.since)
        return f"`gaitdata {self.verb}` (pid {self.pid} on {self.host}, since {when}, {_duration(ago)} ago)"


@dataclass(frozen=True)
class LockPolicy:
    """How a writer behaves when the root is locked: wait (and how it says so) or refuse."""

    wait: bool = True
    timeout_s: float | None = None  # None: wait as long as it takes
    poll_s: float = 0.25
    on_wait: Callable[[str], None] | None = None  # default: one line on stderr


_POLICY: contextvars.ContextVar[LockPolicy | None] = contextvars.ContextVar("gaitdata_lock_policy", default=None)


def current_policy() -> LockPolicy:
    return _POLICY.get() or LockPolicy()


@contextlib.contextmanager
def lock_policy(wait: bool = True, timeout_s: float | None = None,
                on_wait: Callable[[str], None] | None = None) -> Iterator[LockPolicy]:  # fmt: skip
    """Within this block, writers wait for a locked root (``wait=True``) or refuse at once.

    >>> with lock_policy(wait=False):      # what ``--no-wait`` does
    ...     pass
    """
    policy = LockPolicy(wait=wait, timeout_s=timeout_s, on_wait=on_wait)
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


# ---- per-process bookkeeping ------------------------------------------------------------------------
class _Held:
    """One root's lock as seen by this process: a thread lock (re-entrant) + the OS lock when taken."""

    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None
        self.holder_path: Path | None = None
        self.tables_fd: int | None = None
        self.tables_depth = 0


class _Registry:
    """Locks this process holds, by root. It mirrors per-process kernel state (flock is per open
    file), which is why it is module-level; a forked child starts with an empty one."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._roots: dict[Path, _Held] = {}

    def get(self, root: Path) -> _Held:
        with self._guard:
            return self._roots.setdefault(root, _Held())

    def holds(self, root: Path) -> bool:
        with self._guard:
            held = self._roots.get(root)
        return held is not None and held.depth > 0

    def forget_after_fork(self) -> None:
        for held in self._roots.values():  # the child's copies; closing them leaves the parent's locks intact
            for fd in (held.fd, held.tables_fd):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        self._guard = threading.Lock()
        self._roots = {}


_REGISTRY = _Registry()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_REGISTRY.forget_after_fork)


def _key(root: str | os.PathLike) -> Path:
    return Path(getattr(root, "path", root)).expanduser().resolve()


def holds_root_lock(root: str | os.PathLike) -> bool:
    """Whether this process holds the root lock of ``root``."""
    return _REGISTRY.holds(_key(root))


def _distributed_follower() -> bool:
    """A torchrun rank other than 0: rank 0 holds the lock for the whole job."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) != 0
    except ValueError:
        return False


# ---- the root lock -------------------------------------------------------------------------------------
def _not_writable(root: Path, verb: str, exc: OSError) -> GaitdataError:
    reason = "it is on a read-only filesystem" if exc.errno == errno.EROFS else f"{exc.strerror or exc}"
    elsewhere = " (or pass --out FOLDER outside the root)" if verb == "export" else ""
    return GaitdataError(
        f"dataset root {root} is not writable ({reason}); `gaitdata {verb}` writes into it: ask its owner "
        f"for write access, or copy the root somewhere writable (cp -a {root} NEW_ROOT) and use that{elsewhere}"
    )


def _open_lock_file(path: Path, *, create: bool) -> int:
    """Open ``path`` for locking: read-write when possible (an exclusive lock on NFS needs it), else read-only."""
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        return os.open(path, flags, 0o666)  # the umask applies: a group-shared root stays shared
    except PermissionError:
        if not path.exists():
            raise
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def read_holder(root: str | os.PathLike) -> Holder | None:
    """The holder recorded next to the root lock (``None`` when unknown)."""
    path = _key(root) / LOCK_DIR / HOLDER_FILE
    try:
        d = json.loads(path.read_text())
        return Holder(int(d["pid"]), str(d["host"]), str(d["verb"]), float(d["since"]), str(d.get("command", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_holder(path: Path, verb: str) -> bool:
    from gaitdata.io import atomic_write_json

    info = {
        "pid": os.getpid(), "host": socket.gethostname(), "verb": verb, "since": time.time(),
        "command": " ".join([_program(), *sys.argv[1:]]),
    }  # fmt: skip
    try:
        atomic_write_json(path, info)
        return True
    except OSError:
        return False


def _flock_error(root: Path, exc: OSError) -> GaitdataError:
    return GaitdataError(
        f"cannot lock dataset root {root} ({exc.strerror or exc}): its filesystem does not support file locks "
        f"(e.g. NFS without lockd); mount it with lock support, or put the root on a local disk"
    )


def _acquire_os_lock(root: Path, verb: str, create: bool, policy: LockPolicy) -> tuple[int, Path | None]:
    lock_dir = root / LOCK_DIR
    try:
        if create:
            root.mkdir(parents=True, exist_ok=True)
        lock_dir.mkdir(exist_ok=True)
        fd = _open_lock_file(lock_dir / ROOT_LOCK, create=True)
    except (FileExistsError, NotADirectoryError) as exc:
        if create and not root.is_dir():
            raise GaitdataError(
                f"cannot create dataset root {root}: a part of that path is a file, not a folder. "
                f"Choose another --out directory."
            ) from exc
        raise GaitdataError(
            f"{lock_dir} is not a folder: gaitdata keeps its bookkeeping there; move that file out of the "
            f"dataset root {root} and rerun"
        ) from exc
    except OSError as exc:
        if create and not root.is_dir():
            raise GaitdataError(
                f"cannot create dataset root {root}: {exc.strerror or exc}. Choose a writable --out directory."
            ) from exc
        raise _not_writable(root, verb, exc) from exc
    if not os.access(root, os.W_OK):
        os.close(fd)
        raise _not_writable(root, verb, PermissionError(errno.EACCES, "permission denied"))
    t0 = time.monotonic()
    told: tuple | None = None
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise _flock_error(root, exc) from exc
            holder = read_holder(root)
            who = holder.describe() if holder is not None else "another gaitdata process"
            if not policy.wait:
                raise RootLockedError(
                    f"dataset root {root} is locked by {who}; wait for it to finish, or run without --no-wait to queue behind it"
                )
            if policy.timeout_s is not None and time.monotonic() - t0 > policy.timeout_s:
                raise RootLockedError(
                    f"dataset root {root} is still locked by {who} after {_duration(policy.timeout_s)}; try again later"
                )
            ident = (holder.pid, holder.host, holder.since) if holder is not None else ()
            if ident != told and (holder is not None or time.monotonic() - t0 > 1.0):  # once per holder
                msg = (f"waiting for dataset root {root}: locked by {who}; this run starts when that one ends "
                       f"(Ctrl-C to stop; --no-wait refuses at once)")  # fmt: skip
                (policy.on_wait or _print_stderr)(msg)
                told = ident
            time.sleep(policy.poll_s)
    except BaseException:
        os.close(fd)
        raise
    with contextlib.suppress(OSError):  # so that readers find a table lock to wait on from now on
        os.close(_open_lock_file(lock_dir / TABLES_LOCK, create=True))
    holder = lock_dir / HOLDER_FILE
    return fd, holder if _write_holder(holder, verb) else None


def _release_os_lock(held: _Held) -> None:
    if held.holder_path is not None:  # removed while still locked: a new holder's file is never deleted
        with contextlib.suppress(OSError):
            held.holder_path.unlink()
        held.holder_path = None
    if held.fd is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(held.fd, fcntl.LOCK_UN)
        os.close(held.fd)
        held.fd = None


@contextlib.contextmanager
def root_lock(root: str | os.PathLike, verb: str, *, create: bool = False, read_only_ok: bool = False,
              policy: LockPolicy | None = None) -> Iterator[Path]:  # fmt: skip
    """Hold the exclusive root lock of ``root`` for the block (re-entrant within a thread).

    ``create``: make the root folder first (``extract``); otherwise a root that does not exist is
    not locked (the stage itself reports it). ``read_only_ok``: the block only reads the root (it
    writes elsewhere), so a root this process cannot write is read under the shared table lock
    instead of refused. ``policy`` defaults to the one set by :func:`lock_policy` (wait, printing
    who holds the lock).
    """
    key = _key(root)
    if _distributed_follower() or (not create and not key.is_dir()):
        yield key
        return
    if read_only_ok and not _REGISTRY.holds(key) and not _writable(key):
        with tables_lock(key, exclusive=False):
            yield key
        return
    policy = policy or current_policy()
    held = _REGISTRY.get(key)
    if not held.thread_lock.acquire(blocking=False):
        holder = read_holder(key)
        who = f"another thread of this process{': ' + holder.describe() if holder is not None else ''}"
        if not policy.wait:
            raise RootLockedError(
                f"dataset root {key} is locked by {who}; wait for it to finish, or run without --no-wait to queue behind it"
            )
        (policy.on_wait or _print_stderr)(f"waiting for dataset root {key}: locked by {who}")
        if not held.thread_lock.acquire(timeout=-1 if policy.timeout_s is None else policy.timeout_s):
            raise RootLockedError(
                f"dataset root {key} is still locked by {who} after {_duration(policy.timeout_s or 0)}; try again later"
            )
    try:
        if held.depth == 0:
            held.fd, held.holder_path = _acquire_os_lock(key, verb, create, policy)
        held.depth += 1
        try:
            yield key
        finally:
            held.depth -= 1
            if held.depth == 0:
                _release_os_lock(held)
    finally:
        held.thread_lock.release()


def _writable(root: Path) -> bool:
    lock_dir = root / LOCK_DIR
    return os.access(root, os.W_OK) and (not lock_dir.is_dir() or os.access(lock_dir, os.W_OK))


@contextlib.contextmanager
def root_locks(roots: Iterable[str | os.PathLike], verb: str, *, create: bool = False,
               read_only_ok: bool = False) -> Iterator[list[Path]]:  # fmt: skip
    """:func:`root_lock` on several roots at once, always taken in the same (sorted) order."""
    keys = sorted({_key(r) for r in roots})
    with contextlib.ExitStack() as stack:
        for k in keys:
            stack.enter_context(root_lock(k, verb, create=create, read_only_ok=read_only_ok))
        yield keys


def writes_root(verb: str, root: str | Callable[[dict[str, Any]], Iterable[Any]] = "root", *,
                create: bool = False, out: str | Callable[[dict[str, Any]], Any] | None = None,
                out_elsewhere_reads_only: bool = False) -> Callable[[F], F]:  # fmt: skip
    """Decorate a library entry point that writes into a dataset root: it runs under the root lock.

    ``root`` names the argument holding the root, or maps the bound arguments to the roots to lock
    (an empty list: nothing to lock, e.g. a dry run). ``out`` names the output-path argument (or
    maps the arguments to it) that must not lie inside a folder another stage rewrites
    (:func:`check_output_dir`). ``out_elsewhere_reads_only``: with ``out`` outside the root the
    call only reads the root, so a root the user cannot write is read (see :func:`root_lock`).
    """

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError:
                return fn(*args, **kwargs)  # the call's own TypeError
            bound.apply_defaults()
            a = bound.arguments
            roots = [r for r in (root(a) if callable(root) else [a[root]]) if r is not None]
            dest = out(a) if callable(out) else a.get(out) if out is not None else None
            if dest is not None:
                for r in roots:
                    check_output_dir(r, dest, verb)
            elsewhere = dest is not None and not any(_inside(dest, r) for r in roots)
            with root_locks(roots, verb, create=create, read_only_ok=out_elsewhere_reads_only and elsewhere):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco


def _inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    return Path(path).expanduser().resolve().is_relative_to(_key(root))


def find_root(path: str | os.PathLike | None) -> Path | None:
    """The dataset root (a folder with ``dataset.json``) that ``path`` lies in, or ``None``."""
    if path is None:
        return None
    p = Path(path).expanduser().resolve()
    for cand in (p, *p.parents):
        if (cand / "dataset.json").is_file():
            return cand
    return None


def check_output_dir(root: str | os.PathLike, out: str | os.PathLike, verb: str) -> None:
    """Refuse an output folder that is the root itself or inside a folder a stage rewrites or deletes."""
    r = _key(root)
    o = Path(out).expanduser().resolve()
    if o == r:
        raise GaitdataError(
            f"--out {out} is the dataset root itself; `gaitdata {verb}` would mix its files with the root's: "
            f"choose {r / 'exports' / 'NAME'} or a folder outside the root"
        )
    try:
        first = o.relative_to(r).parts[0]
    except ValueError:
        return
    if first in MANAGED_DIRS:
        raise GaitdataError(
            f"--out {out} is inside {r / first}, which `{MANAGED_DIRS[first]}` rewrites (what you write there "
            f"can be deleted): choose {r / 'exports' / 'NAME'} or a folder outside the root"
        )


# ---- the table lock ------------------------------------------------------------------------------------
@contextlib.contextmanager
def tables_lock(root: str | os.PathLike, *, exclusive: bool) -> Iterator[None]:
    """Hold the table lock of ``root``: exclusive to rewrite a group of tables, shared to read one.

    Shared: a no-op in the process that holds the root lock (nothing else can be writing); without
    a lock file that this process could create (a read-only root) the tables are read unlocked.
    Re-entrant within a thread.
    """
    key = _key(root)
    if not exclusive and _REGISTRY.holds(key):
        yield
        return
    held = _REGISTRY.get(key)
    with held.thread_lock if exclusive else contextlib.nullcontext():
        if exclusive and held.tables_depth > 0:
            held.tables_depth += 1
            try:
                yield
            finally:
                held.tables_depth -= 1
            return
        fd = _open_tables_lock(key, exclusive)
        if fd is None:
            yield
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            except OSError as exc:
                if exclusive:
                    raise _flock_error(key, exc) from exc
                # a reader on a filesystem without locks: read unlocked
            if exclusive:
                held.tables_fd, held.tables_depth = fd, 1
            try:
                yield
            finally:
                if exclusive:
                    held.tables_fd, held.tables_depth = None, 0
        finally:
            os.close(fd)


def _open_tables_lock(root: Path, exclusive: bool) -> int | None:
    """A writer opens (creating) the table lock file; a reader opens it read-only if it exists (a shared
    lock needs no more, and a reader never writes into the root), else reads unlocked."""
    path = root / LOCK_DIR / TABLES_LOCK
    if exclusive:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _open_lock_file(path, create=True)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


# ---- helpers -------------------------------------------------------------------------------------------
def _program() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return "gaitdata" if name in ("gaitdata", "__main__.py") else name


def _print_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _duration(s: float) -> str:
    s = int(round(s))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


__all__ = [
    "Holder", "LockPolicy", "RootLockedError", "check_output_dir", "find_root", "holds_root_lock", "lock_policy",
    "read_holder", "root_lock", "root_locks", "tables_lock", "writes_root",
]  # fmt: skip
