"""Frame sizes, depth colour scales and the 8-bit depth previews shown in the ``depth`` slice."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_bytes

DEPTH_RANGE_M = 6.0  # heatmap/preview colour scale when a recording gives no sample: 0 .. 6 m
PREVIEW_DIR = Path(".fiftyone") / "previews"


def frame_size(root: DatasetRoot, video: Any, rgb_rel: str) -> tuple[int, int]:
    """(width, height) of a recording's frames: from its metadata, else from one frame on disk."""
    w, h = video.get("width"), video.get("height")
    if w is not None and h is not None and not pd.isna(w) and not pd.isna(h):
        return int(w), int(h)
    import cv2

    img = cv2.imread(str(root.abspath(rgb_rel)), cv2.IMREAD_REDUCED_GRAYSCALE_2)
    if img is None:
        raise GaitdataError(f"cannot read {root.abspath(rgb_rel)}: re-extract {video.get('video_id')}")
    return img.shape[1] * 2, img.shape[0] * 2


def depth_units_range(depth_scale: float | None, sample: np.ndarray | None = None) -> list[float]:
    """Colour scale ``[lo, hi]`` (raw depth units) of a recording's heatmaps and previews.

    From a sample depth frame: its 1st-99th percentile of valid (non-zero) depth, widened by 10 %
    (at least 10 cm);
    without one (or when it holds no depth): 0 .. 6 m in the recording's units.
    """
    scale = depth_scale if depth_scale and not pd.isna(depth_scale) and depth_scale > 0 else 0.001
    fallback = [0.0, float(min(65535.0, round(DEPTH_RANGE_M / scale)))]
    if sample is None:
        return fallback
    valid = sample[sample > 0]
    if valid.size < 16:
        return fallback
    lo, hi = (float(v) for v in np.percentile(valid, [1, 99]))
    pad = max(0.1 * (hi - lo), 0.1 / scale)  # at least 10 cm
    return [max(0.0, round(lo - pad)), min(65535.0, round(hi + pad))]


def video_depth_range(root: DatasetRoot, depth_scale: Any, frames: pd.DataFrame) -> list[float]:
    """:func:`depth_units_range` from the middle depth frame of one recording's ``frames``."""
    import cv2

    rels = frames["depth_path"].dropna()
    sample = None
    if len(rels):
        d = cv2.imread(str(root.abspath(str(rels.iloc[len(rels) // 2]))), cv2.IMREAD_UNCHANGED)
        sample = d if d is not None and d.dtype == np.uint16 else None
    return depth_units_range(depth_scale, sample)


def preview_relpath(video_id: str, frame_index: int) -> str:
    return (PREVIEW_DIR / video_id / f"{frame_index:06d}.png").as_posix()


def make_preview(depth_path: Path, out: Path, value_range: Sequence[float]) -> None:
    """8-bit colourised preview of a 16-bit depth PNG (0 = no depth = black), written atomically."""
    import cv2

    d = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
    if d is None or d.dtype != np.uint16:
        raise GaitdataError(f"{depth_path}: not a 16-bit depth PNG; re-extract this recording")
    lo, hi = float(value_range[0]), float(value_range[1])
    v = np.clip((d.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)
    rgb = cv2.applyColorMap(v, cv2.COLORMAP_TURBO)
    rgb[d == 0] = 0
    ok, buf = cv2.imencode(".png", rgb, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise GaitdataError(f"cannot encode the depth preview of {depth_path}")
    atomic_write_bytes(out, buf.tobytes())


def make_previews(root: DatasetRoot, jobs: list[tuple[str, str, Sequence[float]]], workers: int = 2) -> dict[str, str]:
    """Write missing previews for ``(depth_rel, preview_rel, range)``; return ``{depth_rel: error}`` failures."""
    todo = [j for j in jobs if not root.abspath(j[1]).is_file()]
    errors: dict[str, str] = {}

    def one(job: tuple[str, str, Sequence[float]]) -> None:
        try:
            make_preview(root.abspath(job[0]), root.abspath(job[1]), job[2])
        except (GaitdataError, OSError) as exc:
            errors[job[0]] = str(exc)

    if todo:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(one, todo))
    return errors
