"""OpenCV's built-in HOG people detector (Dalal-Triggs linear SVM, shipped inside opencv-python).

``cv2.HOGDescriptor_getDefaultPeopleDetector()`` scores 64x128 windows in which an upright person
is about 96 pixels tall; smaller people are found by upscaling the image (``upscale``), larger ones
by the detector's own image pyramid. The window is looser than the person: boxes are shrunk to
the person's extent (:data:`WINDOW_TO_PERSON`). Scores are the SVM margins mapped to (0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# the person inside a detection window, as fractions of the window: x0, y0, w, h
WINDOW_TO_PERSON = (0.18, 0.08, 0.64, 0.86)
WINDOW_PERSON_HEIGHT = 128 * WINDOW_TO_PERSON[3]  # person height (px) at scale 1


@dataclass(frozen=True)
class HogConfig:
    win_stride: int = 8
    scale: float = 1.1  # pyramid step
    hit_threshold: float = 0.0  # SVM margin a window needs
    group_threshold: int = 2  # overlapping windows needed to keep a detection
    min_score: float = 0.3

    def __post_init__(self) -> None:
        if self.scale <= 1.0:
            raise ValueError(f"HogConfig.scale must be above 1, got {self.scale}")


def margin_score(weights: np.ndarray) -> np.ndarray:
    """SVM margins -> scores in (0, 1): 0.5 at margin 0, about 0.9 at margin 1.5."""
    return 1.0 / (1.0 + np.exp(-1.5 * np.asarray(weights, np.float64)))


class HogPeople:
    """HOG people detection on whole frames (see the module docstring)."""

    def __init__(self, cfg: HogConfig | None = None) -> None:
        import cv2

        self.cfg = cfg or HogConfig()
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, image: np.ndarray, upscale: float = 1.0) -> np.ndarray:
        """Person boxes (N, 5: x, y, w, h, score) in ``image`` pixels, best first."""
        import cv2

        cfg = self.cfg
        if upscale != 1.0:
            image = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
        ih, iw = image.shape[:2]
        if ih < 128 or iw < 64:
            return np.zeros((0, 5))
        gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        rects, weights = self._hog.detectMultiScale(
            gray, hitThreshold=cfg.hit_threshold, winStride=(cfg.win_stride, cfg.win_stride),
            padding=(8, 8), scale=cfg.scale, groupThreshold=cfg.group_threshold,
        )  # fmt: skip
        if len(rects) == 0:
            return np.zeros((0, 5))
        r = np.asarray(rects, np.float64).reshape(-1, 4) / upscale
        s = margin_score(np.asarray(weights, np.float64).reshape(-1))
        fx, fy, fw, fh = WINDOW_TO_PERSON
        out = np.stack([r[:, 0] + fx * r[:, 2], r[:, 1] + fy * r[:, 3], fw * r[:, 2], fh * r[:, 3], s], axis=1)
        out = out[out[:, 4] >= cfg.min_score]
        return out[np.argsort(-out[:, 4], kind="stable")]
