"""People found by BlazePose's own person detector on whole frames (mediapipe, static mode).

After each person found, that person's box is blanked and the frame searched again, up to
``max_persons`` people. The ``detector`` box source, and the still-image part of the default
``people`` proposer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot


class DetectorProposer:
    """People found by BlazePose (static mode) on the full frame, blanking each one found (see above)."""

    name = "detector"

    def __init__(self, max_persons: int = 2, min_score: float = 0.3, blank_pad: float = 0.05) -> None:
        self.max_persons = int(max_persons)
        self.min_score = float(min_score)
        self.blank_pad = float(blank_pad)
        self._teacher: Any = None

    def _model(self) -> Any:
        if self._teacher is None:
            from pseudolabel.teachers.mediapipe import MediaPipeTeacher

            self._teacher = MediaPipeTeacher(mode="static")
        return self._teacher

    def begin(self, root: DatasetRoot, video: pd.Series, frames: pd.DataFrame) -> None:
        self._model()

    def propose(self, frame_index: int, image: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
        img = np.array(image, copy=True)
        h, w = img.shape[:2]
        fill = np.median(img.reshape(-1, 3), axis=0).astype(np.uint8)
        out = []
        for _ in range(self.max_persons):
            poses = self._model().predict_one(img)
            if not poses or poses[0].score < self.min_score:
                break
            x, y, bw, bh = poses[0].bbox
            out.append((x, y, bw, bh, poses[0].score))
            p = self.blank_pad * bh
            x0, y0 = int(max(x - p, 0)), int(max(y - p, 0))
            x1, y1 = int(min(x + bw + p, w)), int(min(y + bh + p, h))
            img[y0:y1, x0:x1] = fill
        return np.asarray(out, dtype=np.float64).reshape(-1, 5)

    def describe(self) -> dict:
        return {"proposer": self.name, "max_persons": self.max_persons, "min_score": self.min_score, "model": "mediapipe static"}
