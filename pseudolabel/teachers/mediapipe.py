"""BlazePose (mediapipe 0.10.14, ``model_complexity=1``) as the offline default teacher.

The weights ship inside the mediapipe wheel (``pose_detection.tflite``, ``pose_landmark_full.tflite``),
so this teacher works offline on CPU. BlazePose finds one person per call:

- without boxes, each image is processed whole: in ``mode="video"`` the landmarks of one frame seed
  the region of the next (tracking within one recording; call :meth:`MediaPipeTeacher.reset` between
  recordings), in ``mode="static"`` every image is detected afresh;
- with person boxes (several or small people), each box is cut out as a square with context
  (``crop_context`` times its longer side; the other boxes' pixels outside it blanked with the
  crop's mean colour), resized to ``crop_size`` (small people are upscaled to the model's working
  size), processed and mapped back to the frame (top-down). In ``mode="video"`` the crops of a
  recording go through tracking graphs: every crop shows its person centred at the same scale,
  so the region found in one crop seeds the next and the person detector runs only when tracking
  fails (then the crop is retried in static mode); in ``mode="static"`` every crop is detected
  afresh. The crops of one frame are spread over ``crop_workers`` lanes (crop j to lane j modulo
  their number), each with its own graphs, run in parallel threads; each lane sees its crops in
  a fixed order, so results do not depend on thread timing. A pose whose box does not overlap
  its proposal is dropped; duplicates from overlapping crops (boxes overlapping, or the joints
  coinciding) are suppressed. An empty box array (a frame in which the proposer found nobody) is
  searched whole, as without boxes, unless ``search_empty=False``.

The 33 BlazePose landmarks map to COCO-17 with :data:`BLAZEPOSE_TO_COCO` (person's left = COCO
left). Per-joint confidence is the landmark visibility; joints outside the image get at most
:data:`OFF_IMAGE_CONFIDENCE`. The person score is the mean visibility of the torso landmarks
(shoulders and hips), the box is the landmarks' extent padded to a COCO person box.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gaitdata.errors import GaitdataError, require
from gaitdata.geometry import box_iou
from gaitdata.nativelog import filtered_native_logs, quiet_native_env
from gaitdata.records import Pose
from pseudolabel.registry import TeacherConfig, register_teacher

# BlazePose landmark index of each COCO-17 keypoint, in COCO order.
BLAZEPOSE_TO_COCO: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
TORSO_LANDMARKS: tuple[int, ...] = (11, 12, 23, 24)
OFF_IMAGE_CONFIDENCE = 0.05
# Padding of the landmarks' extent to a COCO person box, as fractions of the extent's height
# (the crown lies above the eyes/ears, the body surface beyond the joint centres).
BOX_PAD_TOP = 0.10
BOX_PAD_BOTTOM = 0.02
BOX_PAD_SIDE = 0.05

MEDIAPIPE_CONFIG = TeacherConfig(
    name="mediapipe",
    input_size=(256, 256),  # the landmark model's input; the detector runs at 224x224
    mean=None,  # mediapipe normalises internally
    std=None,
    channel_order="RGB",
    top_down=False,  # finds its own person; boxes are optional (multi-person frames)
    source="BlazePose GHUM 3D, full model (mediapipe==0.10.14 mp.solutions.pose, model_complexity=1)",
    license="Apache-2.0",
    weights_file="pose_landmark_full.tflite",
    extra={
        "landmarks": 33,
        "coco_from_blazepose": list(BLAZEPOSE_TO_COCO),
        "confidence": "landmark visibility; off-image joints capped at 0.05",
        "score": "mean visibility of shoulders and hips",
        "box_padding": {"top": BOX_PAD_TOP, "bottom": BOX_PAD_BOTTOM, "side": BOX_PAD_SIDE},
        "modes": ["video", "static"],
        "uses_boxes": True,  # person boxes (several or small people) are labelled crop by crop
    },
)


def _import_mediapipe():
    """Import mediapipe with its protobuf deprecation warning and native INFO logs silenced."""
    quiet_native_env()
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")
    return require("mediapipe", "teachers")


class _Graph:
    """A mediapipe solution graph. Its C++ calculators start in background threads after it is made
    and log to descriptor 2 until its first run returns: that span is caught by a
    :class:`gaitdata.nativelog.NativeLogFilter`, which lets errors and other output through.

    ``fresh``: it has only run on blank warm-up images, in which nobody is found, so it holds no
    tracking state (it predicts as a new graph does: tested).
    """

    def __init__(self, graph: Any, native_logs: Any) -> None:
        self._graph = graph
        self._native_logs = native_logs
        self.fresh = True
        self.warm_size: tuple[int, int] | None = None  # (width, height) of the warm-up image it ran on

    def process(self, image: np.ndarray, blank: bool = False) -> Any:
        if not blank:
            self.fresh = False
        try:
            return self._graph.process(image)
        finally:
            self._native_logs.stop()

    def close(self) -> None:
        self._native_logs.stop()
        self._graph.close()


def bundled_model_files() -> list[Path]:
    """The .tflite files of the pose solution inside the installed mediapipe package."""
    mp = _import_mediapipe()
    base = Path(mp.__file__).parent / "modules"
    files = [base / "pose_detection" / "pose_detection.tflite", base / "pose_landmark" / "pose_landmark_full.tflite"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise GaitdataError(
            f"mediapipe at {base.parent} lacks the BlazePose weights {missing}; "
            f"install the release that ships them: pip install --no-deps mediapipe==0.10.14"
        )
    return files


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime_ns: int) -> bytes:
    """sha256 of a file's content (cached per path, size and modification time: a changed file is hashed again)."""
    return hashlib.sha256(Path(path).read_bytes()).digest()


