"""Native libraries' log lines (mediapipe, absl, TF Lite, glog), hidden unless asked for.

mediapipe 0.10.14 writes ``INFO: Created TensorFlow Lite XNNPACK delegate``, ``WARNING: All log
messages before absl::InitializeLog() is called are written to STDERR`` and ``W0000 ...
inference_feedback_manager.cc:114] ...`` straight to file descriptor 2 from its C++ threads when
a graph starts. ``GLOG_minloglevel``, ``TF_CPP_MIN_LOG_LEVEL`` and absl-py's logging settings do
not reach that code (absl's C++ log is never initialised by mediapipe's Python API), so
:func:`filtered_native_logs` catches descriptor 2 around such a call and passes on every line
except native INFO/WARNING lines: errors, Python output and anything else still come through.

Set ``GAITDATA_NATIVE_LOGS=1`` (the CLI's ``--verbose``) to see everything unfiltered.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

NATIVE_LOGS_ENV = "GAITDATA_NATIVE_LOGS"

# absl/glog "W0123 12:34:56.789012  4242 file.cc:114] text" (before absl's log is initialised the
# seconds field holds the epoch time; I and W only: E and F pass), TF Lite's
# "INFO: ..." and absl's notice that its log was never initialised.
_NATIVE_NOISE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]\s]+:\d+\] .*"
    rb"|INFO: .*"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)\r?$"
)


class _Capture:
    """Descriptor 2 is one per process: overlapping captures (nested, or from several threads) share
    one redirection, which ends when the last of them does."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: int | None = None
        self.tmp: IO[bytes] | None = None

    def start(self) -> bool:
        with self.lock:
            if self.depth == 0:
                try:
                    saved = os.dup(2)
                except OSError:
                    return False
                tmp = tempfile.TemporaryFile()  # noqa: SIM115  (closed by stop())
                _flush_stderr()
                os.dup2(tmp.fileno(), 2)
                self.saved, self.tmp = saved, tmp
            self.depth += 1
            return True

    def stop(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth or self.saved is None or self.tmp is None:
                return
            _flush_stderr()
            os.dup2(self.saved, 2)
            os.close(self.saved)
            tmp, self.saved, self.tmp = self.tmp, None, None
        with tmp:
            tmp.seek(0)
            rest = strip_native_noise(tmp.read())
        if rest:
            os.write(2, rest)


_CAPTURE = _Capture()


def native_logs_shown() -> bool:
    """True when the user asked to see native libraries' logs (``GAITDATA_NATIVE_LOGS=1``)."""
    return os.environ.get(NATIVE_LOGS_ENV, "").strip().lower() not in ("", "0", "false", "no")


@contextmanager
def native_logs(show: bool) -> Iterator[None]:
    """Within this block native logs are shown (``show``, what ``--verbose`` does) or hidden, here and
    in the processes started meanwhile; the environment is restored afterwards."""
    keys = (NATIVE_LOGS_ENV, "GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL")
    before = {k: os.environ.get(k) for k in keys}
    if show:
        os.environ[NATIVE_LOGS_ENV] = "1"
    else:
        os.environ.pop(NATIVE_LOGS_ENV, None)
        quiet_native_env()
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def quiet_native_env() -> None:
    """Set the environment switches native libraries read at start-up (a user's own values win)."""
    if native_logs_shown():
        return
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def strip_native_noise(data: bytes) -> bytes:
    """``data`` without native INFO/WARNING log lines (every other line kept, in order)."""
    lines = data.splitlines(keepends=True)
    return b"".join(line for line in lines if not _NATIVE_NOISE.match(line.rstrip(b"\n")))


class NativeLogFilter:
    """Native INFO/WARNING lines written to descriptor 2 are dropped from :meth:`start` (or entering
    the ``with`` block) until :meth:`stop` (or leaving it); see :func:`filtered_native_logs`."""

    def __init__(self) -> None:
        self._active = False

    def start(self) -> NativeLogFilter:
        if not self._active and not native_logs_shown():
            self._active = _CAPTURE.start()
        return self

    def stop(self) -> None:
        if self._active:
            self._active = False
            _CAPTURE.stop()

    def __enter__(self) -> NativeLogFilter:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def filtered_native_logs() -> NativeLogFilter:
    """Within this block (or between ``start()`` and ``stop()``), native INFO/WARNING lines written to
    descriptor 2 are dropped.

    What else is written to stderr meanwhile (by any thread) comes out when the capture ends.
    Overlapping captures share one; nothing is caught when native logs are asked for or
    descriptor 2 cannot be duplicated.
    """
    return NativeLogFilter()


def _flush_stderr() -> None:
    with suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()


__all__ = ["NATIVE_LOGS_ENV", "NativeLogFilter", "filtered_native_logs", "native_logs", "native_logs_shown", "quiet_native_env",
           "strip_native_noise"]  # fmt: skip
