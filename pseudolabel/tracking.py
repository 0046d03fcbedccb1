"""Person-box tracking across frames: keeps ids, bridges frames a detector missed.

:class:`BoxTracker` follows boxes ``(x, y, w, h)`` with a constant-velocity model of the box
centre and a smoothed size (an alpha-beta filter, the steady-state form of a Kalman filter for
this model). Each frame's detections are matched greedily to the tracks' predicted boxes by IoU,
or by centre distance relative to the box height for small, fast people whose boxes no longer
overlap. A new detection starts a tentative track; a track seen ``min_hits`` times is confirmed;
a confirmed track that misses a frame keeps being proposed at its predicted place for up to
``max_gap`` frames (its score decays; not where a detection already covers that place), then ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gaitdata.geometry import intersection_matrix, iou_matrix, match_greedy


@dataclass(frozen=True)
class TrackerConfig:
    match_iou: float = 0.25  # IoU with the predicted box that allows a match
    match_centre_dist: float = 0.6  # ... or centre distance / box height below this
    min_hits: int = 3  # detections before a track is confirmed (only confirmed tracks are bridged)
    max_gap: int = 5  # frames a confirmed track is bridged without a detection
    alpha: float = 0.6  # weight of the detection in the position update
    beta: float = 0.3  # weight of the innovation in the velocity update
    size_alpha: float = 0.5  # weight of the detection in the size update
    gap_decay: float = 0.7  # score factor per bridged frame

    def __post_init__(self) -> None:
        for name in ("match_iou", "alpha", "beta", "size_alpha", "gap_decay"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"TrackerConfig.{name} must lie in [0, 1], got {v}")
        if self.min_hits < 1 or self.max_gap < 0:
            raise ValueError(f"TrackerConfig: min_hits >= 1 and max_gap >= 0 needed, got {self.min_hits}, {self.max_gap}")


@dataclass
class _Track:
    track_id: int
    centre: np.ndarray  # (2,)
    size: np.ndarray  # (2,) w, h
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    score: float = 0.0
    hits: int = 1
    misses: int = 0
    last_frame: int = 0

    def box(self) -> np.ndarray:
        return np.array([*(self.centre - self.size / 2), *self.size])

    def predicted(self, frame: int) -> np.ndarray:
        c = self.centre + self.velocity * (frame - self.last_frame)
        return np.array([*(c - self.size / 2), *self.size])


def _covered(box: np.ndarray, others: np.ndarray, share: float = 0.6) -> bool:
    """Whether at least ``share`` of ``box`` lies inside one of ``others`` (x, y, w, h)."""
    inter = intersection_matrix(box, others)[0]
    return bool((inter >= share * max(box[2] * box[3], 1e-9)).any())


def _centre(box: np.ndarray) -> np.ndarray:
    return np.asarray(box[:2], np.float64) + np.asarray(box[2:4], np.float64) / 2


class BoxTracker:
    """Tracks person boxes over one recording (call :meth:`reset` between recordings)."""

    def __init__(self, cfg: TrackerConfig | None = None) -> None:
        self.cfg = cfg or TrackerConfig()
        self.reset()

    def reset(self) -> None:
        self._tracks: list[_Track] = []
        self._next_id = 0

    def update(self, frame: int, detections: np.ndarray) -> np.ndarray:
        """Feed one frame's detections (N, 5: x, y, w, h, score); frames must come in increasing order.

        Returns (M, 6) rows ``x, y, w, h, score, track_id`` for this frame: every detection (its
        own box; a tentative track's too, so a person is proposed from the first frame seen) and
        the confirmed tracks bridged over a missed detection (predicted box, decayed score).
        """
        cfg = self.cfg
        det = np.asarray(detections, np.float64).reshape(-1, 5)
        alive = [t for t in self._tracks if frame - t.last_frame <= cfg.max_gap + 1 and t.last_frame < frame]
        pred = np.array([t.predicted(frame) for t in alive]).reshape(-1, 4)
        pairs: list[tuple[int, int]] = []
        if len(det) and len(alive):
            iou = iou_matrix(det[:, :4], pred)
            cd = np.linalg.norm(
                (det[:, None, :2] + det[:, None, 2:4] / 2) - (pred[None, :, :2] + pred[None, :, 2:] / 2), axis=-1
            )
            nd = cd / np.maximum(np.maximum(det[:, None, 3], pred[None, :, 3]), 1.0)
            ratio = np.minimum(det[:, None, 3], pred[None, :, 3]) / np.maximum(np.maximum(det[:, None, 3], pred[None, :, 3]), 1.0)
            allowed = ((iou >= cfg.match_iou) | (nd <= cfg.match_centre_dist)) & (ratio >= 0.5)
            pairs = match_greedy(iou - nd, allowed)
        det_track = {i: alive[j] for i, j in pairs}
        used = {j for _, j in pairs}
        out: list[tuple[float, ...]] = []
        for i, d in enumerate(det):
            t = det_track.get(i)
            if t is None:
                t = _Track(self._next_id, _centre(d), d[2:4].copy(), score=float(d[4]), last_frame=frame)
                self._next_id += 1
                self._tracks.append(t)
            else:
                dt = max(frame - t.last_frame, 1)
                prior = t.centre + t.velocity * dt
                innov = _centre(d) - prior
                t.centre = prior + cfg.alpha * innov
                t.velocity = t.velocity + cfg.beta * innov / dt
                t.size = (1 - cfg.size_alpha) * t.size + cfg.size_alpha * d[2:4]
                t.score = float(d[4])
                t.hits += 1
                t.misses = 0
                t.last_frame = frame
            out.append((*d[:5], float(t.track_id)))
        for j, t in enumerate(alive):
            if j in used or t.hits < cfg.min_hits:
                continue
            t.misses = frame - t.last_frame
            if t.misses > cfg.max_gap:
                continue
            box = pred[j]
            if len(det) and _covered(box, det[:, :4]):
                continue  # a detection already shows that place (the person merged into another's box)
            out.append((*box, t.score * cfg.gap_decay**t.misses, float(t.track_id)))
        self._tracks = [t for t in self._tracks if frame - t.last_frame <= cfg.max_gap]
        return np.asarray(out, np.float64).reshape(-1, 6)

    def single(self, frame: int, max_age: int) -> np.ndarray | None:
        """The predicted row (1, 6) of the one person tracked, or None.

        Only when exactly one track exists, it is confirmed, its last update was a detection and
        that was at most ``max_age`` frames before ``frame``. The tracker is not changed: the next
        :meth:`update` goes on from that detection.
        """
        if len(self._tracks) != 1:
            return None
        t = self._tracks[0]
        if t.hits < self.cfg.min_hits or t.misses or not 0 < frame - t.last_frame <= max_age:
            return None
        return np.array([[*t.predicted(frame), t.score, float(t.track_id)]])
