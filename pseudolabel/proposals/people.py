"""``people``: the default box source, combining every proposal that needs no downloaded weights.

Per recording (:meth:`PeopleProposer.begin`): a colour background model for a static camera
(:mod:`pseudolabel.proposals.motion`), from frames sampled over the recording; with depth, a depth
background from the same frames; and OpenCV's HOG people detector run once on the colour
background, which finds people who stand still through most of the recording (motion cannot).

Per frame (:meth:`PeopleProposer.detect`, then tracking in :meth:`PeopleProposer.propose`), in order of trust:

1. moving people: colour foreground blobs split into person-shaped boxes;
2. depth foreground (closer than the depth background), split into depth layers, then into
   person-shaped boxes: separates people who overlap in the image at different distances;
3. when the camera is not static (or the recording is too short for a background, e.g. a photo):
   BlazePose's person detector on the whole frame, blanking each person found and searching
   again (large people), and HOG on the frame, upscaled so that people down to
   ``min_person_height`` of the frame height are found. Both are slow: in a video they run on
   every ``still_every``-th frame, and tracking bridges the frames between (where nobody is
   proposed, the mediapipe teacher searches the whole frame);
4. the people standing still found on the background.

With ``single_detect_every`` above 1 (default 1: every frame is detected in full) and one person in
view (a static camera whose sampled frames show at most one moving person and nobody standing
still), full detection runs on every ``single_detect_every``-th frame only
(:meth:`PeopleProposer.detect_ahead`); on the frames between, the one confirmed person tracked is
proposed at the tracker's predicted box, and any other state of the tracker (a second person, a
missed detection, a person not yet confirmed) has the frame detected in full (:meth:`PeopleProposer.propose`).

Overlapping boxes from different sources are merged (a later box mostly inside an earlier one is
dropped, unless two or more later boxes split it: then they replace it). A :class:`BoxTracker`
then keeps ids across frames and bridges frames in which a confirmed person was missed (the
predicted box is proposed). Boxes are clipped to the image; at most ``max_boxes`` are returned,
best first. :attr:`track_ids` holds the ids of the last frame's boxes.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.geometry import box_area, clip_xywh, intersection_matrix, iou_matrix
from pseudolabel.proposals.depth import background_depth, depth_layers, read_depth
from pseudolabel.proposals.detector import DetectorProposer
from pseudolabel.proposals.hog import WINDOW_PERSON_HEIGHT, HogConfig, HogPeople
from pseudolabel.proposals.motion import MotionConfig, MotionModel, person_boxes, read_reduced, working_factor
from pseudolabel.tracking import BoxTracker, TrackerConfig


@dataclass(frozen=True)
class PeopleConfig:
    motion: MotionConfig = field(default_factory=MotionConfig)
    hog: HogConfig = field(default_factory=HogConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    use_depth: bool = True
    depth_min_diff_m: float = 0.15  # closer than the depth background by this much: foreground
    depth_min_rel: float = 0.05  # ... or by this share of the background depth
    depth_layer_gap_m: float = 0.4
    hog_background: bool = True  # people standing still, found on the colour background
    hog_background_min_score: float = 0.8
    hog_background_scale: float = 1.2  # pyramid step of that one search (coarser than per frame)
    hog_frames: bool = True  # HOG on every frame when there is no static background
    detector_frames: int = 4  # ... and BlazePose's detector, blanking each person found, up to this many
    still_every: int = 5  # in a video without a static background, those two run on every n-th frame only
    min_person_height: float = 0.12  # share of the frame height the per-frame HOG is scaled for
    max_hog_upscale: float = 2.0
    merge_inside: float = 0.7  # a box this much inside a kept one is the same person
    min_box_height: float = 12.0  # pixels
    min_visible: float = 0.4  # share of a box that must lie inside the image
    max_boxes: int = 12
    # one person in view (a static camera whose sampled frames show at most one moving person):
    # full detection on every n-th frame only; between them the one person tracked confidently
    # (confirmed, found on the last detected frame, at least ``single_min_height`` of the frame
    # tall) is proposed where the tracker predicts, any other frame is detected in full
    # (off by default: on the demo's side walks the predicted boxes cost ~1 px of keypoint error and
    # 0.02 of gait-angle correlation, for no speed gain measurable on 2 cores)
    single_detect_every: int = 1
    single_min_height: float = 0.2

    def to_dict(self) -> dict:
        """The settings (recorded with a label set and compared on resume). The lone-walker settings
        are left out while that path is off: they change nothing then, and label sets recorded
        before they existed resume and refresh as before."""
        d = asdict(self)
        if self.single_detect_every <= 1:
            d.pop("single_detect_every")
            d.pop("single_min_height")
        return d


def merge_boxes(groups: list[np.ndarray], inside: float = 0.7, same_iou: float = 0.5) -> np.ndarray:
    """Merge box sets given in order of trust into one (N, 5) set (see the module docstring)."""
    kept: list[np.ndarray] = []
    for boxes in groups:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
        if not len(boxes):
            continue
        if not kept:
            kept = [b for b in boxes]
            continue
        k = np.stack(kept)
        iou = iou_matrix(boxes[:, :4], k[:, :4])
        # intersection area / area of the new box
        inter = intersection_matrix(boxes[:, :4], k[:, :4]) / np.maximum(box_area(boxes[:, :4]), 1e-9)[:, None]
        inside_of = [np.flatnonzero((inter[i] >= inside) | (iou[i] >= same_iou)) for i in range(len(boxes))]
        replace: dict[int, list[int]] = {}
        for i, owners in enumerate(inside_of):
            if len(owners) == 1 and iou[i, owners[0]] < same_iou:
                replace.setdefault(int(owners[0]), []).append(i)
        split_owner: dict[int, list[int]] = {}
        for o, members in replace.items():
            sub = boxes[members]
            if len(members) >= 2 and float(iou_matrix(sub[:, :4], sub[:, :4])[np.triu_indices(len(members), 1)].max()) < 0.3:
                split_owner[o] = members
        new = [b for j, b in enumerate(kept) if j not in split_owner]
        for o, members in split_owner.items():
            for i in members:
                new.append(np.array([*boxes[i, :4], max(boxes[i, 4], kept[o][4])]))
        taken = {i for m in split_owner.values() for i in m}
        for i, b in enumerate(boxes):
            if i not in taken and not len(inside_of[i]):
                new.append(b)
        kept = new
    if not kept:
        return np.zeros((0, 5))
    out = np.stack(kept)
    return out[np.argsort(-out[:, 4], kind="stable")]


def clip_boxes(boxes: np.ndarray, width: int, height: int, min_visible: float, min_height: float) -> np.ndarray:
    """Boxes cut to the image; those mostly outside it or lower than ``min_height`` pixels dropped."""
    b = np.asarray(boxes, np.float64).reshape(-1, boxes.shape[-1] if boxes.ndim == 2 else 5).copy()
    if not len(b):
        return b
    area = np.maximum(box_area(b[:, :4]), 1e-9)
    b[:, :4] = clip_xywh(b[:, :4], width, height)
    vis = box_area(b[:, :4]) / area
    return b[(vis >= min_visible) & (b[:, 3] >= min_height) & (b[:, 2] >= 2)]


class PeopleProposer:
    """Motion + depth + HOG proposals with tracking (see the module docstring)."""

    name = "people"

    def __init__(self, cfg: PeopleConfig | None = None, **overrides: Any) -> None:
        cfg = cfg or PeopleConfig()
        if overrides:
            unknown = sorted(set(overrides) - set(PeopleConfig.__dataclass_fields__))
            if unknown:
                raise ValueError(f"people proposer: unknown options {unknown}; valid: {sorted(PeopleConfig.__dataclass_fields__)}")
            cfg = PeopleConfig(**{**{k: getattr(cfg, k) for k in PeopleConfig.__dataclass_fields__}, **overrides})
        self.cfg = cfg
        self.motion = MotionModel(cfg.motion)
        self.tracker = BoxTracker(cfg.tracker)
        self._blazepose: Any = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self.background: np.ndarray | None = None  # depth background (raw units), also used for QA
        self._depth_limit: np.ndarray | None = None
        self.depth_scale = 0.001
        self.stationary = np.zeros((0, 5))
        self.track_ids = np.zeros(0, np.int64)
        self._positions: dict[int, int] = {}
        self._size = (0, 0)
        self._single = False  # the recording looks like one person in view (see PeopleConfig)
        self._stats: dict[str, Any] = {}
        # depth frames begin decoded for the depth background, by their depth_path: the labelling run
        # takes them from here instead of decoding them again (emptied when the next recording begins)
        self.decoded_depth: dict[str, np.ndarray] = {}

    # ---- per recording ----------------------------------------------------------------------------
    def begin(self, root: DatasetRoot, video: pd.Series, frames: pd.DataFrame) -> None:
        from concurrent.futures import ThreadPoolExecutor

        cfg = self.cfg
        rgb = frames["rgb_path"].tolist()
        self._positions = {int(f): i for i, f in enumerate(frames["frame_index"].astype(int))}
        width, height = _frame_size(root, video, rgb)
        self._size = (width, height)
        self.tracker.reset()
        if self.cfg.detector_frames:
            self._detector()
        scale = video.get("depth_scale")
        self.depth_scale = float(scale) if scale is not None and not pd.isna(scale) else 0.001
        # frames written without a depth partner have none: the depth model comes from those that do
        depth_paths = [p for p in frames["depth_path"] if isinstance(p, str) and p] if "depth_path" in frames else []
        with_depth = cfg.use_depth and len(depth_paths) >= 3
        factor = working_factor(width, cfg.motion.target_width)
        colour_pos = sorted({int(p) for _, pick in self.motion.windows(len(rgb)) for p in pick})
        depth_pos = (
            np.unique(np.linspace(0, len(depth_paths) - 1, min(cfg.motion.samples, len(depth_paths))).round().astype(int))
            if with_depth else np.zeros(0, int)
        )  # fmt: skip
        # the sampled frames are decoded in two threads (OpenCV releases the GIL); the colour model and
        # the HOG search on it are built while the depth frames are still being read
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="gaitdata-proposals") as pool:
            colour_futs = {p: pool.submit(read_reduced, root.abspath(rgb[p]), factor) for p in colour_pos}
            depth_futs = [pool.submit(read_depth, root.abspath(depth_paths[i])) for i in depth_pos]
            colour = {p: f.result() for p, f in colour_futs.items()}
            self.motion.fit(lambda pos, f: colour.get(pos), len(rgb), width, height)
            self.stationary = np.zeros((0, 5))
            if cfg.hog_background and self.motion.static and self.motion.backgrounds:
                bg = self.motion.backgrounds[len(self.motion.backgrounds) // 2]
                f = float(self.motion.factor)
                found = HogPeople(HogConfig(**{**asdict(cfg.hog), "scale": cfg.hog_background_scale})).detect(bg, upscale=f)
                self.stationary = found[found[:, 4] >= cfg.hog_background_min_score] * np.array([f, f, f, f, 1.0])
            depths = [f.result() for f in depth_futs]
        self.decoded_depth.clear()
        self.decoded_depth.update((depth_paths[i], d) for i, d in zip(depth_pos, depths, strict=True))
        self.background = background_depth(depths, "max") if depths else None
        self._depth_limit = None
        if self.background is not None:
            # raw depth below which a pixel is foreground: background - max(min_diff, min_rel * background)
            bg = self.background[:: self.motion.factor, :: self.motion.factor].astype(np.float64)
            margin = np.maximum(cfg.depth_min_diff_m / self.depth_scale, cfg.depth_min_rel * bg)
            self._depth_limit = np.where(bg > 0, np.clip(np.ceil(bg - margin), 0, 65535), 0).astype(np.uint16)
        self._single = bool(
            cfg.single_detect_every > 1 and self.motion.static and self.motion.max_people <= 1 and not len(self.stationary)
        )
        self._stats = {"motion": self.motion.describe(), "depth_background": self.background is not None,
                       "stationary_people": len(self.stationary), "single_person": self._single}  # fmt: skip

    # ---- per frame ----------------------------------------------------------------------------------
    def _depth_boxes(self, depth: np.ndarray | None) -> np.ndarray:
        if depth is None or self._depth_limit is None or self.background is None or depth.shape != self.background.shape:
            return np.zeros((0, 5))
        f = self.motion.factor
        d = depth[::f, ::f]
        fg = (d > 0) & (d < self._depth_limit)  # closer than the background by the margin (see begin)
        if not fg.any():
            return np.zeros((0, 5))
        layers = depth_layers(d.astype(np.float32) * self.depth_scale, fg, self.cfg.depth_layer_gap_m)
        parts = [person_boxes(layers == k, self.cfg.motion, self.motion.prior, float(f)) for k in range(1, int(layers.max()) + 1)]
        boxes = np.concatenate(parts) if parts else np.zeros((0, 5))
        boxes[:, 4] = np.minimum(boxes[:, 4] + 0.05, 0.95)
        return boxes

    def _detector(self) -> Any:
        """BlazePose's detector with blanking (:class:`pseudolabel.proposals.detector.DetectorProposer`); None without mediapipe."""
        if self._blazepose is None:  # made in begin (one thread), used under the lock
            import importlib.util

            if importlib.util.find_spec("mediapipe") is None:
                self._blazepose = False
            else:
                self._blazepose = DetectorProposer(max_persons=self.cfg.detector_frames)
        return self._blazepose or None

    def _hog_boxes(self, image: np.ndarray) -> np.ndarray:
        h = image.shape[0]
        up = float(np.clip(WINDOW_PERSON_HEIGHT / max(self.cfg.min_person_height * h, 1.0), 1.0, self.cfg.max_hog_upscale))
        if not hasattr(self._local, "hog"):  # one detector per thread
            self._local.hog = HogPeople(self.cfg.hog)
        return self._local.hog.detect(image, upscale=up)

    def detect(self, frame_index: int, image: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
        """Merged detections of one frame before tracking (N, 5).

        Depends only on the frame and what :meth:`begin` built, and may run in several threads at
        once (the labelling run calls it in its frame-decoding threads); :meth:`propose` then
        tracks, in frame order.
        """
        pos = self._positions.get(int(frame_index), 0)
        groups = [self.motion.boxes(pos, image), self._depth_boxes(depth)]
        video = len(self._positions) >= self.cfg.motion.min_frames
        if not self.motion.static and (not video or pos % max(self.cfg.still_every, 1) == 0):
            if self.cfg.detector_frames and self._detector() is not None:
                with self._lock:  # one mediapipe graph
                    groups.append(self._detector().propose(frame_index, image, depth))
            if self.cfg.hog_frames:
                groups.append(self._hog_boxes(image))
        groups.append(self.stationary)
        h, w = image.shape[:2]
        return clip_boxes(merge_boxes(groups, self.cfg.merge_inside), w, h, self.cfg.min_visible, self.cfg.min_box_height)

    def _detected_frame(self, frame_index: int) -> bool:
        """Whether :meth:`detect_ahead` detects this frame (every frame unless one person is in view; then
        every n-th one and the first frames, which confirm the person's track)."""
        pos = self._positions.get(int(frame_index), 0)
        return not self._single or pos % self.cfg.single_detect_every == 0 or pos < self.tracker.cfg.min_hits

    def detect_ahead(self, frame_index: int, image: np.ndarray, depth: np.ndarray | None) -> np.ndarray | None:
        """:meth:`detect` for the frames that are always detected, None for those :meth:`propose` decides on.

        What the labelling run calls in its frame-decoding threads; the result depends only on the
        frame and what :meth:`begin` built, never on the order in which threads run.
        """
        return self.detect(frame_index, image, depth) if self._detected_frame(frame_index) else None

    def propose(
        self, frame_index: int, image: np.ndarray, depth: np.ndarray | None, detections: np.ndarray | None = None
    ) -> np.ndarray:
        """Boxes (N, 5) of one frame; ``detections``: this frame's :meth:`detect` result when made already.

        Frames must come in order. With one person in view (see :class:`PeopleConfig`), a frame
        between detected ones gets the tracker's predicted box of the one person tracked
        confidently, else it is detected here.
        """
        h, w = image.shape[:2]
        rows = None
        if detections is None and not self._detected_frame(frame_index):
            rows = self.tracker.single(int(frame_index), self.cfg.single_detect_every - 1)
            if rows is not None and rows[0, 3] < self.cfg.single_min_height * h:
                rows = None
        if rows is None:
            det = self.detect(frame_index, image, depth) if detections is None else detections
            rows = self.tracker.update(int(frame_index), det)
        rows = clip_boxes(rows, w, h, self.cfg.min_visible, self.cfg.min_box_height)
        rows = rows[np.argsort(-rows[:, 4], kind="stable")][: self.cfg.max_boxes]
        self.track_ids = rows[:, 5].astype(np.int64)
        return rows[:, :5].copy()

    def describe(self) -> dict:
        d = {"proposer": self.name, **self.cfg.to_dict(), "hog_detector": "opencv HOG default people SVM"}
        return d

    def recording_stats(self) -> dict:
        """What :meth:`begin` found about the current recording (static camera, priors, stationary people)."""
        return dict(self._stats)


def _frame_size(root: DatasetRoot, video: pd.Series, rgb: list[str]) -> tuple[int, int]:
    """Width and height of the extracted frames (the first frame's header; the video row without frames)."""
    if rgb:
        from PIL import Image

        try:
            with Image.open(root.abspath(rgb[0])) as im:
                return int(im.size[0]), int(im.size[1])
        except OSError:
            pass
    w, h = video.get("width"), video.get("height")
    if w is None or h is None or pd.isna(w) or pd.isna(h):
        return 0, 0
    return int(w), int(h)
