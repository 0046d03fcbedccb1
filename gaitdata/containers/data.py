"""The in-memory recording the container writers take: colour and depth streams plus calibration.

Anything that produces frames (the synthetic walker, a test fixture, a conversion script) builds a
:class:`RecordingData` (or a subclass carrying more, such as ground truth) and hands it to
:func:`gaitdata.containers.write`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gaitdata.records import Extrinsics, Intrinsics


@dataclass(frozen=True)
class RecordingData:
    """Colour and depth streams as a camera would deliver them.

    Dropped frames are simply absent: frame numbers then have gaps. Timestamps are milliseconds on
    one clock shared by both streams (a start offset and jitter are already applied).
    """

    name: str
    fps: float
    # colour stream (N frames)
    colour: np.ndarray  # (N, H, W, 3) uint8, RGB
    colour_ts_ms: np.ndarray  # (N,) float64, strictly increasing
    colour_frame_numbers: np.ndarray  # (N,) int64, strictly increasing (gaps = drops)
    colour_intrinsics: Intrinsics
    # depth stream (M frames) in the DEPTH camera (not registered); None for colour-only recordings
    depth: np.ndarray | None  # (M, Hd, Wd) uint16, raw units (metres = value * depth_scale)
    depth_ts_ms: np.ndarray | None  # (M,) float64
    depth_frame_numbers: np.ndarray | None  # (M,) int64
    depth_intrinsics: Intrinsics | None
    depth_to_colour: Extrinsics = field(default_factory=Extrinsics)
    depth_scale: float = 0.0010000000474974513  # float32(0.001), as RealSense stores it
    meta: dict = field(default_factory=dict)  # free-form description: seed, settings, ...

    def __post_init__(self) -> None:
        n = len(self.colour)
        if self.colour.ndim != 4 or self.colour.shape[-1] != 3 or self.colour.dtype != np.uint8:
            raise ValueError(f"colour must be (N, H, W, 3) uint8, got {self.colour.shape} {self.colour.dtype}")
        for name in ("colour_ts_ms", "colour_frame_numbers"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: expected {n} entries, got {len(getattr(self, name))}")
        if self.depth is not None:
            m = len(self.depth)
            if self.depth.ndim != 3 or self.depth.dtype != np.uint16:
                raise ValueError(f"depth must be (M, H, W) uint16, got {self.depth.shape} {self.depth.dtype}")
            if self.depth_ts_ms is None or self.depth_frame_numbers is None or self.depth_intrinsics is None:
                raise ValueError("depth needs depth_ts_ms, depth_frame_numbers and depth_intrinsics")
            if len(self.depth_ts_ms) != m or len(self.depth_frame_numbers) != m:
                raise ValueError("depth timestamps/frame numbers must have one entry per depth frame")

    @property
    def has_depth(self) -> bool:
        return self.depth is not None
