"""The in-memory synthetic recording: what the renderer produces and the container writers consume."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gaitdata.containers.data import RecordingData


@dataclass(frozen=True)
class SynthRecording(RecordingData):
    """A :class:`~gaitdata.containers.data.RecordingData` plus ground truth, one entry per COLOUR frame."""

    keypoints_2d: np.ndarray | None = None  # (N, 17, 3): x, y (colour pixels, COCO convention), v (0/1/2)
    joints_3d: np.ndarray | None = None  # (N, 17, 3) metres, colour camera coordinates
    depth_registered: np.ndarray | None = None  # (N, H, W) uint16: noiseless depth rendered in the colour camera
    subject: str = "s00"
