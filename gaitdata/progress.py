"""One progress display for every long step, and the quiet switch of the command line.

- On a terminal (or in Jupyter) a bar is animated with rich on stderr; bars opened while another
  is shown become rows of the same display.
- When stderr is not a terminal (a log file, a pipe, CI), nothing is animated: a plain line is
  written when another ~10% is done (at most one a second) or ~10 s have passed since the last
  line, and one at the end, e.g. ``label mediapipe: 31/155 frames (20%) in 0:02, 18.2 frames/s,
  ~0:07 left``. No carriage returns, no escape codes. A transient bar (a short sub-step)
  that finished without printing an intermediate line prints nothing.
- Inside :func:`quiet_output` (the CLI's ``-q``) bars are off and :func:`console` prints nothing.

>>> for frame in progress_bar(range(3), desc="demo", unit="frame", enabled=False):
...     pass
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any, Generic, TypeVar

T = TypeVar("T")

PLAIN_STEP = 0.10  # a plain line each time another tenth is done ...
PLAIN_MIN_INTERVAL_S = 1.0  # ... but not more often than this ...
PLAIN_HEARTBEAT_S = 10.0  # ... and at least this often while work is reported

_QUIET: ContextVar[bool] = ContextVar("gaitdata_quiet_output", default=False)
_LIVE: ContextVar[Any] = ContextVar("gaitdata_live_progress", default=None)  # the rich Progress shown now


@contextmanager
def quiet_output(quiet: bool = True) -> Iterator[None]:
    """Within this block progress bars are off and :func:`console` prints nothing (errors still do)."""
    token = _QUIET.set(quiet)
    try:
        yield
    finally:
        _QUIET.reset(token)


def is_quiet() -> bool:
    return _QUIET.get()


def console(stderr: bool = False, **kwargs: Any) -> Any:
    """A rich Console for summaries and notes, silent under :func:`quiet_output`.

    On a terminal it takes the terminal's width; elsewhere ``COLUMNS`` or 80 columns, with no
    escape codes (rich's defaults).
    """
    from rich.console import Console

    return Console(stderr=stderr, quiet=is_quiet(), **kwargs)


def warnings_console() -> Any:
    """A rich Console on stderr for warnings and errors: it prints even under :func:`quiet_output`."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def say(message: str, err: bool = False) -> None:
    """One plain line on stdout (or stderr), unless output is quiet."""
    if not is_quiet():
        print(message, file=sys.stderr if err else sys.stdout, flush=True)


def live_display_possible(stream: IO[str] | None = None) -> bool:
    """Whether a bar may be animated: stderr (or ``stream``) is a capable terminal, or Jupyter runs us."""
    if stream is not None:
        return bool(getattr(stream, "isatty", lambda: False)())
    from rich.console import Console

    c = Console(stderr=True)
    return (c.is_terminal and not c.is_dumb_terminal) or c.is_jupyter


def _plural(unit: str, n: float) -> str:
    if n == 1 or not unit or unit.endswith("s"):
        return unit
    return unit + ("es" if unit.endswith(("x", "z", "ch", "sh")) else "s")


def _clock_text(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar(Generic[T]):
    """A progress bar over ``iterable`` (or counted with :meth:`update`); see the module docstring.

    The tqdm calls in common use work: iterate it, ``update(n)``, ``set_postfix(loss=...)``,
    ``close()``; it is also a context manager. ``stream`` (tests) replaces stderr and decides the
    mode by its ``isatty()``; ``clock`` replaces :func:`time.monotonic`.
    """

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "item",
        enabled: bool = True,
        transient: bool = False,
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = 0
        self.status = ""
        self.transient = transient
        self._stream = stream
        self._clock = clock
        self._t0 = clock()
        self._closed = False
        self._last_line_t = self._t0
        self._last_step = 0
        self._lines = 0
        self._live: Any = None
        self._task: Any = None
        self._owner = False
        if not enabled or is_quiet():
            self.mode = "off"
        elif live_display_possible(stream):
            self.mode = "live"
            self._start_live()
        else:
            self.mode = "plain"

    # ---- the tqdm-like surface ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("this progress bar was made without an iterable; call update(n)")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> ProgressBar[T]:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.n += n
        if self.mode == "live":
            self._live.update(self._task, completed=self.n)
        elif self.mode == "plain":
            self._maybe_line()

    def set_status(self, text: str) -> None:
        """A short note shown after the counts (the item in work, a loss, ...)."""
        self.status = text
        if self.mode == "live":
            self._live.update(self._task, status=text)
        elif self.mode == "plain":
            self._maybe_line()  # a long item still gets its line every ~10 s

    def set_postfix(self, **values: Any) -> None:
        self.set_status(", ".join(f"{k}={v}" for k, v in values.items()))

    def set_description(self, desc: str) -> None:
        self.desc = desc
        if self.mode == "live":
            self._live.update(self._task, description=desc)

    def note(self, text: str) -> None:
        """One line of its own: above an animated bar, between plain lines; nothing when the bar is off."""
        if self.mode == "live":
            self._live.console.print(text, highlight=False, soft_wrap=True)
        elif self.mode == "plain":
            self._write(text)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.mode == "live":
            self._close_live()
        elif self.mode == "plain" and (self._lines or not self.transient):
            self._write(self._final_line())

    # ---- plain lines -------------------------------------------------------------------------------
    def _maybe_line(self) -> None:
        now = self._clock()
        since = now - self._last_line_t
        step = math.floor(self.n / self.total / PLAIN_STEP + 1e-9) if self.total else 0
        if (step > self._last_step and since >= PLAIN_MIN_INTERVAL_S) or since >= PLAIN_HEARTBEAT_S:
            if self.total and self.n >= self.total:
                return  # the end has its own line
            self._last_step = step
            self._last_line_t = now
            self._lines += 1
            self._write(self._line(now - self._t0))

    def _counts(self) -> str:
        if self.total:
            pct = 100.0 * self.n / self.total
            return f"{self.n}/{self.total} {_plural(self.unit, self.total)} ({pct:.0f}%)"
        return f"{self.n} {_plural(self.unit, self.n)}"

    def _rate(self, elapsed: float) -> str:
        rate = self.n / elapsed if elapsed > 0 else 0.0
        return f"{rate:.1f} {_plural(self.unit, 2)}/s" if rate >= 1 or rate == 0 else f"{1 / rate:.1f} s/{self.unit}"

    def _line(self, elapsed: float) -> str:
        parts = [f"{self._counts()} in {_clock_text(elapsed)}", self._rate(elapsed)]
        if self.total and self.n:
            parts.append(f"~{_clock_text(elapsed * (self.total - self.n) / self.n)} left")
        if self.status:
            parts.append(self.status)
        return f"{self.desc}: " + ", ".join(parts) if self.desc else ", ".join(parts)

    def _final_line(self) -> str:
        elapsed = self._clock() - self._t0
        head = f"{self.desc}: " if self.desc else ""
        tail = f", {self.status}" if self.status else ""
        if self.total is not None and self.n < self.total:
            return f"{head}stopped at {self._counts()} after {elapsed:.1f} s{tail}"
        return f"{head}{self.n} {_plural(self.unit, self.n)} in {elapsed:.1f} s ({self._rate(elapsed)}){tail}"

    def _write(self, line: str) -> None:
        stream = self._stream or sys.stderr
        stream.write(line.replace("\r", " ").replace("\n", " ") + "\n")
        stream.flush()

    # ---- the animated display ----------------------------------------------------------------------
    def _start_live(self) -> None:
        live = _LIVE.get()
        if live is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            con = Console(file=self._stream) if self._stream is not None else Console(stderr=True)
            live = Progress(
                TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"), console=con, transient=self.transient,
            )  # fmt: skip
            live.start()
            self._owner = True
            self._token = _LIVE.set(live)
        self._live = live
        self._task = live.add_task(self.desc, total=self.total, unit=_plural(self.unit, 2), status="")

    def _close_live(self) -> None:
        if self.transient and not self._owner:
            self._live.remove_task(self._task)
        if self._owner:
            self._live.stop()
            try:
                _LIVE.reset(self._token)
            except ValueError:  # closed in another context than it was opened in
                _LIVE.set(None)


def progress_bar(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "item",
    enabled: bool = True,
    transient: bool = False,
) -> ProgressBar[T]:
    """A :class:`ProgressBar` (animated on a terminal, plain lines elsewhere, off when quiet or not enabled)."""
    return ProgressBar(iterable, total=total, desc=desc, unit=unit, enabled=enabled, transient=transient)


__all__ = ["ProgressBar", "console", "is_quiet", "live_display_possible", "progress_bar", "quiet_output", "say",
           "warnings_console"]  # fmt: skip
