"""Launch the FiftyOne App on 127.0.0.1 and shut it down cleanly.

FiftyOne serves the App from a separate server process. A plain SIGTERM to the launching process
can leave that server running, so :func:`serve` installs handlers for SIGINT, SIGTERM and SIGHUP
that close the session (which stops the server) before the process exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gaitdata.errors import GaitdataError

DEFAULT_PORT = 5151
ADDRESS = "127.0.0.1"


def port_free(port: int, address: str = ADDRESS) -> bool:
    """True when a server could listen on ``port`` (connections in TIME_WAIT do not count, as for the App)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def choose_port(port: int | None, address: str = ADDRESS) -> tuple[int, str | None]:
    """``(port, note)``: the requested port when free, else a free one and a note saying so."""
    want = DEFAULT_PORT if port is None else int(port)
    if not 0 < want < 65536:
        raise GaitdataError(f"--port {want} is not a TCP port (1-65535)")
    if port_free(want, address):
        return want, None
    for candidate in range(want + 1, min(want + 50, 65536)):
        if port_free(candidate, address):
            return candidate, f"port {want} is in use; the App uses port {candidate} instead"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        free = int(s.getsockname()[1])
    return free, f"port {want} is in use; the App uses port {free} instead"


def wait_for_http(url: str, timeout: float = 60.0) -> bool:
    """Poll ``url`` until it answers HTTP 200 (the App's server is up)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return False


@dataclass(frozen=True)
class AppInfo:
    """A served App. ``stop`` (only with ``wait=False``) closes it; True when the port is free again."""

    url: str
    port: int
    dataset: str
    notes: tuple[str, ...]
    stop: Callable[[], bool] | None = field(default=None, compare=False, repr=False)


def launch(
    root: str | os.PathLike,
    labels: Sequence[str] | None = None,
    split: str | None = None,
    port: int | None = None,
    db_dir: str | os.PathLike | None = None,
    video_level: bool = False,
    progress: bool = True,
    wait: bool = True,
    on_ready: Callable[[AppInfo], None] | None = None,
    view: str | None = None,
) -> AppInfo:
    """Build/update the dataset of ``root`` and serve the App on 127.0.0.1 until interrupted.

    ``port``: default 5151; a busy port is replaced by a free one (``AppInfo.notes`` says which).
    ``wait=False`` returns right after the App is up and leaves the session open in this process
    (it is closed at exit). ``on_ready`` is called with the :class:`AppInfo` once the App answers.
    """
    from gaitdata.browse.build import build_dataset

    ds = build_dataset(root, labels=labels, split=split, db_dir=db_dir, video_level=video_level, progress=progress)
    return serve(ds, port=port, progress=progress, wait=wait, on_ready=on_ready, view=view)


def serve(
    ds: Any,
    port: int | None = None,
    progress: bool = True,
    wait: bool = True,
    on_ready: Callable[[AppInfo], None] | None = None,
    view: str | None = None,
) -> AppInfo:
    """Serve the App for the FiftyOne dataset ``ds`` (see :func:`launch`)."""
    import fiftyone as fo

    chosen, note = choose_port(port)
    notes = (note,) if note else ()
    if progress and note:
        print(f"browse: {note}", flush=True)
    if view and view not in ds.list_saved_views():
        raise GaitdataError(f"no saved view {view!r}; the dataset has: {', '.join(ds.list_saved_views()) or 'none'}")
    shown = ds.load_saved_view(view) if view else None
    url = f"http://{ADDRESS}:{chosen}/datasets/{ds.name}" + (f"?view={view}" if view else "")
    info = AppInfo(url=url, port=chosen, dataset=ds.name, notes=notes)
    if not wait:
        session = fo.launch_app(ds, view=shown, address=ADDRESS, port=chosen, remote=True, auto=False)
        procs = _server_processes()
        if not wait_for_http(f"http://{ADDRESS}:{chosen}/") or not _serves(procs, chosen):
            shutdown(session, chosen, procs)
            raise GaitdataError(_not_ours(url, chosen))
        info = replace(info, stop=lambda: shutdown(session, chosen, procs))
        if on_ready is not None:
            on_ready(info)
        return info
    with signals_to_event() as stop:  # installed before the App starts: no window for an unhandled signal
        session = fo.launch_app(ds, view=shown, address=ADDRESS, port=chosen, remote=True, auto=False)
        procs = _server_processes()  # remembered now: once their wrapper exits they are no longer our children
        try:
            if not stop.is_set() and not (wait_for_http(f"http://{ADDRESS}:{chosen}/") and _serves(procs, chosen)):
                raise GaitdataError(_not_ours(url, chosen))
            if on_ready is not None and not stop.is_set():
                on_ready(info)
            while not stop.wait(0.5):
                pass
        finally:
            if threading.current_thread() is threading.main_thread():
                for s in _HANDLED:
                    signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the shutdown
            if not shutdown(session, chosen, procs):
                print(f"browse: port {chosen} is still in use after shutdown", flush=True)
    return info


_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signals_to_event() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM/SIGHUP set the yielded event instead of killing the process; handlers restored after."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield stop
        return
    previous = {s: signal.getsignal(s) for s in _HANDLED}

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    for s in _HANDLED:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(s, h)


def _not_ours(url: str, port: int) -> str:
    return (f"the FiftyOne App did not start on {url} (another program took port {port}, or the server failed; "
            f"see the messages above); retry, or choose another --port")  # fmt: skip


def _serves(procs: Sequence[Any], port: int, timeout: float = 30.0) -> bool:
    """True when one of ``procs`` (this process's App server) listens on ``port``.

    FiftyOne attaches to whatever App already answers on a port; this makes sure it is ours.
    """
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                for c in proc.net_connections(kind="tcp"):
                    if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
                        return True
        if time.monotonic() > deadline or not any(p.is_running() for p in procs):
            return False
        time.sleep(0.25)


def _server_processes() -> list[Any]:
    """This process's FiftyOne App server wrappers and their children (never anyone else's)."""
    import psutil

    out = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = child.cmdline()
            if "--51-service" in cmd and "server" in cmd:
                out.append(child)
                out.extend(child.children(recursive=True))
    return out


def shutdown(session: Any, port: int, procs: Sequence[Any] = (), timeout: float = 5.0) -> bool:
    """Stop the App server and close ``session``; True when ``port`` is free again.

    ``procs``: the server processes seen at launch (psutil handles, safe against pid reuse). They
    are terminated first (then killed if need be): closing the session alone waits for a server
    that may linger with open browser connections, and a server whose wrapper died is orphaned.
    """
    import psutil

    leftovers = [p for p in dict.fromkeys([*procs, *_server_processes()]) if p.is_running()]
    for proc in reversed(leftovers):  # children first
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    # the server shuts down gracefully, waiting on open event streams: give it a moment, then kill
    _gone, alive = psutil.wait_procs(leftovers, timeout=min(timeout, 2.0))
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    closer = threading.Thread(target=session.close, daemon=True)
    closer.start()
    closer.join(timeout)
    deadline = time.monotonic() + 10
    while not port_free(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    return port_free(port)
