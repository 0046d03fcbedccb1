"""Person-box proposals for top-down teachers (and for multi-person frames with BlazePose).

A proposer is prepared once per recording (:meth:`BoxProposer.begin`) and then asked for the
boxes of each frame (:meth:`BoxProposer.propose`), which returns an ``(N, 5)`` float array of
``x, y, w, h, score`` (COCO boxes in colour-frame pixels), best first. Proposers:

``people``    the default: moving people (colour background model), depth foreground, OpenCV's
              HOG people detector and tracking across frames combined, no downloaded weights
              (:mod:`pseudolabel.proposals.people`).
``depth``     the walker is the largest foreground region in front of a per-recording
              background depth model (per-pixel maximum or median of the valid depth values
              over the recording's frames); foreground = closer than the background by more
              than ``min_diff_m`` (or ``min_rel`` of it); foreground is split into depth
              layers (people at different distances) and connected components above
              ``min_area`` of the image become boxes. A person who stands still for the whole
              recording is part of the background model and is not proposed (use ``detector``).
``detector``  BlazePose's detector (mediapipe, static mode) on the full frame; after each person
              found, that person's box is blanked and the frame searched again, up to
              ``max_persons`` people.
``json:PATH`` AlphaPose's own files: results (``alphapose-results.json``, boxes from ``box``) or
              detections (``bbox``), a file or a folder of ``<video_id>/alphapose-results.json``
              or ``<video_id>.json``. Only ``category_id == 1`` (person) is used; the score is the
              detector's box score (recovered from a results file's proposal score). ``image_id``
              names the frame: a path relative to the dataset root, a path ending in
              ``<video_id>/rgb/<name>`` or ``<video_id>/<name>``, or a bare name / integer within
              the file's recording (``--video``, the folder's name, or the root's only recording).
              See :mod:`pseudolabel.alphapose_results`.
``labels:SET`` the boxes of an existing label set's person rows (person score as the score).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError


class BoxProposer(Protocol):
    name: str

    def begin(self, root: DatasetRoot, video: pd.Series, frames: pd.DataFrame) -> None:
        """Prepare for one recording (``frames``: its written frames, ``depth_path`` null where there is no depth)."""
        ...

    def propose(self, frame_index: int, image: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
        """(N, 5) boxes x, y, w, h, score for one frame, best first."""
        ...

    def describe(self) -> dict:
        """Settings, recorded in the label set's metadata."""
        ...


def _empty() -> np.ndarray:
    return np.zeros((0, 5), dtype=np.float64)


# ---- depth --------------------------------------------------------------------------------------
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
        x0, y0 = max(x - p, 0.0), max(y - p, 0.0)
        x1, y1 = min(x + bw + p, float(w)), min(y + bh + p, float(h))
        out.append((x0, y0, x1 - x0, y1 - y0, share))
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