def bundled_weights_hash() -> str:
    """sha256 over the bundled .tflite files (name and content, in a fixed order)."""
    h = hashlib.sha256()
    for f in bundled_model_files():
        st = f.stat()
        h.update(f.name.encode())
        h.update(_file_digest(str(f), st.st_size, st.st_mtime_ns))
    return h.hexdigest()


def landmarks_to_coco(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """(33, 4) normalised landmarks (x, y, z, visibility) -> (17, 3) pixel x, y and confidence.

    Coordinates are continuous pixels (COCO convention): ``x_px = x_norm * width``.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (33, 4):
        raise ValueError(f"expected (33, 4) BlazePose landmarks, got {lm.shape}")
    sel = lm[list(BLAZEPOSE_TO_COCO)]
    x = sel[:, 0] * width
    y = sel[:, 1] * height
    conf = np.clip(np.nan_to_num(sel[:, 3]), 0.0, 1.0)
    off = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    conf = np.where(off, np.minimum(conf, OFF_IMAGE_CONFIDENCE), conf)
    return np.stack([x, y, conf], axis=1).astype(np.float32)


def box_from_landmarks(landmarks: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """COCO person box (x, y, w, h) from all 33 landmarks, padded and clipped to the image."""
    lm = np.asarray(landmarks, dtype=np.float64)
    x = lm[:, 0] * width
    y = lm[:, 1] * height
    x0, x1, y0, y1 = x.min(), x.max(), y.min(), y.max()
    ext = max(y1 - y0, x1 - x0, 1.0)
    x0, x1 = x0 - BOX_PAD_SIDE * ext, x1 + BOX_PAD_SIDE * ext
    y0, y1 = y0 - BOX_PAD_TOP * ext, y1 + BOX_PAD_BOTTOM * ext
    x0, x1 = float(np.clip(x0, 0, width)), float(np.clip(x1, 0, width))
    y0, y1 = float(np.clip(y0, 0, height)), float(np.clip(y1, 0, height))
    return (x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0))


def person_score(landmarks: np.ndarray) -> float:
    vis = np.clip(np.nan_to_num(np.asarray(landmarks, np.float64)[list(TORSO_LANDMARKS), 3]), 0, 1)
    return float(vis.mean())


def same_joints(a: Pose, b: Pose, tol: float = 0.1, min_joints: int = 6) -> bool:
    """Whether two poses put their joints (confident in both) within ``tol`` box heights of each other.

    Two crops around people who overlap can both return the person in front; their boxes may
    differ (one crop saw more of the other person) while the joints coincide.
    """
    ka, kb = np.asarray(a.keypoints, np.float64), np.asarray(b.keypoints, np.float64)
    both = (ka[:, 2] >= 0.5) & (kb[:, 2] >= 0.5)
    if both.sum() < min_joints:
        return False
    d = np.linalg.norm(ka[both, :2] - kb[both, :2], axis=1)
    return bool(np.median(d) < tol * max(a.bbox[3], b.bbox[3], 1.0))


def crop_window(box: Sequence[float], width: int, height: int, context: float = 1.3) -> tuple[int, int, int]:
    """A square window (x0, y0, side) around a box, ``context`` times its longer side (may leave the image)."""
    x, y, w, h = (float(v) for v in box)
    side = max(int(round(max(w, h) * context)), 16)
    cx, cy = x + w / 2, y + h / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def crop_square(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """Cut ``side`` x ``side`` pixels at (x0, y0), padding with black outside the image."""
    h, w = image.shape[:2]
    out = np.zeros((side, side, 3), dtype=np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def crop_person(image: np.ndarray, boxes: np.ndarray, keep: int, x0: int, y0: int, side: int) -> np.ndarray:
    """The square crop (x0, y0, side) for box ``keep``, other boxes' pixels outside it blanked.

    Only the crop is copied and blanked (not the whole frame); the fill is the crop's mean colour.
    """
    crop = crop_square(image, x0, y0, side)
    if len(boxes) < 2:
        return crop
    b = np.asarray(boxes, np.float64)[:, :4] - np.array([x0, y0, 0.0, 0.0])
    kx, ky, kw, kh = b[keep]
    others = [j for j in range(len(b)) if j != keep and _overlaps_square(b[j], side)]
    if not others:
        return crop
    fill = crop.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    m = np.zeros((side, side), bool)
    for j in others:
        x, y, w, h = b[j]
        m[int(max(y, 0)) : int(max(min(y + h, side), 0)), int(max(x, 0)) : int(max(min(x + w, side), 0))] = True
    m[int(max(ky, 0)) : int(max(min(ky + kh, side), 0)), int(max(kx, 0)) : int(max(min(kx + kw, side), 0))] = False
    crop[m] = fill
    return crop


def _overlaps_square(box: np.ndarray, side: int) -> bool:
    """Whether an (x, y, w, h) box in crop coordinates overlaps the ``side`` x ``side`` crop."""
    x, y, w, h = box
    return x < side and y < side and x + w > 0 and y + h > 0


@dataclass(frozen=True)
class PreparedCrops:
    """Crops cut ahead for one image's boxes (see :meth:`MediaPipeTeacher.prepare`)."""

    boxes: np.ndarray  # (N, 4) x, y, w, h they were cut for
    items: list  # (box, x0, y0, side) per crop
    crops: list  # crop_size x crop_size RGB crops

    def fits(self, boxes: np.ndarray) -> bool:
        """Whether these are the crops of exactly ``boxes`` (same boxes, same order: blanking depends on all)."""
        return boxes.shape[0] == self.boxes.shape[0] and np.array_equal(boxes[:, :4], self.boxes)


class MediaPipeTeacher:
    """BlazePose full as a :class:`pseudolabel.registry.Teacher` (see the module docstring)."""

    cfg = MEDIAPIPE_CONFIG

    def __init__(
        self,
        mode: str = "video",
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        crop_context: float = 1.3,
        min_box_iou: float = 0.2,
        nms_iou: float = 0.6,
        crop_size: int = 256,
        search_empty: bool = True,
        crop_workers: int = 2,
    ) -> None:
        if mode not in ("video", "static"):
            raise ValueError(f"mediapipe teacher: mode must be 'video' or 'static', got {mode!r}")
        self._mp = _import_mediapipe()
        self.mode = mode
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.crop_context = float(crop_context)
        self.min_box_iou = float(min_box_iou)
        self.nms_iou = float(nms_iou)
        if crop_size < 64:
            raise ValueError(f"mediapipe teacher: crop_size must be at least 64, got {crop_size}")
        self.crop_size = int(crop_size)
        self.search_empty = bool(search_empty)
        if crop_workers < 1:
            raise ValueError(f"mediapipe teacher: crop_workers must be at least 1, got {crop_workers}")
        self.crop_workers = int(crop_workers)
        self._lanes: dict[int, list[Any]] = {}  # lane -> [tracking graph, static graph] for crops
        self._pool: Any = None
        self.weights_hash: str | None = bundled_weights_hash()
        self._video: Any = None
        self._static: Any = None
        self._spare: Any = None  # (boxes, future of a started graph) for the next recording (see warm_spare)

    # ---- mediapipe graphs -----------------------------------------------------------------------
    def _make(self, static: bool) -> Any:
        native_logs = filtered_native_logs().start()
        try:
            graph = self._mp.solutions.pose.Pose(
                static_image_mode=static,
                model_complexity=1,
                smooth_landmarks=False,  # smoothing is a post-processing choice recorded with the labels
                enable_segmentation=False,
                min_detection_confidence=self.min_detection_confidence,
                min_tracking_confidence=self.min_tracking_confidence,
            )
        except BaseException:
            native_logs.stop()
            raise
        return _Graph(graph, native_logs)

    def _graph(self, static: bool) -> Any:
        if static:
            if self._static is None:
                self._static = self._make(True)
            return self._static
        if self._video is None:
            self._video = self._make(False)
        return self._video

    def _lane(self, k: int) -> list[Any]:
        """[tracking graph (video mode), static graph] of crop lane ``k``; the tracking graph is made
        here, the static one when a crop first needs it (lane 0's is the shared static graph)."""
        if k not in self._lanes:
            self._lanes[k] = [None, None]
        lane = self._lanes[k]
        if self.mode == "video" and lane[0] is None:
            lane[0] = self._make(False)
        return lane

    @staticmethod
    def _landmarks(result: Any) -> np.ndarray | None:
        if result.pose_landmarks is None:
            return None
        return np.array([(p.x, p.y, p.z, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float64)

    def _run(self, image: np.ndarray, static: bool, graph: Any = None, blank: bool = False) -> np.ndarray | None:
        img = np.ascontiguousarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"mediapipe teacher: expected an RGB uint8 HxWx3 image, got {img.shape} {img.dtype}")
        with warnings.catch_warnings():  # mediapipe 0.10.14 calls a protobuf API deprecated in 4.x
            warnings.simplefilter("ignore", UserWarning)
            return self._landmarks((graph or self._graph(static)).process(img, blank=blank))

    def _run_crop(self, crop: np.ndarray, lane: int = 0) -> np.ndarray | None:
        """Landmarks of the person a crop was cut for (tracking graph first in video mode, then static)."""
        graphs = self._lane(lane)
        if graphs[0] is not None:
            lm = self._run(crop, False, graphs[0])
            if lm is not None:
                return lm
        if graphs[1] is None:  # (a lane's graphs are only ever used by one thread at a time)
            graphs[1] = self._graph(True) if lane == 0 else self._make(True)
        return self._run(crop, True, graphs[1])

    def _run_crops(self, crops: list[np.ndarray]) -> list[np.ndarray | None]:
        """Landmarks per crop. Crop j goes to lane ``j % lanes``; lanes run in parallel threads, each
        through its own graphs in a fixed order, so the result does not depend on thread timing."""
        lanes = min(self.crop_workers, len(crops))
        if lanes <= 1:
            return [self._run_crop(c, 0) for c in crops]
        from concurrent.futures import ThreadPoolExecutor

        for k in range(lanes):  # tracking graphs are made here, in one thread
            self._lane(k)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.crop_workers, thread_name_prefix="gaitdata-mediapipe")
        futs = [self._pool.submit(lambda k: [self._run_crop(c, k) for c in crops[k::lanes]], k) for k in range(lanes)]
        parts = [f.result() for f in futs]
        return [parts[j % lanes][j // lanes] for j in range(len(crops))]

    # ---- Teacher protocol -------------------------------------------------------------------------
    def pose_from_landmarks(self, lm: np.ndarray, width: int, height: int, extras: dict | None = None) -> Pose:
        return Pose(
            bbox=box_from_landmarks(lm, width, height),
            score=person_score(lm),
            keypoints=landmarks_to_coco(lm, width, height),
            extras=extras or {},
        )

    def prepare(self, image: np.ndarray, boxes: np.ndarray | None) -> PreparedCrops | None:
        """The crops :meth:`predict` would cut for ``boxes`` in ``image``, cut ahead of time.

        A pure function of the image, the boxes and the teacher's settings, safe to call from other
        threads (the labelling run calls it in its frame-decoding threads, for the boxes detected
        there); :meth:`predict` uses them only where the boxes it is given are exactly these.
        """
        if boxes is None:
            return None
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size == 0:
            return None
        boxes = boxes.reshape(-1, boxes.shape[-1])
        return PreparedCrops(boxes[:, :4].copy(), *self._cut(image, boxes))

    def _cut(self, image: np.ndarray, boxes: np.ndarray) -> tuple[list[tuple[np.ndarray, int, int, int]], list[np.ndarray]]:
        """(box, x0, y0, side) and the ``crop_size`` square crop of each usable box (others blanked)."""
        import cv2

        h, w = image.shape[:2]
        items: list[tuple[np.ndarray, int, int, int]] = []
        crops: list[np.ndarray] = []
        for i, box in enumerate(boxes[:, :4]):
            if box[2] <= 1 or box[3] <= 1:
                continue
            x0, y0, side = crop_window(box, w, h, self.crop_context)
            crop = crop_person(image, boxes, i, x0, y0, side)
            if side != self.crop_size:  # (area averaging only where linear would alias: it is slow)
                interp = cv2.INTER_AREA if side >= 2 * self.crop_size else cv2.INTER_LINEAR
                crop = cv2.resize(crop, (self.crop_size, self.crop_size), interpolation=interp)
            items.append((box, x0, y0, side))
            crops.append(crop)
        return items, crops

    def predict_one(
        self, image: np.ndarray, boxes: np.ndarray | None = None, prepared: PreparedCrops | None = None
    ) -> list[Pose]:
        h, w = image.shape[:2]
        if boxes is None:
            lm = self._run(image, static=self.mode == "static")
            return [] if lm is None else [self.pose_from_landmarks(lm, w, h)]
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size == 0:
            if not self.search_empty:
                return []
            lm = self._run(image, static=self.mode == "static")
            return [] if lm is None else [self.pose_from_landmarks(lm, w, h)]
        boxes = boxes.reshape(-1, boxes.shape[-1])
        if prepared is not None and prepared.fits(boxes):
            items, crops = prepared.items, prepared.crops
        else:
            items, crops = self._cut(image, boxes)
        found: list[Pose] = []
        for (box, x0, y0, side), lm in zip(items, self._run_crops(crops), strict=True):
            if lm is None:
                continue
            # crop-normalised -> full-image-normalised coordinates
            full = lm.copy()
            full[:, 0] = (lm[:, 0] * side + x0) / w
            full[:, 1] = (lm[:, 1] * side + y0) / h
            pose = self.pose_from_landmarks(full, w, h, extras={"proposal": tuple(float(v) for v in box)})
            if box_iou(pose.bbox, box) >= self.min_box_iou:
                found.append(pose)
        # the same person found from two overlapping crops: keep the better one
        found.sort(key=lambda p: -p.score)
        kept: list[Pose] = []
        for p in found:
            if all(box_iou(p.bbox, q.bbox) < self.nms_iou and not same_joints(p, q) for q in kept):
                kept.append(p)
        return kept

    def predict(
        self,
        images: Sequence[np.ndarray],
        boxes: Sequence[np.ndarray | None] | None = None,
        prepared: Sequence[PreparedCrops | None] | None = None,
    ) -> list[list[Pose]]:
        """Poses per image; ``prepared``: per image, crops cut ahead by :meth:`prepare` (or None)."""
        if boxes is not None and len(boxes) != len(images):
            raise ValueError(f"mediapipe teacher: {len(images)} images but {len(boxes)} box arrays")
        if prepared is not None and len(prepared) != len(images):
            raise ValueError(f"mediapipe teacher: {len(images)} images but {len(prepared)} prepared crop sets")
        return [
            self.predict_one(img, None if boxes is None else boxes[i], None if prepared is None else prepared[i])
            for i, img in enumerate(images)
        ]

    def warm_up(self, boxes: bool = False, size: tuple[int, int] | None = None) -> None:
        """Start the graph the next images go through: crop lane 0's (``boxes``) or the whole-frame one.

        A graph's first run loads its models (about a hundred milliseconds); here that happens on a
        blank image (``crop_size`` square for crops, ``size`` = (width, height) of the frames to come
        for whole frames: frames of another size would make the graph set up again), in which nobody
        is found, so the graph's tracking state stays as fresh as after :meth:`reset`, which keeps it.
        A graph already started and still fresh is not run again.
        """
        if boxes:
            lane = self._lane(0)
            graph = lane[0] if lane[0] is not None else self._graph(True)
        else:
            graph = self._graph(self.mode == "static")
        self._warm(graph, boxes, size)

    def _warm(self, graph: _Graph, boxes: bool, size: tuple[int, int] | None) -> _Graph:
        w, h = (int(v) for v in size) if (size and not boxes) else (self.crop_size, self.crop_size)
        if not (graph.fresh and graph.warm_size == (w, h)):
            self._run(np.zeros((h, w, 3), np.uint8), self.mode == "static", graph, blank=True)
            graph.warm_size = (w, h)
        return graph

    def warm_spare(self, boxes: bool = False, size: tuple[int, int] | None = None) -> None:
        """Start, in a background thread, the tracking graph of the next recording (``boxes`` and
        ``size`` as for :meth:`warm_up`): :meth:`reset` puts it in place of the graph it closes, so
        the next recording starts without loading models. Meanwhile this teacher goes on predicting
        (the spare is a graph of its own). In static mode there is nothing to do (no tracking state:
        its graph is never closed between recordings).
        """
        if self.mode != "video" or self._spare is not None:
            return
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gaitdata-spare-graph")
        self._spare = (boxes, pool.submit(lambda: self._warm(self._make(False), boxes, size)))
        pool.shutdown(wait=False)

    def _take_spare(self) -> tuple[bool, _Graph] | None:
        """The spare graph started by :meth:`warm_spare` (waiting for it), or None."""
        if self._spare is None:
            return None
        boxes, fut = self._spare
        self._spare = None
        return boxes, fut.result()

    def reset(self) -> None:
        """Forget tracking state: the next video-mode frame (or crop) is detected afresh.

        Graphs that have only seen warm-up images hold no state and are kept (started, ready); a
        closed one is replaced by the spare from :meth:`warm_spare`, when there is one.
        """
        spare = self._take_spare()
        if self._video is not None and not self._video.fresh:
            self._video.close()
            self._video = None
        for lane in self._lanes.values():  # lane 0's static graph is the shared one, closed by close()
            if lane[0] is not None and not lane[0].fresh:
                lane[0].close()
                lane[0] = None
        if spare is not None:
            boxes, graph = spare
            lane0 = self._lanes.setdefault(0, [None, None]) if boxes else None
            if lane0 is not None and lane0[0] is None:
                lane0[0] = graph
            elif lane0 is None and self._video is None:
                self._video = graph
            else:
                graph.close()

    def close(self) -> None:
        spare = None
        with contextlib.suppress(Exception):  # a spare that failed to start has nothing to close
            spare = self._take_spare()
        if spare is not None:
            spare[1].close()
        for graph in [self._video] + [lane[0] for lane in self._lanes.values()]:
            if graph is not None:
                graph.close()
        self._video = None
        for k, lane in self._lanes.items():
            if k and lane[1] is not None:
                lane[1].close()
        self._lanes = {}
        if self._static is not None:
            self._static.close()
            self._static = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self) -> None:  # graphs hold native resources
        # Closing a mediapipe graph while the interpreter finalises blocks forever on its worker
        # threads: callers close explicitly (the labelling run does); at exit the OS reclaims it.
        if sys.is_finalizing():
            return
        with contextlib.suppress(Exception):
            self.close()


@register_teacher("mediapipe")
def create_mediapipe(
    weights: str | None = None, device: str = "auto", mode: str = "video", **opts: Any
) -> MediaPipeTeacher:
    """Factory: ``create_teacher("mediapipe", mode="video"|"static")``; weights are bundled."""
    if weights is not None:
        raise GaitdataError(
            f"the mediapipe teacher uses the weights bundled in mediapipe==0.10.14; drop --weights ({weights})"
        )
    if device not in ("auto", "cpu"):
        raise GaitdataError(f"the mediapipe teacher runs on the CPU only; use --device cpu or auto (got {device!r})")
    opts.pop("batch_size", None)
    return MediaPipeTeacher(mode=mode, **opts)
