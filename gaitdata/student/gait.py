"""Gait measures from 2-D keypoint tracks: joint-angle curves and gait-cycle events.

- :func:`gait_angles`: hip and knee flexion (180 deg minus the shoulder-hip-knee / hip-knee-ankle
  angle) and the shank's inclination from the image vertical (COCO-17 has no foot points for a true
  ankle angle), left and right, per frame.
- :func:`heel_strikes`: heel-strike events from the ankle trajectories of a side view, by the
  coordinate-based method of Zeni et al. (2008): the foot strikes the ground when it is furthest
  ahead of the pelvis in the walking direction, i.e. at the (prominent) maxima of
  ``facing * (ankle_x - pelvis_x)``, refined to sub-frame time by a parabola through the peak.
- :func:`cycle_summary`: step times (alternating feet), stride times (same foot) and cadence.
- :func:`match_events`: events of an estimate matched one-to-one to reference events within a
  tolerance; timing error, misses and extras.

Front views (walking towards the camera) have no usable fore-aft image axis: their events are
not computed, and their angle curves are nearly constant, so a correlation on them is noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gaitdata.schema import COCO17, KeypointSchema

ANGLE_NAMES = ("hip", "knee", "shank")
MIN_ANGLE_STD = 5.0  # degrees: a reference curve flatter than this makes a correlation meaningless
SIDE_VIEWS = ("side", "sagittal", "lateral", "left", "right")


def is_side(view: str) -> bool:
    """Whether a recording's ``view`` names a side (sagittal) view, where gait curves and events live."""
    return view.lower() in SIDE_VIEWS


def gait_angles(kp: np.ndarray, schema: KeypointSchema = COCO17) -> dict[str, np.ndarray]:
    """(T, K, 2+) -> per angle name (T,) degrees: hip/knee flexion and shank inclination, left/right."""
    from gaitdata.metrics import joint_angle

    ix = schema.index
    out = {}
    for side in ("left", "right"):
        sh, hip, knee, ank = (kp[:, ix(f"{side}_{n}"), :2] for n in ("shoulder", "hip", "knee", "ankle"))
        out[f"{side}_hip"] = 180.0 - joint_angle(sh, hip, knee)
        out[f"{side}_knee"] = 180.0 - joint_angle(hip, knee, ank)
        out[f"{side}_shank"] = joint_angle(knee + np.array([0.0, 1.0]), knee, ank)  # vs image vertical (down)
    return out


def heel_strikes(
    frames: np.ndarray, ankle_x: np.ndarray, pelvis_x: np.ndarray, facing: int, fps: float,
    min_stride_s: float = 0.5, prominence: float = 0.3, smooth_s: float = 0.033,
) -> np.ndarray:  # fmt: skip
    """Heel-strike times (in frames, sub-frame) of one foot: maxima of ``facing * (ankle_x - pelvis_x)``.

    The signal is smoothed lightly (Gaussian, ``smooth_s`` seconds) so that a pose model's jitter
    makes no events; a maximum counts when it stands ``prominence`` of the signal's range (5th to
    95th percentile) above the lowest point on each side within one stride, and two strikes of a
    foot are at least ``min_stride_s`` apart (the larger one is kept). Frames may have gaps.
    """
    f = np.asarray(frames, np.float64)
    d = facing * (np.asarray(ankle_x, np.float64) - np.asarray(pelvis_x, np.float64))
    ok = np.isfinite(d)
    f, d = f[ok], d[ok]
    if len(d) < 5 or facing == 0:
        return np.zeros(0)
    sigma = smooth_s * fps
    if sigma > 0.3:
        w = np.exp(-0.5 * ((f[:, None] - f[None, :]) / sigma) ** 2)
        d = (w @ d) / w.sum(1)
    span = float(np.percentile(d, 95) - np.percentile(d, 5))
    if span <= 0:
        return np.zeros(0)
    reach = min_stride_s * fps
    cands: list[tuple[float, float]] = []
    for i in range(1, len(d) - 1):
        if not (d[i] >= d[i - 1] and d[i] > d[i + 1]):
            continue
        left = d[(f >= f[i] - reach) & (f < f[i])]
        right = d[(f > f[i]) & (f <= f[i] + reach)]
        if not len(left) or not len(right) or d[i] - max(left.min(), right.min()) < prominence * span:
            continue
        t = f[i]
        if f[i + 1] - f[i] == 1 and f[i] - f[i - 1] == 1:
            a, b, c = d[i - 1], d[i], d[i + 1]
            den = a - 2 * b + c
            if den < 0:
                t += float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
        cands.append((t, d[i]))
    out: list[tuple[float, float]] = []
    for t, v in cands:
        if out and t - out[-1][0] < reach:
            if v > out[-1][1]:
                out[-1] = (t, v)
            continue
        out.append((t, v))
    return np.array([t for t, _ in out])