class DepthProposer:
    """Boxes from depth foreground (see the module docstring)."""

    name = "depth"

    def __init__(
        self,
        method: str = "max",
        n_background_frames: int = 60,
        min_diff_m: float = 0.15,
        min_rel: float = 0.05,
        min_area: float = 0.004,
        max_boxes: int = 4,
        layer_gap_m: float = 0.4,
    ) -> None:
        self.layer_gap_m = float(layer_gap_m)
        self.method = method
        self.n_background_frames = int(n_background_frames)
        self.min_diff_m = float(min_diff_m)
        self.min_rel = float(min_rel)
        self.min_area = float(min_area)
        self.max_boxes = int(max_boxes)
        self.background: np.ndarray | None = None
        self.depth_scale = 0.001

    def begin(self, root: DatasetRoot, video: pd.Series, frames: pd.DataFrame) -> None:
        self.background = recording_background(root, frames, self.method, self.n_background_frames)
        scale = video.get("depth_scale")
        self.depth_scale = float(scale) if scale is not None and not pd.isna(scale) else 0.001

    def propose(self, frame_index: int, image: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
        if depth is None or self.background is None:
            return _empty()
        return depth_boxes(
            depth, self.background, self.depth_scale, self.min_diff_m, self.min_rel, self.min_area, self.max_boxes,
            self.layer_gap_m,
        )

    def describe(self) -> dict:
        return {
            "proposer": self.name, "method": self.method, "n_background_frames": self.n_background_frames,
            "min_diff_m": self.min_diff_m, "min_rel": self.min_rel, "min_area": self.min_area,
            "max_boxes": self.max_boxes, "layer_gap_m": self.layer_gap_m,
        }  # fmt: skip


def recording_background(
    root: DatasetRoot, frames: pd.DataFrame, method: str = "max", n_frames: int = 60
) -> np.ndarray | None:
    """Background depth of one recording from up to ``n_frames`` evenly spaced depth frames (None without depth)."""
    paths = frames["depth_path"].dropna().tolist()
    if not paths:
        return None
    pick = np.unique(np.linspace(0, len(paths) - 1, min(n_frames, len(paths))).round().astype(int))
    return background_depth([read_depth(root.abspath(paths[i])) for i in pick], method)


# ---- BlazePose's detector -----------------------------------------------------------------------
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


# ---- AlphaPose results or detections (JSON) ----------------------------------------------------
def parse_detection_json(
    path: str | os.PathLike, root: DatasetRoot, video: str | None = None
) -> dict[tuple[str, int], np.ndarray]:
    """AlphaPose results or detection file(s) -> {(video_id, frame_index): (N, 5) boxes}, best first.

    See :mod:`pseudolabel.alphapose_results` for the files accepted and how image ids name frames.
    """
    from pseudolabel.alphapose_results import boxes_by_frame

    return boxes_by_frame(path, root, video)[0]


class JsonProposer:
    """Boxes from AlphaPose's results (``box``) or detection (``bbox``) files: a file or a folder of them.

    ``video`` names the recording of a file whose image ids are bare file names (``--video``).
    """

    name = "json"

    def __init__(self, path: str | os.PathLike, video: str | None = None) -> None:
        self.path = Path(path)
        self.video = video
        self._boxes: dict[tuple[str, int], np.ndarray] | None = None
        self._files: list[dict] = []
        self._video = ""

    def prepare(self, root: DatasetRoot) -> None:
        """Read and check the file(s) against ``root`` (one error line for a bad file)."""
        if self._boxes is None:
            from pseudolabel.alphapose_results import boxes_by_frame

            self._boxes, self._files = boxes_by_frame(self.path, root, self.video)

    def begin(self, root: DatasetRoot, video: pd.Series, frames: pd.DataFrame) -> None:
        self.prepare(root)
        self._video = str(video["video_id"])

    def propose(self, frame_index: int, image: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
        return (self._boxes or {}).get((self._video, int(frame_index)), _empty())

    def describe(self) -> dict:
        from pseudolabel.alphapose_results import results_hash

        d: dict[str, Any] = {"proposer": self.name, "path": str(self.path.resolve()), "sha256": results_hash(self.path)}
        if self.video is not None:
            d["video"] = self.video
        return d


# ---- an existing label set ----------------------------------------------------------------------
class LabelSetProposer:
    """Boxes of an existing label set's person rows."""

    name = "labels"

    def __init__(self, label_set: str, subject_only: bool = False) -> None:
        self.label_set = label_set
        self.subject_only = bool(subject_only)
        self._boxes: dict[int, np.ndarray] = {}

    def begin(self, root: DatasetRoot, video: pd.Series, frames: pd.DataFrame) -> None:
        from gaitdata.labels import read_labels

        df = read_labels(root, self.label_set)
        df = df[(df["video_id"] == video["video_id"]) & df["has_person"].fillna(False)]
        if self.subject_only:
            df = df[df["is_subject"].fillna(True)]
        self._boxes = {}
        for fi, g in df.groupby("frame_index", sort=True):
            arr = g[["bbox_x", "bbox_y", "bbox_w", "bbox_h", "score"]].to_numpy(np.float64, na_value=np.nan, copy=True)
            arr[:, 4] = np.nan_to_num(arr[:, 4], nan=1.0)
            self._boxes[int(fi)] = arr[np.argsort(-arr[:, 4], kind="stable")]

    def propose(self, frame_index: int, image: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
        return self._boxes.get(int(frame_index), _empty())

    def describe(self) -> dict:
        return {"proposer": self.name, "label_set": self.label_set, "subject_only": self.subject_only}


# ---- by name ------------------------------------------------------------------------------------
def make_proposer(spec: str, **opts: Any) -> BoxProposer:
    """``people`` | ``depth`` | ``detector`` | ``json:PATH`` | ``labels:SET`` -> a proposer (options go to its constructor)."""
    if spec == "people":
        from pseudolabel.proposals.people import PeopleProposer

        return PeopleProposer(**opts)
    if spec == "depth":
        return DepthProposer(**opts)
    if spec == "detector":
        return DetectorProposer(**opts)
    if spec.startswith("json:") and len(spec) > 5:
        return JsonProposer(spec[5:], **opts)
    if spec.startswith("labels:") and len(spec) > 7:
        return LabelSetProposer(spec[7:], **opts)
    raise GaitdataError(f"unknown box source {spec!r}; use people, depth, detector, json:PATH or labels:SET")
