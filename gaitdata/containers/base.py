"""Common reader interface of every container kind.

A reader first builds an index of both streams (frame numbers and timestamps, no pixels), so the
extractor can pair frames and decide what to write before decoding anything; then
:meth:`Recording.frames` decodes just the wanted positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gaitdata.records import Extrinsics, Intrinsics


@dataclass(frozen=True)
class FrameIndex:
    """Frame numbers and timestamps (ms) of one stream, in stream order."""

    frame_numbers: np.ndarray
    ts_ms: np.ndarray

    def __post_init__(self) -> None:
        fn = np.asarray(self.frame_numbers, dtype=np.int64)
        ts = np.asarray(self.ts_ms, dtype=np.float64)
        if fn.shape != ts.shape or fn.ndim != 1:
            raise ValueError(f"frame index: {fn.shape} frame numbers vs {ts.shape} timestamps")
        object.__setattr__(self, "frame_numbers", fn)
        object.__setattr__(self, "ts_ms", ts)

    def __len__(self) -> int:
        return len(self.ts_ms)


@dataclass(frozen=True)
class RecordingInfo:
    """What a container says about itself (no pixels)."""

    kind: str
    path: Path
    colour: FrameIndex
    colour_size: tuple[int, int]  # (width, height) in the container
    fps: float
    colour_intrinsics: Intrinsics | None = None
    depth: FrameIndex | None = None
    depth_path: Path | None = None
    depth_intrinsics: Intrinsics | None = None
    depth_to_colour: Extrinsics | None = None
    depth_scale: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. "no depth stream: colour only"
    n_unindexed: int = 0  # colour frames the container promises but that cannot be indexed (damaged tail)

    def __post_init__(self) -> None:
        if self.depth is not None and self.depth_scale is not None:
            from gaitdata.errors import GaitdataError
            from gaitdata.records import check_depth_scale

            try:
                check_depth_scale(self.depth_scale)
            except ValueError as exc:
                raise GaitdataError(f"{self.path}: {exc}; the raw depth cannot be converted to metres") from None

    @property
    def has_depth(self) -> bool:
        return self.depth is not None and len(self.depth) > 0


# one decoded frame: ("colour" | "depth", position in its stream, pixels or None when it cannot be decoded)
Item = tuple[str, int, "np.ndarray | None"]


class Recording:
    """Base class of the readers. Subclasses set ``info`` and implement :meth:`frames`."""

    info: RecordingInfo
    reader_name: str = "python"
    depth_registered: bool = False  # True when frames() yields depth already registered to colour
    read_notes: list[str]  # damaged data met while reading frames (a fresh list per instance)

    def __new__(cls, *args: object, **kwargs: object) -> Recording:
        self = super().__new__(cls)
        self.read_notes = []
        return self

    def frames(self, colour_positions: Sequence[int], depth_positions: Sequence[int]) -> Iterator[Item]:
        """Decode the wanted positions; yields items roughly in time order (both streams interleaved).

        Colour pixels are RGB uint8 (H, W, 3); depth raw uint16 (Hd, Wd) in the depth camera (or
        registered to colour when ``depth_registered``). A position that cannot be decoded yields None.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release files and devices (idempotent)."""

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_monotone(index: FrameIndex, stream: str, path: Path) -> None:
    """Timestamps must be finite and strictly increasing (one clock, one frame per instant)."""
    from gaitdata.errors import GaitdataError

    ts = index.ts_ms
    bad_values = np.flatnonzero(~np.isfinite(ts))
    if len(bad_values):
        p = int(bad_values[0])
        raise GaitdataError(
            f"{path}: {stream} timestamp of frame position {p} is {ts[p]} ({len(bad_values)} non-finite in all); "
            f"fix the timestamp CSV or re-record"
        )
    if len(ts) > 1 and np.any(np.diff(ts) <= 0):
        bad = int(np.argmax(np.diff(ts) <= 0)) + 1
        raise GaitdataError(
            f"{path}: {stream} timestamps are not strictly increasing (frame position {bad}: "
            f"{ts[bad - 1]:.3f} ms then {ts[bad]:.3f} ms); fix the timestamp CSV or re-record"
        )