@dataclass(frozen=True)
class GaitEvents:
    left: np.ndarray  # heel-strike times of the left foot, frames
    right: np.ndarray
    fps: float

    @property
    def all(self) -> np.ndarray:
        return np.sort(np.concatenate([self.left, self.right]))


def track_events(
    kp: np.ndarray, frames: np.ndarray, facing: int, fps: float, schema: KeypointSchema = COCO17
) -> GaitEvents:
    """Heel strikes of both feet of one side-view track ((T, K, 2+) keypoints sorted by frame)."""
    ix = schema.index
    pelvis = (kp[:, ix("left_hip"), 0] + kp[:, ix("right_hip"), 0]) / 2
    return GaitEvents(
        left=heel_strikes(frames, kp[:, ix("left_ankle"), 0], pelvis, facing, fps),
        right=heel_strikes(frames, kp[:, ix("right_ankle"), 0], pelvis, facing, fps),
        fps=float(fps),
    )


def cycle_summary(ev: GaitEvents) -> dict[str, float | int]:
    """Heel strikes, step time (s, median interval between consecutive strikes of alternating
    feet), stride time (s, median interval between consecutive strikes of one foot) and cadence
    (steps per minute = 60 / step time). Medians: one spurious or missed event does not move them."""
    labelled = sorted([(t, "L") for t in ev.left] + [(t, "R") for t in ev.right])
    steps = [b[0] - a[0] for a, b in zip(labelled, labelled[1:], strict=False) if a[1] != b[1]]
    strides = [*np.diff(ev.left), *np.diff(ev.right)]
    step = float(np.median(steps)) / ev.fps if steps else float("nan")
    return {
        "heel_strikes": len(labelled),
        "steps": len(steps),
        "step_time_s": step,
        "stride_time_s": float(np.median(strides)) / ev.fps if strides else float("nan"),
        "cadence_steps_per_min": 60.0 / step if steps and step > 0 else float("nan"),
    }


def match_events(ref: np.ndarray, est: np.ndarray, tol: float) -> dict[str, float | int]:
    """Greedy one-to-one matching of event times (frames) within ``tol`` frames, closest first:
    matched count, mean absolute error (frames), misses (reference events without a match) and
    extras (estimated events without one)."""
    ref, est = np.asarray(ref, float), np.asarray(est, float)
    pairs = sorted((abs(r - e), i, j) for i, r in enumerate(ref) for j, e in enumerate(est) if abs(r - e) <= tol)
    used_r: set[int] = set()
    used_e: set[int] = set()
    errs = []
    for d, i, j in pairs:
        if i in used_r or j in used_e:
            continue
        used_r.add(i)
        used_e.add(j)
        errs.append(d)
    return {
        "matched": len(errs),
        "mean_abs_error_frames": float(np.mean(errs)) if errs else float("nan"),
        "missed": len(ref) - len(errs),
        "extra": len(est) - len(errs),
    }
