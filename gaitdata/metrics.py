"""Pose metrics shared by labelling QA, agreement, evaluation and the demo."""

from __future__ import annotations

import numpy as np

from gaitdata.schema import COCO17, KeypointSchema


def oks(
    pred: np.ndarray,
    gt: np.ndarray,
    gt_vis: np.ndarray,
    area: float | np.ndarray,
    schema: KeypointSchema = COCO17,
) -> np.ndarray:
    """Object keypoint similarity as COCOeval defines it.

    ``pred`` and ``gt``: (..., K, 2+) pixel coordinates; ``gt_vis``: (..., K) COCO visibility
    (joints with v == 0 are ignored); ``area``: the ground-truth object area (box area when no
    segmentation), broadcast over the leading axes. Returns (...) OKS, NaN where no joint is visible.
    """
    sig = np.asarray(schema.sigmas, dtype=np.float64)
    var = (2 * sig) ** 2
    d2 = ((np.asarray(pred, np.float64)[..., :2] - np.asarray(gt, np.float64)[..., :2]) ** 2).sum(-1)
    area = np.asarray(area, dtype=np.float64)[..., None]
    e = d2 / var / (area + np.spacing(1)) / 2
    vis = np.asarray(gt_vis) > 0
    num = np.where(vis, np.exp(-e), 0.0).sum(-1)
    den = vis.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def pck(pred: np.ndarray, gt: np.ndarray, gt_vis: np.ndarray, ref_size: np.ndarray, alpha: float = 0.1) -> float:
    """Fraction of visible joints within ``alpha * ref_size`` pixels (ref_size per instance, e.g. box height)."""
    d = np.linalg.norm(np.asarray(pred, np.float64)[..., :2] - np.asarray(gt, np.float64)[..., :2], axis=-1)
    vis = np.asarray(gt_vis) > 0
    thr = alpha * np.asarray(ref_size, dtype=np.float64)[..., None]
    n = vis.sum()
    return float(((d <= thr) & vis).sum() / n) if n else float("nan")


def joint_angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Angle at ``b`` (degrees) between segments b->a and b->c; inputs (..., 2 or 3)."""
    u = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    v = np.asarray(c, np.float64) - np.asarray(b, np.float64)
    cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1) + 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
