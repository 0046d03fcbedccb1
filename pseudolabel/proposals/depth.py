"""Depth foreground for person proposals: a per-recording background depth model, foreground
closer than it, depth layers (people at different distances) and boxes of the regions found.

Used by the ``depth`` proposer (:class:`pseudolabel.boxes.DepthProposer`) and by the default
``people`` proposer (:mod:`pseudolabel.proposals.people`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from gaitdata.errors import GaitdataError
from gaitdata.geometry import clip_xyxy, xyxy_to_xywh


def _empty() -> np.ndarray:
    return np.zeros((0, 5), dtype=np.float64)


def background_depth(depths: Sequence[np.ndarray], method: str = "max") -> np.ndarray:
    """Per-pixel background depth over a recording's frames (uint16 raw units, 0 = unknown).

    ``max``: the farthest valid value (people pass in front of the background, never behind it);
    ``median``: the median of the valid values (robust to far outliers; needs the background to be
    visible in more than half the frames).
    """
    if not len(depths):
        raise ValueError("background_depth needs at least one depth frame")
    stack = np.stack([np.asarray(d) for d in depths]).astype(np.float32)
    if method == "max":
        bg = stack.max(axis=0)
    elif method == "median":
        stack[stack == 0] = np.nan
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                bg = np.nanmedian(stack, axis=0)
        bg = np.nan_to_num(bg, nan=0.0)
    else:
        raise ValueError(f"background method must be 'max' or 'median', got {method!r}")
    return np.round(bg).astype(np.uint16)


def foreground_mask(
    depth: np.ndarray, background: np.ndarray, depth_scale: float, min_diff_m: float = 0.15, min_rel: float = 0.05
) -> np.ndarray:
    """Pixels with valid depth closer than the background by ``max(min_diff_m, min_rel * background)``."""
    d = depth.astype(np.float32) * depth_scale
    b = background.astype(np.float32) * depth_scale
    valid = (depth > 0) & (background > 0)
    return valid & (b - d > np.maximum(min_diff_m, min_rel * b))


def mask_boxes(mask: np.ndarray, min_area: float = 0.004, max_boxes: int = 4, pad: float = 0.03) -> np.ndarray:
    """Boxes of the largest connected components of a binary mask, (N, 5) with score = area share."""
    import cv2

    m = mask.astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    h, w = mask.shape
    out = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        share = area / float(h * w)
        if share < min_area:
            continue
        p = pad * bh
        box = xyxy_to_xywh(clip_xyxy([x - p, y - p, x + bw + p, y + bh + p], w, h))[0]
        out.append((*box.tolist(), share))
    out.sort(key=lambda r: -r[4])
    return np.asarray(out[:max_boxes], dtype=np.float64).reshape(-1, 5)


def depth_layers(depth_m: np.ndarray, mask: np.ndarray, gap_m: float = 0.4, bin_m: float = 0.1) -> np.ndarray:
    """Split foreground pixels into depth layers separated by empty gaps of at least ``gap_m``.

    Returns an int32 label image (0 = not foreground, 1.. = layer, nearest first), so that two
    people overlapping in the image but at different distances become separate regions.
    """
    labels = np.zeros(mask.shape, np.int32)
    d = depth_m[mask]
    if d.size == 0:
        return labels
    lo = float(d.min())
    bins = np.floor((d - lo) / bin_m).astype(np.int64)
    hist = np.bincount(bins)
    min_count = max(int(0.002 * d.size), 1)
    occupied = hist >= min_count
    layer_of_bin = np.zeros(len(hist), np.int32)
    layer, empty_run, started = 0, 0, False
    gap_bins = max(int(round(gap_m / bin_m)), 1)
    for b in range(len(hist)):
        if occupied[b]:
            if not started or empty_run >= gap_bins:
                layer += 1
                started = True
            empty_run = 0
        else:
            empty_run += 1
        layer_of_bin[b] = max(layer, 1)
    labels[mask] = layer_of_bin[bins]
    return labels


def depth_boxes(
    depth: np.ndarray,
    background: np.ndarray,
    depth_scale: float,
    min_diff_m: float = 0.15,
    min_rel: float = 0.05,
    min_area: float = 0.004,
    max_boxes: int = 4,
    layer_gap_m: float = 0.4,
) -> np.ndarray:
    """Person boxes (N, 5) from one registered depth frame and the recording's background model.

    Foreground pixels are split into depth layers (:func:`depth_layers`), then into connected
    components per layer; the largest components (by area) become boxes.
    """
    fg = foreground_mask(depth, background, depth_scale, min_diff_m, min_rel)
    layers = depth_layers(depth.astype(np.float32) * depth_scale, fg, layer_gap_m)
    parts = [mask_boxes(layers == k, min_area=min_area, max_boxes=max_boxes) for k in range(1, int(layers.max()) + 1)]
    if not parts:
        return _empty()
    boxes = np.concatenate(parts)
    return boxes[np.argsort(-boxes[:, 4], kind="stable")][:max_boxes]


def read_depth(path: str | os.PathLike) -> np.ndarray:
    import cv2

    d = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if d is None:
        raise GaitdataError(f"cannot read depth frame {path}; re-extract the recording (gaitdata extract)")
    if d.dtype != np.uint16 or d.ndim != 2:
        raise GaitdataError(f"{path}: expected a 16-bit single-channel PNG, got {d.dtype} {d.shape}")
    return d
