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
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from pseudolabel.proposals.depth import (  # noqa: F401 - part of this module's interface
    background_depth,
    depth_boxes,
    depth_layers,
    foreground_mask,
    mask_boxes,
    read_depth,
)
from pseudolabel.proposals.detector import DetectorProposer  # noqa: F401 - part of this module's interface


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


# ---- depth (helpers in pseudolabel.proposals.depth) ---------------------------------------------
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


BACKGROUND_FRAMES = 60  # depth frames a recording's background depth is made from (evenly spaced)


def _background_pick(n: int, n_frames: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n_frames, n)).round().astype(int)) if n else np.zeros(0, int)


def background_positions(frames: pd.DataFrame, n_frames: int = BACKGROUND_FRAMES) -> set[int]:
    """Frame indices of the depth frames :func:`recording_background` reads (up to ``n_frames``, evenly spaced)."""
    with_depth = frames.loc[frames["depth_path"].notna(), "frame_index"].astype(int).to_numpy()
    return {int(with_depth[i]) for i in _background_pick(len(with_depth), n_frames)}


def recording_background(
    root: DatasetRoot, frames: pd.DataFrame, method: str = "max", n_frames: int = BACKGROUND_FRAMES
) -> np.ndarray | None:
    """Background depth of one recording from up to ``n_frames`` evenly spaced depth frames (None without depth)."""
    paths = frames["depth_path"].dropna().tolist()
    if not paths:
        return None
    return background_depth([read_depth(root.abspath(paths[i])) for i in _background_pick(len(paths), n_frames)], method)


# ---- BlazePose's detector (pseudolabel.proposals.detector) ---------------------------------------
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
