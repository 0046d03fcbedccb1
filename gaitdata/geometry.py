"""Box geometry and person matching, in one place (numpy only).

Boxes are COCO boxes unless a name says otherwise: ``x, y, w, h`` in pixels, top-left corner
first (``xywh``); ``xyxy`` is ``x0, y0, x1, y1``. Functions take any array-like of shape (4,) or
(N, 4) (extra trailing columns such as a score are not allowed: slice them off) and compute in
float64.

**One matching rule.** Wherever two sets of persons are paired (two label sets of a frame,
predictions and references, detections and tracks), :func:`match_greedy` pairs them one-to-one,
greedily by decreasing score: the best-scoring candidate pair is taken, its two members leave the
pool, and so on. Ties go to the lower row, then the lower column, so the result never depends on
the sort algorithm. This is COCOeval's matching habit: unlike the Hungarian optimum (best total
score) it never gives up the best-overlapping pair to raise the total, and it is what the stages
did before they shared it, so their outputs did not change. Each caller states what a candidate is (IoU at least a
threshold; OKS or IoU at least theirs) and what the score is (IoU; OKS then IoU; a tracking cost).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "box_area", "box_iou", "clip_xywh", "clip_xyxy", "intersection_matrix", "iou_matrix", "match_by_iou",
    "match_greedy", "xywh_to_xyxy", "xyxy_to_xywh",
]  # fmt: skip


def _boxes(b: Any) -> np.ndarray:
    return np.asarray(b, np.float64).reshape(-1, 4)


def xywh_to_xyxy(boxes: Any) -> np.ndarray:
    """(N, 4) ``x, y, w, h`` -> ``x0, y0, x1, y1``."""
    b = _boxes(boxes)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_xywh(boxes: Any) -> np.ndarray:
    """(N, 4) ``x0, y0, x1, y1`` -> ``x, y, w, h``."""
    b = _boxes(boxes)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def clip_xyxy(boxes: Any, width: float, height: float) -> np.ndarray:
    """(N, 4) ``x0, y0, x1, y1`` boxes cut to the image ``[0, width] x [0, height]``."""
    b = _boxes(boxes)
    return np.stack(
        [np.clip(b[:, 0], 0, width), np.clip(b[:, 1], 0, height), np.clip(b[:, 2], 0, width), np.clip(b[:, 3], 0, height)],
        axis=1,
    )


def clip_xywh(boxes: Any, width: float, height: float) -> np.ndarray:
    """(N, 4) ``x, y, w, h`` boxes cut to the image (a box wholly outside it gets a zero side)."""
    return xyxy_to_xywh(clip_xyxy(xywh_to_xyxy(boxes), width, height))


def box_area(boxes: Any) -> np.ndarray:
    """(N,) areas ``w * h`` of (N, 4) ``xywh`` boxes."""
    b = _boxes(boxes)
    return b[:, 2] * b[:, 3]


def intersection_matrix(a: Any, b: Any) -> np.ndarray:
    """Pairwise intersection areas of ``xywh`` boxes: (N, 4) x (M, 4) -> (N, M)."""
    a, b = _boxes(a), _boxes(b)
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, 0, None], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, 1, None], b[None, :, 1]), 0, None)
    return iw * ih


def iou_matrix(a: Any, b: Any) -> np.ndarray:
    """Pairwise IoU of ``xywh`` boxes: (N, 4) x (M, 4) -> (N, M); 0 where the union is empty."""
    a, b = _boxes(a), _boxes(b)
    inter = intersection_matrix(a, b)
    union = box_area(a)[:, None] + box_area(b)[None] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def box_iou(a: Any, b: Any) -> float:
    """IoU of two ``xywh`` boxes."""
    return float(iou_matrix(a, b)[0, 0])


def match_greedy(score: Any, allowed: Any = None, then_by: Any = None) -> list[tuple[int, int]]:
    """One-to-one pairs ``(row, column)`` of an (N, M) ``score`` matrix, best first (see the module docstring).

    Candidates are the pairs where ``allowed`` (N, M bool) is true (every pair when ``None``);
    they are taken by decreasing ``score``, then decreasing ``then_by`` (an (N, M) tie-breaker),
    then increasing row and column. NaN scores rank last.
    """
    s = np.asarray(score, np.float64)
    if s.ndim != 2:
        raise ValueError(f"match_greedy: expected an (N, M) score matrix, got shape {s.shape}")
    ok = np.ones(s.shape, bool) if allowed is None else np.asarray(allowed, bool).reshape(s.shape)
    ii, jj = np.nonzero(ok)
    keys: list[np.ndarray] = [jj, ii]
    if then_by is not None:
        keys.append(-np.asarray(then_by, np.float64).reshape(s.shape)[ii, jj])
    keys.append(-s[ii, jj])
    used_i: set[int] = set()
    used_j: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for k in np.lexsort(keys):
        i, j = int(ii[k]), int(jj[k])
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            pairs.append((i, j))
    return pairs


def match_by_iou(a: Any, b: Any, min_iou: float) -> list[tuple[int, int]]:
    """One-to-one pairs of ``xywh`` boxes ``a`` (N, 4) and ``b`` (M, 4) with IoU >= ``min_iou``, by :func:`match_greedy`."""
    iou = np.nan_to_num(iou_matrix(a, b))
    return match_greedy(iou, iou >= min_iou)
