"""The labelling run: every extracted frame of a dataset root -> a label set.

``label(root, teacher="mediapipe")`` reads ``frames.parquet``, decodes each recording's frames in
background threads (a bounded queue of ``prefetch`` frames) while the teacher runs on batches,
post-processes the recording as a whole (:mod:`pseudolabel.postprocess`) and writes it as a part,
atomically: ``.gaitdata/labels/<set>/<video_id>.parquet`` under the root, with the fingerprint of
the frames it was made from. When every recording is done the parts are merged into
``labels/<set>.parquet``, whose metadata holds the teacher, its config, weights hash, box source,
post-processing settings and thresholds, tool version, per-recording stats and the lineage (the
frame fingerprint of each recording, see :mod:`gaitdata.lineage`).

Every frame with status ``ok`` gets pose rows or one explicit no-person row. A rerun with the same
settings skips finished recordings whose frames are unchanged (their parts are kept), relabels
the recordings whose frames changed since (re-extracted, resized, ...), and writes the table; a
rerun with different settings needs ``overwrite=True``. Temporary files a killed run left behind
are removed when the next run starts. Nothing is written before the inputs (root, frames on
disk, device, teacher and its extra) have been checked.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gaitdata._version import __version__
from gaitdata.dataset import DatasetRoot, conform, utc_now, written_frames
from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_json, atomic_write_parquet
from gaitdata.labels import (
    LABEL_COLUMNS,
    check_label_set_name,
    decode_keypoints,
    encode_keypoints,
    labels_table,
    remove_stale_temporaries,
    tmp_dir,
    work_dir,
    write_labels,
)
from gaitdata.lineage import frame_fingerprints, label_set_lineage, option
from gaitdata.lock import writes_root
from gaitdata.progress import progress_bar
from gaitdata.records import Pose
from gaitdata.staleness import require_fresh_inputs
from pseudolabel.boxes import BoxProposer, background_positions, make_proposer, read_depth
from pseudolabel.postprocess import (
    PostprocessConfig,
    background_joints_of_poses,
    joint_depths,
    postprocess_recording,
    torso_depth,
)
from pseudolabel.registry import Teacher, check_device, create_teacher

if TYPE_CHECKING:
    from gaitdata.distributed import RayOptions


@dataclass(frozen=True)
class RecordingStats:
    video_id: str
    n_frames: int  # frames labelled (status ok)
    n_persons: int  # person rows
    n_no_person: int  # frames without any person
    n_subject: int  # frames with the gait subject
    n_flagged: int  # person rows with at least one QA flag
    mean_confidence: float  # mean joint confidence over person rows (NaN without persons)
    resumed: bool  # taken from an earlier run's part


class RecordingTotals:
    """Totals over the :class:`RecordingStats` of ``self.recordings`` (a label set's summaries)."""

    recordings: tuple[RecordingStats, ...]

    @property
    def n_frames(self) -> int:
        return sum(r.n_frames for r in self.recordings)

    @property
    def n_persons(self) -> int:
        return sum(r.n_persons for r in self.recordings)

    @property
    def n_no_person(self) -> int:
        return sum(r.n_no_person for r in self.recordings)

    @property
    def n_flagged(self) -> int:
        return sum(r.n_flagged for r in self.recordings)

    @property
    def mean_confidence(self) -> float:
        w = [(r.mean_confidence, r.n_persons) for r in self.recordings if r.n_persons]
        return float(sum(c * n for c, n in w) / sum(n for _, n in w)) if w else float("nan")

    def meta(self) -> dict:
        """The ``summary`` and ``recordings`` entries of the label set's metadata."""
        return {
            "summary": {
                "frames": self.n_frames, "persons": self.n_persons, "frames_without_person": self.n_no_person,
                "mean_confidence": self.mean_confidence, "flagged_persons": self.n_flagged,
            },
            "recordings": {
                r.video_id: {k: v for k, v in r.__dict__.items() if k != "video_id"} for r in self.recordings
            },
        }  # fmt: skip


@dataclass(frozen=True)
class LabelSummary(RecordingTotals):
    root: Path
    label_set: str
    teacher: str
    weights_hash: str | None
    path: Path
    recordings: tuple[RecordingStats, ...]
    seconds: float
    frames_per_second: float  # frames labelled in this run (resumed ones excluded) per second
    relabelled: tuple[str, ...] = ()  # recordings whose earlier part was made from other frames

    @property
    def n_resumed(self) -> int:
        return sum(r.resumed for r in self.recordings)


# ---- input checks -------------------------------------------------------------------------------


def _frames_to_label(
    root: DatasetRoot, videos: list[str] | None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """(videos to label, their written frames, the frame fingerprint of each of those videos)."""
    root.meta()  # raises a clear error when this is not a dataset root
    vids = root.read_videos()
    frames = root.read_frames()
    ok = written_frames(frames)
    if videos is not None:
        unknown = sorted(set(videos) - set(vids["video_id"]))
        if unknown:
            raise GaitdataError(f"{root.path}: unknown video ids {unknown[:5]}; see videos.parquet")
        ok = ok[ok["video_id"].isin(videos)]
    if ok.empty:
        raise GaitdataError(
            f"{root.path} has no extracted frames to label; run: gaitdata extract RECORDINGS --out {root.path}"
        )
    ok = ok.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
    if ok["rgb_path"].isna().any():
        raise GaitdataError(f"{root.frames_path}: written frames without an rgb_path; re-extract the recordings")
    missing = [p for p in ok["rgb_path"] if not (root.path / p).is_file()]
    missing += [p for p in ok["depth_path"].dropna() if not (root.path / p).is_file()]
    if missing:
        raise GaitdataError(
            f"{len(missing)} frame files listed in {root.frames_path} are missing on disk (e.g. {missing[0]}); "
            f"re-extract the affected recordings (gaitdata extract ... --out {root.path}) or run gaitdata validate {root.path}"
        )
    vids = vids[vids["video_id"].isin(ok["video_id"].unique())]
    fps = frame_fingerprints(vids, frames)
    return vids.set_index("video_id", drop=False), ok, fps


# ---- decoding in background threads -------------------------------------------------------------
def _load(
    root: DatasetRoot, fi: int, rgb: str, depth: str | None, want_depth: bool, per_frame: Any = None,
    decoded_depth: dict[str, np.ndarray] | None = None,
) -> tuple[int, np.ndarray, np.ndarray | None, Any]:  # fmt: skip
    import cv2

    if hasattr(cv2, "IMREAD_COLOR_RGB"):  # OpenCV >= 4.10 decodes straight to RGB (no conversion pass)
        img = cv2.imread(str(root.path / rgb), cv2.IMREAD_COLOR_RGB)
    else:
        bgr = cv2.imread(str(root.path / rgb), cv2.IMREAD_COLOR)
        img = None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if img is None:
        raise GaitdataError(f"cannot decode {root.path / rgb}; re-extract this recording (gaitdata extract)")
    d = None
    if want_depth and depth:
        d = decoded_depth.pop(depth, None) if decoded_depth is not None else None
        if d is None:
            d = read_depth(root.path / depth)
    return fi, img, d, (per_frame(fi, img, d) if per_frame is not None else None)


def decoding_threads() -> int:
    """Frame-decoding threads by default: one per CPU this process may use beyond the first (which the
    teacher keeps busy), at most two. On two CPUs a second decoding thread measured slower for the
    default labelling (~5%: the threads then outnumber the cores), never faster."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return min(2, max(1, n - 1))


class _ReaderClosed(Exception):
    """A frame's in-order step given up because its reader was closed first."""


class _Turns:
    """Runs one step of each frame task at a time, in the order the tasks were submitted.

    Task ``seq`` waits until the tasks before it have passed (run their step, failed, or found the
    reader closed); after a task fails, the later ones skip their step (their results are never
    used: the reader raises at the failed frame).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0
        self._closed = False
        self._failed = False

    def run(self, seq: int, step: Any) -> Any:
        """``step()`` in turn ``seq`` (None: this task failed before its step; it only passes its turn)."""
        with self._cond:
            while self._next != seq and not self._closed:
                self._cond.wait()
            if self._closed:
                raise _ReaderClosed
        try:
            if step is None or self._failed:
                self._failed = True
                return None
            return step()
        except BaseException:
            self._failed = True
            raise
        finally:
            with self._cond:
                self._next = seq + 1
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class FrameReader:
    """(frame_index, RGB, depth or None) of ``rows`` in order; decoding runs ahead in ``workers`` threads
    (None: :func:`decoding_threads`).

    Decoding starts when the reader is made (up to ``prefetch`` frames ahead), so the first frames
    are ready when the caller starts iterating; :meth:`close` (or leaving the ``with`` block) stops
    the threads. With ``per_frame(frame_index, rgb, depth)`` (thread-safe, e.g. a box proposer's
    per-frame detection), it runs in those threads too, frames in any order; with
    ``in_order(frame_index, rgb, depth, per_frame_result)`` (e.g. tracking, which needs the frames
    in order), it runs in those threads after ``per_frame``, one frame at a time in frame order.
    The tuples then get the last result as a fourth item.
    ``decoded_depth``: depth frames decoded already, by depth_path (taken out of it when used).
    """

    def __init__(
        self, root: DatasetRoot, rows: pd.DataFrame, want_depth: bool, workers: int | None = None,
        prefetch: int = 16, per_frame: Any = None, decoded_depth: dict[str, np.ndarray] | None = None,
        in_order: Any = None,
    ) -> None:  # fmt: skip
        workers = decoding_threads() if workers is None else workers
        self._items = iter(zip(rows["frame_index"].astype(int), rows["rgb_path"], rows["depth_path"], strict=True))
        self._args = (root, want_depth, per_frame, decoded_depth)
        self._extra = per_frame is not None or in_order is not None
        self._in_order = in_order
        self._turns = _Turns()
        self._seq = 0
        self._pool = ThreadPoolExecutor(max_workers=max(int(workers), 1), thread_name_prefix="gaitdata-decode")
        self._pending: deque = deque()
        for _ in range(max(int(prefetch), 1)):
            if not self._submit():
                break

    def _submit(self) -> bool:
        nxt = next(self._items, None)
        if nxt is None:
            return False
        fi, rgb, dep = nxt
        dep = None if pd.isna(dep) else dep
        self._pending.append(self._pool.submit(self._task, self._seq, fi, rgb, dep))
        self._seq += 1
        return True

    def _task(self, seq: int, fi: int, rgb: str, dep: str | None) -> tuple:
        root, want_depth, per_frame, decoded_depth = self._args
        if self._in_order is None:
            return _load(root, fi, rgb, dep, want_depth, per_frame, decoded_depth)
        try:
            fi, img, d, found = _load(root, fi, rgb, dep, want_depth, per_frame, decoded_depth)
        except BaseException:
            self._turns.run(seq, None)
            raise
        return fi, img, d, self._turns.run(seq, lambda: self._in_order(fi, img, d, found))

    def __iter__(self) -> Iterator[tuple]:
        while self._pending:
            fut = self._pending.popleft()
            self._submit()
            yield fut.result() if self._extra else fut.result()[:3]

    def close(self) -> None:
        self._pending.clear()
        self._turns.close()  # tasks waiting for the turn of a frame that will never run give up
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def iter_frames(
    root: DatasetRoot, rows: pd.DataFrame, want_depth: bool, workers: int | None = None, prefetch: int = 16,
    per_frame: Any = None, decoded_depth: dict[str, np.ndarray] | None = None,
) -> Iterator[tuple]:  # fmt: skip
    """Yield (frame_index, RGB, depth or None) in order, decoded ahead in threads (see :class:`FrameReader`)."""
    with FrameReader(root, rows, want_depth, workers, prefetch, per_frame, decoded_depth) as reader:
        yield from reader


# ---- rows ---------------------------------------------------------------------------------------
def _person_row(video_id: str, fi: int, pi: int, pose: Pose, teacher: str, whash: str | None) -> dict:
    x, y, w, h = pose.bbox
    return {
        "video_id": video_id, "frame_index": fi, "person_index": pi, "has_person": True,
        "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h, "score": float(np.clip(pose.score, 0, 1)),
        "keypoints": encode_keypoints(pose.keypoints),
        "teacher": teacher, "weights_hash": whash, "qa_flags": [],
    }  # fmt: skip


def _empty_row(video_id: str, fi: int, teacher: str, whash: str | None) -> dict:
    return {
        "video_id": video_id, "frame_index": fi, "person_index": -1, "has_person": False,
        "teacher": teacher, "weights_hash": whash, "qa_flags": [], "keypoints": None, "visibility": None,
    }  # fmt: skip


def recording_stats(df: pd.DataFrame, resumed: bool, num_keypoints: int) -> RecordingStats:
    person = df[df["has_person"].fillna(False)]
    conf = [float(np.mean(decode_keypoints(v, num_keypoints)[:, 2])) for v in person["keypoints"]]
    return RecordingStats(
        video_id=str(df["video_id"].iloc[0]),
        n_frames=int(df["frame_index"].nunique()),
        n_persons=len(person),
        n_no_person=int((~df["has_person"].fillna(False)).sum()),
        n_subject=int(person.loc[person["is_subject"].fillna(False), "frame_index"].nunique()),
        n_flagged=int(sum(1 for f in person["qa_flags"] if f is not None and len(f))),
        mean_confidence=float(np.mean(conf)) if conf else float("nan"),
        resumed=resumed,
    )


@dataclass(frozen=True)
class CollectedRecording:
    """One recording after the teacher's pass (:func:`collect_recording`): its raw rows and what
    post-processing (:func:`finish_recording`, which needs no teacher) takes from the pass."""

    video: pd.Series
    n_frames: int
    rows: list[dict]
    depth_m: list[float]  # per row: the person's torso depth (m), NaN without
    near_depths: list[np.ndarray | None]  # per row: each joint's nearest depth (m), None without
    background: np.ndarray | None  # depth background for QA (raw units)
    depth_scale: float
    height: float  # frame height (pixels)
    schema: Any  # the teacher's keypoint schema
    cfg: PostprocessConfig


def collect_recording(
    root: DatasetRoot,
    video: pd.Series,
    frames: pd.DataFrame,
    teacher: Teacher,
    teacher_name: str,
    proposer: BoxProposer | None,
    cfg: PostprocessConfig,
    *,
    batch_size: int = 8,
    workers: int | None = None,
    prefetch: int = 16,
    on_frames: Any = None,
    begun: Future | None = None,
    on_started: Any = None,
) -> CollectedRecording:
    """The teacher's pass over one recording's written frames (see :func:`label_recording`).

    ``begun``: ``proposer.begin`` for this recording, started already (else it starts here);
    ``on_started()`` is called once the teacher has its first frame's result (the run prepares
    the next recording from there).
    """
    vid = str(video["video_id"])
    whash = getattr(teacher, "weights_hash", None)
    has_depth = frames["depth_path"].notna().any()
    scale = video.get("depth_scale")
    depth_scale = float(scale) if scale is not None and not pd.isna(scale) else 0.001
    want_depth = bool(has_depth and (cfg.qa or hasattr(proposer, "background") or cfg.select_subject))
    # Started together, so that the first batch is ready when the loop starts: the proposer's
    # per-recording models (a background thread), the decoding of the first frames (the decoding
    # threads; a proposer's per-frame detections, made there too, wait for its models) and, while
    # the proposer prepares, the teacher's graph for the crops (its first run loads the model)
    if begun is None and proposer is not None:
        begin_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gaitdata-begin")
        begun = begin_pool.submit(proposer.begin, root, video, frames)
        begin_pool.shutdown(wait=False)
    # In the decoding threads: the detections a proposer can make before it has seen the earlier
    # frames (detect_ahead, frames in any order), then, one frame at a time in frame order, its
    # proposals (tracking) and the teacher's crops for them, so the teacher only has to run.
    detect = getattr(proposer, "detect_ahead", None) or getattr(proposer, "detect", None)
    prepare = getattr(teacher, "prepare", None)
    prepare = prepare if callable(prepare) else None

    def detect_when_ready(fi: int, img: np.ndarray, d: np.ndarray | None) -> Any:
        if begun is not None:
            begun.result()
        return detect(fi, img, d) if detect is not None else None

    def propose_in_order(fi: int, img: np.ndarray, d: np.ndarray | None, det: Any) -> tuple[np.ndarray, Any]:
        assert proposer is not None
        boxes = proposer.propose(fi, img, d, det) if detect is not None else proposer.propose(fi, img, d)
        return boxes, (prepare(img, boxes) if prepare is not None else None)

    reader = FrameReader(root, frames, want_depth, workers, prefetch, detect_when_ready if proposer is not None else None,
                         getattr(proposer, "decoded_depth", None),
                         in_order=propose_in_order if proposer is not None else None)  # fmt: skip
    try:
        teacher.reset()  # (after the proposer and the decoding started: it may wait for a spare graph to start)
        warm_up = getattr(teacher, "warm_up", None)
        if begun is not None:
            if callable(warm_up):
                warm_up(boxes=True)
            begun.result()
    except BaseException:
        reader.close()
        if begun is not None:
            wait([begun])
        raise
    # the QA background: a proposer's depth background (depth, people), else the farthest depth over
    # evenly spaced frames, taken from the depth frames the loop decodes anyway
    background = getattr(proposer, "background", None) if (has_depth and cfg.qa) else None
    sampled = background_positions(frames) if (has_depth and cfg.qa and background is None) else set()
    out = CollectedRecording(video, len(frames), [], [], [], background, depth_scale,
                             float(video["height"]) if not pd.isna(video.get("height")) else float("nan"),
                             teacher.cfg.schema, cfg)  # fmt: skip
    qa_background: list[np.ndarray] = []  # the running farthest depth over the sampled frames

    def flush(batch: list[tuple]) -> None:
        imgs = [b[1] for b in batch]
        # (N, 5) x, y, w, h, proposal score: teachers use the first four columns (alphapose also the score);
        # proposals and crops were made in the decoding threads
        if proposer is None:
            poses_of = teacher.predict(imgs)
        else:
            boxes = [ahead[0] for *_, ahead in batch]
            crops = {"prepared": [ahead[1] for *_, ahead in batch]} if prepare is not None else {}
            poses_of = teacher.predict(imgs, boxes, **crops)
        if len(poses_of) != len(batch):
            raise GaitdataError(f"teacher {teacher_name} returned {len(poses_of)} results for {len(batch)} images")
        for (fi, _, d, *_), poses in zip(batch, poses_of, strict=True):
            if d is not None and fi in sampled:
                qa_background.append(d if not qa_background else np.maximum(qa_background.pop(), d))
            _add_rows(out, vid, fi, d, sorted(poses, key=lambda p: (-p.score, p.bbox[0])), teacher_name, whash)
        if on_frames is not None:
            on_frames(len(batch))

    with reader:
        batch: list[tuple] = []
        first = True  # the first frame goes to the teacher alone: it starts while the next are decoded
        for item in reader:
            if np.isnan(out.height):
                out = replace(out, height=float(item[1].shape[0]))
            batch.append(item)
            if first or len(batch) >= batch_size:
                flush(batch)
                batch = []
                if first and on_started is not None:
                    on_started()
                first = False
        if batch:
            flush(batch)
    decoded = getattr(proposer, "decoded_depth", None)
    if decoded:
        decoded.clear()  # those the reader had decoded itself before they were ready: not kept till the next recording
    refine = getattr(teacher, "refine_recording", None)
    if callable(refine):  # a teacher that looks at the whole recording (see pseudolabel.registry)
        refine(out.rows, out.near_depths)
    return replace(out, background=qa_background[0]) if qa_background else out


def _add_rows(out: CollectedRecording, vid: str, fi: int, d: np.ndarray | None, poses: list[Pose],
              teacher_name: str, whash: str | None) -> None:  # fmt: skip
    """The rows of one frame's poses (best first), with their depths."""
    if not poses:
        out.rows.append(_empty_row(vid, fi, teacher_name, whash))
        out.depth_m.append(float("nan"))
        out.near_depths.append(None)
    for pi, p in enumerate(poses):
        out.rows.append(_person_row(vid, fi, pi, p, teacher_name, whash))
        if d is None:
            out.depth_m.append(float("nan"))
            out.near_depths.append(None)
            continue
        dj, near = joint_depths(p.keypoints, d, out.depth_scale)
        out.depth_m.append(torso_depth(p.keypoints, dj, out.cfg))
        out.near_depths.append(near)


def finish_recording(c: CollectedRecording) -> pd.DataFrame:
    """Post-process one recording's rows from :func:`collect_recording` (LABEL_COLUMNS; no teacher needed)."""
    vid = str(c.video["video_id"])
    with_near = [i for i, near in enumerate(c.near_depths) if near is not None]
    bg_joints: list[list[int]] = [[] for _ in c.rows]
    if c.background is not None and with_near:
        found = background_joints_of_poses(
            np.stack([decode_keypoints(c.rows[i]["keypoints"], c.schema.num_keypoints) for i in with_near]),
            np.stack([c.near_depths[i] for i in with_near]), c.background, c.depth_scale, c.cfg,
        )  # fmt: skip
        for i, joints in zip(with_near, found, strict=True):
            bg_joints[i] = joints
    df = conform(pd.DataFrame(c.rows), LABEL_COLUMNS, f"labels of {vid}")
    fps = float(c.video["fps"]) if not pd.isna(c.video.get("fps")) else 30.0
    df = postprocess_recording(
        df, n_frames=c.n_frames, image_height=c.height, fps=fps,
        depth_m=np.asarray(c.depth_m), background_joints=bg_joints, cfg=c.cfg, schema=c.schema,
    )  # fmt: skip
    return conform(df, LABEL_COLUMNS, f"labels of {vid}")


def label_recording(
    root: DatasetRoot,
    video: pd.Series,
    frames: pd.DataFrame,
    teacher: Teacher,
    teacher_name: str,
    proposer: BoxProposer | None,
    cfg: PostprocessConfig,
    **opts: Any,
) -> pd.DataFrame:
    """Label one recording's written frames; returns its post-processed rows (LABEL_COLUMNS).

    The teacher's pass (:func:`collect_recording`, which takes ``opts``: ``batch_size``, ``workers``,
    ``prefetch``, ``on_frames``), then post-processing (:func:`finish_recording`).
    """
    return finish_recording(collect_recording(root, video, frames, teacher, teacher_name, proposer, cfg, **opts))


# ---- one recording's part (this process, or a Ray task) ----------------------------------------
@dataclass(frozen=True)
class _PartJob:
    """One recording to label and write as a part: everything but the teacher and the box proposer."""

    root: str
    video: pd.Series
    frames: pd.DataFrame
    part: str
    frames_fp: str
    teacher_name: str
    cfg: PostprocessConfig
    batch_size: int
    workers: int | None
    prefetch: int


def _label_part(job: _PartJob, model: Teacher, proposer: BoxProposer | None, on_frames: Any = None) -> RecordingStats:
    df = label_recording(
        DatasetRoot(job.root), job.video, job.frames, model, job.teacher_name, proposer, job.cfg,
        batch_size=job.batch_size, workers=job.workers, prefetch=job.prefetch, on_frames=on_frames,
    )  # fmt: skip
    return _write_finished(job, df, model.cfg.schema.num_keypoints)


def _write_finished(job: _PartJob, df: pd.DataFrame, num_keypoints: int) -> RecordingStats:
    _write_part(Path(job.part), df, job.frames_fp)
    return recording_stats(df, resumed=False, num_keypoints=num_keypoints)


def _frame_size(job: _PartJob) -> tuple[int, int] | None:
    """(width, height) of a recording's extracted frames, from its first frame's header."""
    if job.frames.empty:
        return None
    return _image_size(Path(job.root) / str(job.frames["rgb_path"].iloc[0]))


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image, from its header; None when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except OSError:
        return None


def _label_parts_here(
    jobs: list[_PartJob], model: Teacher, proposers: list[BoxProposer | None], on_frames: Any = None,
    written: dict[str, pd.DataFrame] | None = None,
) -> list[RecordingStats]:
    """Label recordings in this process, one after another, each written as a part.

    While the teacher works on recording k (from its first result on), the next recording is
    prepared (the box proposer's per-recording models, ``proposers`` alternating when there are
    two, and the teacher's next graph, ``warm_spare``) and recording k-1 is post-processed and
    written, in threads. A part that fails to be written stops the run (the parts after it are not
    written) and its error is raised; on any error the parts before it are still written (a
    rerun resumes from them). The teacher is closed once the last recording has gone through it
    (while that one is post-processed). ``written``: gets each part's rows, by video id, as written.
    """
    finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gaitdata-finish")
    starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gaitdata-begin")
    failed = threading.Event()
    finishing: list[Future] = []
    waiting: list[tuple[CollectedRecording, _PartJob]] = []  # labelled, not yet handed to the finisher
    spare = getattr(model, "warm_spare", None)

    def finish(c: CollectedRecording, job: _PartJob) -> RecordingStats | None:
        if failed.is_set():
            return None
        try:
            df = finish_recording(c)
            stats = _write_finished(job, df, c.schema.num_keypoints)
            if written is not None:
                written[stats.video_id] = df
            return stats
        except BaseException:
            failed.set()
            raise

    def hand_over() -> None:
        while waiting:
            finishing.append(finisher.submit(finish, *waiting.pop(0)))

    def results() -> list[RecordingStats]:
        return [s for s in (f.result() for f in finishing) if s is not None]

    begun: Future | None = None
    try:
        for k, job in enumerate(jobs):
            if failed.is_set():
                results()  # raises the finisher's error
            ahead: list[Future] = []

            def started(k: int = k, ahead: list[Future] = ahead) -> None:
                hand_over()  # the previous recording is finished while the teacher works on this one
                if k + 1 >= len(jobs):
                    return
                nxt, nxt_proposer = jobs[k + 1], proposers[(k + 1) % len(proposers)]
                if len(proposers) > 1 and nxt_proposer is not None:
                    ahead.append(starter.submit(nxt_proposer.begin, DatasetRoot(nxt.root), nxt.video, nxt.frames))
                if callable(spare):
                    spare(boxes=nxt_proposer is not None, size=None if nxt_proposer is not None else _frame_size(nxt))

            collected = collect_recording(
                DatasetRoot(job.root), job.video, job.frames, model, job.teacher_name, proposers[k % len(proposers)],
                job.cfg, batch_size=job.batch_size, workers=job.workers, prefetch=job.prefetch, on_frames=on_frames,
                begun=begun, on_started=started,
            )  # fmt: skip
            waiting.append((collected, job))
            begun = ahead[0] if ahead else None
        hand_over()
        _close_teacher(model)  # (its graphs' threads end while the last recording is post-processed)
        return results()
    finally:
        hand_over()  # on an error: the recordings labelled before it are still written
        wait(finishing)
        finisher.shutdown(wait=True)
        starter.shutdown(wait=True)


def _proposers(proposer: BoxProposer | None, spec: str, popts: dict, n_recordings: int) -> list[BoxProposer | None]:
    """The run's proposer, and a second one of the same kind when there are several recordings
    (one begins the next recording while the other labels; proposers that read files up front,
    with ``prepare``, are not doubled)."""
    if proposer is None or n_recordings < 2 or callable(getattr(proposer, "prepare", None)):
        return [proposer]
    return [proposer, make_proposer(spec, **popts)]


def _bar_done(bar: Any, total: int) -> Any:
    """Progress for recordings labelled elsewhere: their frames, and recordings done of ``total``."""
    done = 0

    def on_done(n_frames: int) -> None:
        nonlocal done
        done += 1
        bar.set_status(f"{done}/{total} recordings")
        bar.update(n_frames)

    return on_done


# ---- the run ------------------------------------------------------------------------------------
class LabelSettingsChangedError(GaitdataError):
    """A label set's earlier (unfinished or finished) run used other settings: resume needs the same
    settings, relabelling needs ``overwrite=True``."""


PART_FRAMES_KEY = b"gaitdata.frames_fingerprint"  # parquet metadata of a part: the frames it was made from


def parts_dir(root: DatasetRoot, label_set: str) -> Path:
    return work_dir(root) / "labels" / label_set


def _write_part(path: Path, df: pd.DataFrame, frames_fp: str) -> None:
    table = labels_table(df, path.stem)
    atomic_write_parquet(path, table.replace_schema_metadata({PART_FRAMES_KEY: frames_fp.encode()}))


def _reusable_part(path: Path, fr: pd.DataFrame, frames_fp: str) -> pd.DataFrame | None:
    """The rows of an earlier run's part when it covers exactly these frames as they are now."""
    import pyarrow.parquet as pq

    if not path.is_file():
        return None
    recorded = (pq.read_schema(path).metadata or {}).get(PART_FRAMES_KEY)
    if recorded is None or recorded.decode() != frames_fp:
        return None
    done = conform(pd.read_parquet(path), LABEL_COLUMNS, str(path))
    if sorted(done["frame_index"].unique().tolist()) != fr["frame_index"].astype(int).tolist():
        return None
    return done


def _start_parts(root: DatasetRoot, name: str, run_cfg: dict, overwrite: bool) -> Path:
    """The parts folder of this run: an earlier run's with the same settings, or a new one."""
    pdir = parts_dir(root, name)
    run_json = pdir / "run.json"
    final = root.label_path(name)
    remove_stale_temporaries(pdir)  # left by a killed run (one writer at a time holds the root)
    remove_stale_temporaries(tmp_dir(root), f".{final.name}.")
    if overwrite and pdir.exists():
        shutil.rmtree(pdir)
    elif run_json.is_file():
        before = json.loads(run_json.read_text())
        if before != run_cfg:
            changed = sorted(k for k in set(before) | set(run_cfg) if before.get(k) != run_cfg.get(k))
            raise LabelSettingsChangedError(
                f"label set {name!r} was started with other settings ({', '.join(changed)} differ; see {run_json}); "
                f"rerun with the same settings to resume, or pass --overwrite to relabel"
            )
    elif final.is_file() and not overwrite:
        raise GaitdataError(f"label set {name!r} already exists ({final}); pass --overwrite to relabel, or choose --label-set")
    atomic_write_json(run_json, run_cfg)
    return pdir


def _label_command(name: str, teacher: str, weights: Any, boxes: str | None, cfg: PostprocessConfig,
                   videos: list[str] | None, opts: dict[str, Any]) -> list[str]:  # fmt: skip
    """The ``gaitdata label`` command line that makes this label set again."""
    cmd = ["gaitdata", "label", "{root}", "--teacher", teacher, "--label-set", name]
    option(cmd, "--weights", weights)
    option(cmd, "--boxes", boxes, "auto")
    option(cmd, "--smooth", cfg.smooth is not None)
    option(cmd, "--vis-thresholds", ",".join(f"{t:g}" for t in cfg.vis_thresholds), "0.2,0.5")
    option(cmd, "--mode", opts.get("mode"))
    option(cmd, "--no-subject", not cfg.select_subject)
    option(cmd, "--no-qa", not cfg.qa)
    for v in videos or []:
        cmd += ["--video", v]
    return cmd


def _teacher_config(teacher: Teacher) -> dict:
    cfg = teacher.cfg
    return {
        "name": cfg.name, "input_size": list(cfg.input_size) if cfg.input_size else None,
        "mean": list(cfg.mean) if cfg.mean else None, "std": list(cfg.std) if cfg.std else None,
        "channel_order": cfg.channel_order, "schema": cfg.schema.name, "top_down": cfg.top_down,
        "source": cfg.source, "license": cfg.license, "weights_file": cfg.weights_file, "extra": cfg.extra,
    }  # fmt: skip


def _run_proposer(
    root: DatasetRoot, spec: str, box_opts: dict | None, videos: list[str] | None
) -> tuple[BoxProposer | None, dict]:
    """The run's box proposer (None for ``none``) and its options, its inputs checked."""
    if spec.startswith("labels:"):  # boxes taken from a label set made on other frames would be misplaced
        require_fresh_inputs(root, "label", labels=[spec[len("labels:") :]])
    popts = dict(box_opts or {})
    if spec.startswith("json:") and videos is not None and len(videos) == 1:
        popts.setdefault("video", videos[0])  # bare image names in the file belong to that recording
    proposer = None if spec == "none" else make_proposer(spec, **popts)
    prepare = getattr(proposer, "prepare", None)
    if callable(prepare):
        prepare(root)  # read and check the proposer's inputs before anything is written
    return proposer, popts


def _close_teacher(model: Teacher) -> None:
    close = getattr(model, "close", None)
    if callable(close):
        close()


def _json_safe(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


@writes_root("label")
def label(
    root: str | os.PathLike | DatasetRoot,
    teacher: str = "mediapipe",
    label_set: str | None = None,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 8,
    boxes: str | None = "auto",
    progress: bool = True,
    *,
    smooth: str | None = None,
    vis_thresholds: tuple[float, float] = (0.2, 0.5),
    postprocess: PostprocessConfig | None = None,
    select_subject: bool = True,
    qa: bool = True,
    videos: list[str] | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    prefetch: int = 16,
    box_opts: dict | None = None,
    ray: RayOptions | None = None,
    **opts: Any,
) -> LabelSummary:
    """Label every extracted frame of ``root`` with ``teacher``; writes ``labels/<label_set>.parquet``.

    ``boxes``: ``auto`` (``people`` — motion, depth, HOG and tracking combined — for teachers that
    take person boxes: top-down ones and those whose config says ``uses_boxes``; else ``none``),
    ``none``, ``people``, ``depth`` (no box on a frame without depth), ``detector``, ``json:PATH``
    or ``labels:SET`` (see :mod:`pseudolabel.boxes`). ``postprocess`` overrides ``smooth``,
    ``vis_thresholds``, ``select_subject`` and ``qa``. Remaining ``opts`` go to the teacher's
    factory (e.g. ``mode="static"`` for mediapipe).

    ``ray``: label the recordings as Ray tasks, one per recording (see :mod:`gaitdata.distributed`);
    the result is the same label set. Recordings are the unit because post-processing (tracks,
    smoothing, the gait subject, the QA background) and a tracking teacher's state span a whole
    recording, and a recording's part is what a rerun resumes from.
    """
    t0 = time.perf_counter()
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    name = check_label_set_name(label_set or teacher)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    cfg = postprocess or PostprocessConfig(
        vis_thresholds=tuple(vis_thresholds), smooth=smooth, select_subject=select_subject, qa=qa
    )
    if ray is None or not device.startswith("cuda"):  # on Ray, the GPU nodes check their own devices
        check_device(device)
    kwargs: dict[str, Any] = {"device": device, **opts}
    if weights is not None:
        kwargs["weights"] = str(weights)
    # on Ray the teacher here only gives the label set its config and weights hash: the CPU does
    model = create_teacher(teacher, **(kwargs if ray is None else {**kwargs, "device": "cpu"}))
    try:  # (the teacher may be starting a graph already: closed on any error before the run)
        whash = getattr(model, "weights_hash", None)
        spec = boxes if boxes is not None else "none"
        if spec == "auto":  # teachers that take person boxes get the combined proposals; the others none
            spec = "people" if (model.cfg.top_down or model.cfg.extra.get("uses_boxes")) else "none"
        spare = getattr(model, "warm_spare", None)
        if ray is None and spec != "none" and callable(spare):
            spare(boxes=True)  # the graph for the first recording's crops starts while the tables are read
        vids, frames, frames_fps = _frames_to_label(root, videos)
        if ray is None and spec == "none" and callable(spare):  # the whole-frame graph, for frames of the first's size
            spare(boxes=False, size=_image_size(root.path / str(frames["rgb_path"].iloc[0])))
        proposer, popts = _run_proposer(root, spec, box_opts, videos)
        if proposer is None and model.cfg.top_down:
            raise GaitdataError(f"teacher {teacher} is top-down and needs person boxes; use --boxes depth|detector|json:PATH|labels:SET")
        run_cfg = _json_safe(
            {
                "teacher": teacher, "teacher_options": {k: v for k, v in opts.items()}, "weights_hash": whash,
                "boxes": proposer.describe() if proposer is not None else None, "postprocess": cfg.to_dict(),
                "schema": model.cfg.schema.name,
            }
        )  # fmt: skip
        if ray is not None:
            from gaitdata.distributed import preflight

            preflight(ray)
        pdir = _start_parts(root, name, run_cfg, overwrite)
        final = root.label_path(name)
    except BaseException:
        _close_teacher(model)
        raise

    stats: list[RecordingStats] = []
    parts: dict[str, pd.DataFrame] = {}  # rows of the parts resumed or written by this run, by video id
    bar = progress_bar(total=len(frames), unit="frame", desc=f"label {name}", enabled=progress)
    n_new = 0
    relabelled: list[str] = []
    todo: list[_PartJob] = []  # recordings to label
    try:
        for vid, fr in frames.groupby("video_id", sort=True):
            fr = fr.reset_index(drop=True)
            part = pdir / f"{vid}.parquet"
            done = _reusable_part(part, fr, frames_fps[str(vid)])
            if done is not None:
                parts[str(vid)] = done
                stats.append(recording_stats(done, resumed=True, num_keypoints=model.cfg.schema.num_keypoints))
                bar.update(len(fr))
                continue
            if part.is_file():
                relabelled.append(str(vid))
            job = _PartJob(str(root.path), vids.loc[vid], fr, str(part), frames_fps[str(vid)], teacher, cfg,
                           batch_size, workers, prefetch)  # fmt: skip
            n_new += len(fr)
            todo.append(job)
        if todo and ray is None:
            stats += _label_parts_here(todo, model, _proposers(proposer, spec, popts, len(todo)), on_frames=bar.update,
                                       written=parts)  # fmt: skip
        elif todo:
            from pseudolabel.remote import label_on_ray

            stats += label_on_ray(todo, _label_part, ray, teacher, kwargs, spec, popts,
                                  on_done=_bar_done(bar, len(todo)), note=bar.note)  # fmt: skip
        stats.sort(key=lambda r: r.video_id)
    finally:
        bar.close()
        _close_teacher(model)

    merged = pd.concat(  # (the parts labelled on Ray are read back)
        [parts[v] if v in parts else conform(pd.read_parquet(pdir / f"{v}.parquet"), LABEL_COLUMNS, v)
         for v in sorted(frames["video_id"].astype(str).unique())],
        ignore_index=True,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    summary = LabelSummary(
        root=root.path, label_set=name, teacher=teacher, weights_hash=whash, path=final,
        recordings=tuple(stats), seconds=seconds, frames_per_second=n_new / seconds if seconds > 0 else 0.0,
        relabelled=tuple(relabelled),
    )  # fmt: skip
    meta = _json_safe(
        {
            "label_set": name, "teacher": teacher, "teacher_config": _teacher_config(model),
            "teacher_options": run_cfg["teacher_options"], "weights_hash": whash,
            "weights_path": str(getattr(model, "weights_path", weights) or "") or None,
            "device": device, "batch_size": batch_size, "boxes": run_cfg["boxes"],
            "vis_thresholds": list(cfg.vis_thresholds), "postprocess": cfg.to_dict(),
            "keypoint_schema": model.cfg.schema.name, "tool": "gaitdata", "tool_version": __version__,
            "created_at": utc_now(), **summary.meta(),
        }
    )  # fmt: skip
    command = _label_command(name, teacher, weights, boxes, cfg, videos, opts)
    lineage = label_set_lineage(root, frames_fps, command=command, frames=frames_fps)
    write_labels(root, name, merged, meta, lineage=lineage)
    return summary
