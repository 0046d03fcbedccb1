"""Extraction: recordings -> time-aligned RGB JPEGs + registered raw 16-bit depth PNGs + manifest tables.

Pipeline per recording: index both streams (no pixels) -> plan: pair colour and depth frames by
timestamp (tolerance half a colour frame period, one-to-one, never by index) and choose frames (time
range, target fps, stride, max frames) -> decode just those, packet by packet -> register depth to
colour -> JPEG/PNG encode and write on a thread pool (decode overlaps encode/write) -> per-recording
table part. Recordings run in parallel worker processes that die with the parent. ``--dry-run`` runs
the same decisions and the same plan, and stops before decoding.

Recordings without a depth stream (plain videos, image folders, RealSense files recorded without
depth) are extracted colour-only: the result notes "no depth stream: colour only", ``depth_path``
stays null and ``n_depth_frames`` is 0. When colour and depth never come within the pairing
tolerance of each other (streams of one device need not overlap), the colour frames are written
without depth with status ``no_depth``, every depth frame counts as unpaired and a note gives the gap
and the tolerance. A pair whose depth is not lossless 16-bit fails with the reason (8-bit or lossy
depth has lost the raw units).

Damaged data costs only its own frames: they get status ``decode_error``, the recording row counts
them (``n_decode_error``, ``notes``) and the run's exit status is non-zero unless ``--keep-going``.

Ids never collide silently: a recording whose ``video_id`` already holds another source in the root
(or whose file changed since it was extracted), a source already in the root under another id, and
recordings of one run sharing an id are refused one by one (the batch goes on) unless ``--overwrite``.
A new ``--id-pattern``/``--metadata`` updates subject/session/view/condition of recordings already
extracted without re-extracting them.

Crash safety: a recording's frames are written under ``frames/.staging/<video_id>``; when it is
complete the parent process drops any older version from the manifest, moves the folder into
place, writes the recording's table part (``.gaitdata/parts``: frames first, then the video row,
which marks it complete) and rewrites ``videos.parquet``/``frames.parquet`` atomically from all
parts. A SIGKILL at any moment leaves the manifest referring only to complete recordings; a rerun
removes the killed run's staging leftovers, skips recordings whose part has the same source
fingerprint and options, and produces the same tables as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gaitdata._version import __version__
from gaitdata.dataset import FRAME_COLUMNS, VIDEO_COLUMNS, WRITTEN_STATUSES, DatasetRoot, conform, utc_now
from gaitdata.discover import META_FIELDS, Source, compile_id_pattern, discover, distinguishing_pattern
from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_parquet, file_fingerprint
from gaitdata.lock import tables_lock, writes_root

if TYPE_CHECKING:
    from gaitdata.distributed import RayOptions

PARTS_DIR = ".gaitdata/parts"
STAGING_DIR = "frames/.staging"


@dataclass(frozen=True)
class ExtractOptions:
    """What to extract and how. Options that change the output are part of each recording's fingerprint."""

    stride: int = 1  # keep every n-th frame (after time range / target fps)
    target_fps: float | None = None  # keep the first frame of each 1/target_fps slot
    start_s: float | None = None  # time range, seconds from the first colour frame
    end_s: float | None = None
    max_frames: int | None = None  # per recording
    resize: tuple[int, int] | None = None  # (width, height); -1 keeps the aspect ratio
    jpeg_quality: int = 95
    png_compression: int = 1  # 0-9 (lossless either way)
    workers: int = 0  # processes across recordings; 0 = min(CPUs, recordings)
    threads: int | None = None  # encode/write threads inside one recording; None: see encode_threads()
    overwrite: bool = False  # re-extract recordings already done
    dry_run: bool = False  # discover, index and pair; write nothing
    id_pattern: str | None = None  # e.g. "{subject}/{session}_{view}"
    metadata_csv: str | None = None
    keep_going: bool = False  # tolerate failed recordings (exit status 0)
    reader: str = "auto"  # RealSense reader: auto | pyrealsense2 | python
    images_fps: float = 30.0  # frame rate assumed for image folders without timestamps.csv
    ray: RayOptions | None = None  # run the recordings as tasks on a Ray cluster instead of local processes

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        for name, value, low in (("target fps", self.target_fps, "positive"), ("image folder fps", self.images_fps, "positive"),
                                 ("start time", self.start_s, "non-negative"), ("end time", self.end_s, "positive")):  # fmt: skip
            if value is not None and not (math.isfinite(value) and (value > 0 or (value == 0 and low == "non-negative"))):
                raise ValueError(f"{name} must be a finite, {low} number, got {value}")
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"time range is empty: start {self.start_s} s >= end {self.end_s} s")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max frames must be >= 1, got {self.max_frames}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {self.jpeg_quality}")
        if self.resize is not None:
            w, h = self.resize
            if (w <= 0 and w != -1) or (h <= 0 and h != -1) or (w == -1 and h == -1):
                raise ValueError(
                    f"resize must be WIDTH,HEIGHT with positive values (one may be -1), got {self.resize}"
                )
        if self.reader not in ("auto", "pyrealsense2", "python"):
            raise ValueError(f"reader must be auto, pyrealsense2 or python, got {self.reader!r}")
        if self.id_pattern:
            compile_id_pattern(self.id_pattern)  # a malformed or unknown field: one line, before anything runs
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    def encode_threads(self) -> int:
        """Encode/write threads per recording: as asked, else the CPUs a Ray task reserves (a task
        that reserves one CPU and runs more threads oversubscribes its node), else 2."""
        if self.threads is not None:
            return self.threads
        if self.ray is not None:
            return max(1, math.ceil(self.ray.cpus_per_task))
        return 2

    def output_key(self) -> dict:
        """The options that change what is written (stored in videos.parquet and the fingerprint)."""
        keys = (
            "stride",
            "target_fps",
            "start_s",
            "end_s",
            "max_frames",
            "resize",
            "jpeg_quality",
            "png_compression",
        )
        d = {k: getattr(self, k) for k in keys}
        d["resize"] = list(self.resize) if self.resize else None
        return d


@dataclass(frozen=True)
class RecordingResult:
    video_id: str
    source: str
    kind: str
    status: str  # ok | failed | skipped | planned (dry run)
    error: str | None = None
    n_colour: int = 0
    n_depth: int = 0
    n_written: int = 0  # frames with files (status ok, or no_depth: colour without depth)
    n_no_depth_partner: int = 0  # wanted colour frames not written: no depth within the tolerance
    n_depth_unpaired: int = 0
    n_decode_error: int = 0  # frames lost to damaged data
    seconds: float = 0.0
    reader: str = ""
    notes: tuple[str, ...] = ()
    n_no_depth: int = 0  # colour frames written without depth (the streams do not overlap)


@dataclass(frozen=True)
class ExtractSummary:
    root: Path
    results: tuple[RecordingResult, ...]
    seconds: float
    dry_run: bool = False

    @property
    def n_ok(self) -> int:
        return sum(r.status == "ok" for r in self.results)

    @property
    def n_failed(self) -> int:
        return sum(r.status == "failed" for r in self.results)

    @property
    def n_skipped(self) -> int:
        return sum(r.status == "skipped" for r in self.results)

    @property
    def frames_written(self) -> int:
        return sum(r.n_written for r in self.results if r.status == "ok")

    @property
    def n_frames_lost(self) -> int:
        """Frames lost to damaged data in recordings extracted (now or before) or, in a dry run, planned."""
        return sum(r.n_decode_error for r in self.results if r.status in ("ok", "skipped", "planned"))

    @property
    def ok(self) -> bool:
        """No recording failed and no frame was lost (the rule for a zero exit status)."""
        return self.n_failed == 0 and self.n_frames_lost == 0

    def failures(self) -> list[RecordingResult]:
        return [r for r in self.results if r.status == "failed"]

    def damaged(self) -> list[RecordingResult]:
        return [r for r in self.results if r.status in ("ok", "skipped", "planned") and r.n_decode_error]


# ---- pairing and sampling (pure functions) ------------------------------------------------------------
def pair_by_timestamp(colour_ts: np.ndarray, depth_ts: np.ndarray, tolerance_ms: float) -> np.ndarray:
    """For each colour frame, the position of its depth partner or -1.

    The partner is the nearest depth frame within ``tolerance_ms``; pairing is one-to-one: a depth
    frame nearest to several colour frames goes to the closest one, the others get none (they are
    never given a stale partner).
    """
    colour_ts = np.asarray(colour_ts, dtype=np.float64)
    depth_ts = np.asarray(depth_ts, dtype=np.float64)
    out = np.full(len(colour_ts), -1, dtype=np.int64)
    if len(colour_ts) == 0 or len(depth_ts) == 0:
        return out
    j = np.searchsorted(depth_ts, colour_ts)
    lo = np.clip(j - 1, 0, len(depth_ts) - 1)
    hi = np.clip(j, 0, len(depth_ts) - 1)
    pick = np.where(np.abs(depth_ts[lo] - colour_ts) <= np.abs(depth_ts[hi] - colour_ts), lo, hi)
    dt = np.abs(depth_ts[pick] - colour_ts)
    ok = dt <= tolerance_ms
    best: dict[int, int] = {}
    for i in np.flatnonzero(ok):
        k = int(pick[i])
        if k not in best or dt[i] < dt[best[k]]:
            best[k] = int(i)
    for k, i in best.items():
        out[i] = k
    return out


def select_frames(colour_ts: np.ndarray, options: ExtractOptions) -> np.ndarray:
    """Status per colour frame before decoding: 'ok' (wanted), 'out_of_range' or 'sampled_out'."""
    ts = np.asarray(colour_ts, dtype=np.float64)
    status = np.full(len(ts), "ok", dtype=object)
    if len(ts) == 0:
        return status
    rel_s = (ts - ts[0]) / 1000.0
    if options.start_s is not None:
        status[rel_s < options.start_s - 1e-9] = "out_of_range"
    if options.end_s is not None:
        status[rel_s >= options.end_s - 1e-9] = "out_of_range"
    cand = np.flatnonzero(status == "ok")
    if options.target_fps is not None and len(cand):
        slots = np.floor((rel_s[cand] - rel_s[cand[0]]) * options.target_fps + 1e-6).astype(np.int64)
        first = np.r_[True, slots[1:] != slots[:-1]]
        status[cand[~first]] = "sampled_out"
        cand = cand[first]
    if options.stride > 1:
        status[cand[np.arange(len(cand)) % options.stride != 0]] = "sampled_out"
        cand = cand[:: options.stride]
    if options.max_frames is not None and len(cand) > options.max_frames:
        status[cand[options.max_frames :]] = "sampled_out"
    return status


# ---- the plan of one recording (pure; shared by --dry-run and the real run) ----------------------------
@dataclass(frozen=True)
class FramePlan:
    """What will be written for one recording, decided from its index alone (no pixels)."""

    status: np.ndarray  # per colour frame: ok | no_depth | no_depth_partner | sampled_out | out_of_range
    partner: np.ndarray  # per colour frame: position of its depth partner, -1 if none
    use_depth: bool  # depth frames are decoded, registered and written
    n_depth: int
    n_depth_unpaired: int
    notes: tuple[str, ...]

    @property
    def colour_positions(self) -> np.ndarray:
        return np.flatnonzero(np.isin(self.status, WRITTEN_STATUSES))

    @property
    def depth_positions(self) -> np.ndarray:
        return self.partner[self.colour_positions] if self.use_depth else np.array([], dtype=np.int64)

    def count(self, status: str) -> int:
        return int((self.status == status).sum())


def plan_frames(info, options: ExtractOptions) -> FramePlan:
    """Pair, sample and decide each colour frame's fate; streams that never meet become colour without depth."""
    n_c = len(info.colour)
    if n_c == 0:
        raise GaitdataError(f"{info.path}: the recording has no colour frames")
    status = select_frames(info.colour.ts_ms, options)
    notes = tuple(info.notes)
    if not info.has_depth:
        return FramePlan(status, np.full(n_c, -1, dtype=np.int64), False, 0, 0, notes)
    tolerance = _frame_period_ms(info) / 2
    partner = pair_by_timestamp(info.colour.ts_ms, info.depth.ts_ms, tolerance_ms=tolerance)
    n_depth = len(info.depth)
    if (partner >= 0).any():
        status[(status == "ok") & (partner < 0)] = "no_depth_partner"
        n_unpaired = n_depth - len(set(partner[partner >= 0].tolist()))
        return FramePlan(status, partner, True, n_depth, n_unpaired, notes)
    status[status == "ok"] = "no_depth"
    return FramePlan(status, partner, False, n_depth, n_depth, notes + (_no_overlap_note(info, tolerance, status),))


def _no_overlap_note(info, tolerance: float, status: np.ndarray) -> str:
    c, d = info.colour.ts_ms, info.depth.ts_ms
    j = np.searchsorted(d, c)
    lo, hi = np.clip(j - 1, 0, len(d) - 1), np.clip(j, 0, len(d) - 1)
    gap = float(np.min(np.minimum(np.abs(d[lo] - c), np.abs(d[hi] - c))))
    hint = "; if the files belong together, check the timestamp CSVs" if info.kind == "pair" else ""
    return (f"colour and depth do not overlap in time: the nearest depth frame is {gap:.1f} ms from a colour frame "
            f"(tolerance {tolerance:.1f} ms, half the colour frame period); {int((status == 'no_depth').sum())} "
            f"colour frames written without depth (status no_depth), {len(d)} depth frames unpaired{hint}")  # fmt: skip


def _frame_period_ms(info) -> float:
    """Colour frame period: the median timestamp step (robust to drops), else the stream's nominal fps."""
    steps = np.diff(info.colour.ts_ms)
    if len(steps):
        return float(np.median(steps))
    return 1000.0 / float(info.fps) if info.fps and info.fps > 0 else 1000.0 / 30


def _check_registration(rec, plan: FramePlan) -> None:
    """Depth this toolkit registers itself needs a distortion model the numpy aligner supports."""
    if plan.use_depth and not rec.depth_registered:
        from gaitdata.align import check_models

        try:
            check_models(rec.info.depth_intrinsics, rec.info.colour_intrinsics)
        except ValueError as exc:
            raise GaitdataError(f"{rec.info.path}: {exc}") from None


# ---- fingerprints --------------------------------------------------------------------------------------
def source_fingerprint(src: Source) -> str:
    """Size+hash fingerprint of every file a recording consists of (pair: colour, depth, CSVs, calibration)."""
    h = hashlib.blake2b(digest_size=16)
    paths: list[Path] = []
    if src.kind == "images":
        paths = sorted(p for p in src.path.iterdir() if p.is_file())
    else:
        paths = [src.path]
        if src.kind == "pair" and src.depth_path is not None:
            stem = src.path.stem[: -len("_color")]
            paths += sorted(src.depth_path.iterdir()) if src.depth_path.is_dir() else [src.depth_path]
            paths += [p for p in (src.path.with_suffix(".csv"), src.path.with_name(stem + "_depth.csv"),
                                  src.path.with_name(stem + "_calib.json")) if p.is_file()]  # fmt: skip
        elif src.kind == "video" and src.path.with_suffix(".csv").is_file():
            paths.append(src.path.with_suffix(".csv"))
    if src.kind == "images" or (src.depth_path is not None and src.depth_path.is_dir()):
        # folders of many images: names, sizes and modification times (hashing every image is slow)
        for p in paths:
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
        return f"{len(paths)}f-{h.hexdigest()}"
    parts = [file_fingerprint(p) for p in paths]
    if len(parts) == 1:
        return parts[0]
    h.update("|".join(parts).encode())
    return f"{sum(int(p.split('-')[0]) for p in parts)}-{h.hexdigest()}"


# ---- one recording (runs in a worker process) ------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    src: Source
    root: str
    staging: str  # absolute staging folder for this recording's frames
    options: ExtractOptions
    fingerprint: str


@dataclass
class _Out:
    result: RecordingResult
    video_row: dict
    frames: pd.DataFrame | None = None
    staged: bool = False
    extra: dict = field(default_factory=dict)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return (
        text
        if isinstance(exc, GaitdataError | FileNotFoundError | ValueError)
        else f"{type(exc).__name__}: {text}"
    )


def _video_row(job: _Job, status: str, error: str | None = None, **kw) -> dict:
    src = job.src
    row = {
        "video_id": src.video_id, "source_path": str(src.path), "source_rel": src.rel,
        "depth_source_path": str(src.depth_path) if src.depth_path else None, "kind": src.kind,
        "fingerprint": job.fingerprint, "status": status, "error": error,
        "options": json.dumps(job.options.output_key(), sort_keys=True), "tool_version": __version__,
        "extracted_at": utc_now(),
    }  # fmt: skip
    row.update({k: src.meta.get(k) for k in META_FIELDS})
    row.update(kw)
    return row


def _target_size(options: ExtractOptions, w: int, h: int) -> tuple[int, int]:
    if options.resize is None:
        return w, h
    tw, th = options.resize
    if tw == -1:
        tw = max(1, round(w * th / h))
    if th == -1:
        th = max(1, round(h * tw / w))
    return int(tw), int(th)


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def extract_one(job: _Job, tick: Callable[[int], None] | None = None) -> _Out:
    """Extract one recording into its staging folder; never raises for bad input (returns a failed result).

    ``tick(n)`` is called as frames are handed to the writers (progress in the calling process).
    """
    t0 = time.monotonic()
    src = job.src
    try:
        if src.error:
            raise GaitdataError(src.error)
        out = _extract_one(job, t0, tick)
        out.extra["staging"] = job.staging
        return out
    except Exception as exc:  # one bad recording never stops the batch: it is reported and marked failed
        shutil.rmtree(job.staging, ignore_errors=True)
        return _failed(job, _one_line(exc), t0)


def _failed(job: _Job, msg: str, t0: float) -> _Out:
    src = job.src
    if str(src.path) not in msg:
        msg = f"{src.path}: {msg}"
    res = RecordingResult(src.video_id, str(src.path), src.kind, "failed", msg, seconds=time.monotonic() - t0)
    return _Out(res, _video_row(job, "failed", msg, n_written=0))


def _extract_attempt(job: _Job) -> _Out:
    """:func:`extract_one` into a staging folder of this attempt's own (a task Ray retries never
    shares its folder with an attempt that may still be writing); the result names the folder."""
    import uuid

    return extract_one(replace(job, staging=f"{job.staging}.{uuid.uuid4().hex[:12]}"))


def _open(src: Source, options: ExtractOptions):
    from gaitdata.containers import open_recording

    return open_recording(src.path, src.kind, src.depth_path, reader=options.reader, fps=options.images_fps)


def _extract_one(job: _Job, t0: float, tick: Callable[[int], None] | None = None) -> _Out:
    """Open -> plan -> decode and write -> frame table -> recording row."""
    import cv2

    cv2.setNumThreads(1)
    rec = _open(job.src, job.options)
    try:
        plan = plan_frames(rec.info, job.options)
        _check_registration(rec, plan)
        writer = _FrameWriter(Path(job.staging), rec, plan, job.options, tick)
        with writer:
            lost = _decode_and_write(rec, plan, writer)
        status = _final_status(rec.info.path, plan, writer, lost)
        frames = _frame_table(job.src.video_id, rec.info, plan, status)
        return _recording_out(job, rec, plan, writer, frames, t0)
    finally:
        rec.close()


class _FrameWriter:
    """JPEG/PNG encoding and writing on a small thread pool, with a bound on frames in flight."""

    def __init__(self, staging: Path, rec, plan: FramePlan, options: ExtractOptions,
                 tick: Callable[[int], None] | None) -> None:  # fmt: skip
        import cv2

        info = rec.info
        self.staging = staging
        self.source_size = info.colour_size
        self.size = _target_size(options, *info.colour_size)
        self.aligner = None
        if plan.use_depth and not rec.depth_registered:
            from gaitdata.align import Aligner

            self.aligner = Aligner(info.depth_intrinsics, info.colour_intrinsics, info.depth_to_colour, info.depth_scale)
        self.jpeg_params = [cv2.IMWRITE_JPEG_QUALITY, int(options.jpeg_quality)]
        # Huffman-only deflate with the SUB row filter: lossless, ~1.8x faster than OpenCV's default and
        # about as small on noisy 16-bit depth (measured on synthetic 640x480 depth)
        self.png_params = [cv2.IMWRITE_PNG_COMPRESSION, int(options.png_compression),
                           cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]  # fmt: skip
        if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.11
            self.png_params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
        self.written: set[int] = set()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._tick = tick
        self._threads = options.encode_threads()
        self._max_inflight = max(2, 3 * self._threads)
        self._inflight: list[Future] = []
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "rgb").mkdir(parents=True)
        if plan.use_depth:
            (staging / "depth").mkdir()

    def __enter__(self) -> _FrameWriter:
        self._pool = ThreadPoolExecutor(max_workers=self._threads)
        return self

    def __exit__(self, *exc: object) -> None:
        wait(self._inflight)
        self._pool.shutdown(wait=True)

    def submit(self, pos: int, rgb: np.ndarray, depth: np.ndarray | None) -> None:
        if len(self._inflight) >= self._max_inflight:
            _, rest = wait(self._inflight, return_when=FIRST_COMPLETED)
            self._inflight = list(rest)
        self._inflight.append(self._pool.submit(self._work, pos, rgb, depth))
        if self._tick is not None:
            self._tick(1)

    def _work(self, pos: int, rgb: np.ndarray, depth: np.ndarray | None) -> None:
        import cv2

        try:
            (sw, sh), (tw, th) = self.source_size, self.size
            img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            if (tw, th) != (sw, sh):
                img = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", img, self.jpeg_params)
            if not ok:
                raise GaitdataError("JPEG encoding failed")
            _write_file(self.staging / "rgb" / f"{pos:06d}.jpg", buf.tobytes())
            if depth is not None:
                reg = self.aligner(depth) if self.aligner is not None else depth
                if reg.shape != (sh, sw):
                    raise GaitdataError(f"registered depth is {reg.shape[1]}x{reg.shape[0]}, colour {sw}x{sh}")
                if (tw, th) != (sw, sh):
                    reg = cv2.resize(reg, (tw, th), interpolation=cv2.INTER_NEAREST)
                ok, buf = cv2.imencode(".png", reg, self.png_params)
                if not ok:
                    raise GaitdataError("PNG encoding failed")
                _write_file(self.staging / "depth" / f"{pos:06d}.png", buf.tobytes())
            with self._lock:
                self.written.add(pos)
        except Exception as exc:  # recorded per frame, reported as the recording's error
            with self._lock:
                self.errors.append(f"frame {pos}: {_one_line(exc)}")


def _decode_and_write(rec, plan: FramePlan, writer: _FrameWriter) -> set[int]:
    """Decode the planned positions, join each colour frame with its depth partner, hand pairs to the writer.

    Returns the colour positions lost to decoding (the frame or its depth partner could not be decoded).
    """
    colour_pos, depth_pos = plan.colour_positions, plan.depth_positions
    colour_of_depth = {int(d): int(c) for c, d in zip(colour_pos, depth_pos, strict=True)} if plan.use_depth else {}
    pend_c: dict[int, np.ndarray] = {}
    pend_d: dict[int, np.ndarray] = {}
    lost: set[int] = set()
    for stream, pos, arr in rec.frames(colour_pos.tolist(), depth_pos.tolist()):
        if stream == "colour":
            if arr is None:
                lost.add(pos)
            elif not plan.use_depth:
                writer.submit(pos, arr, None)
            elif int(plan.partner[pos]) in pend_d:
                writer.submit(pos, arr, pend_d.pop(int(plan.partner[pos])))
            elif pos not in lost:
                pend_c[pos] = arr
            continue
        c = colour_of_depth.get(pos)
        if c is None:
            continue
        if arr is None:
            lost.add(c)
            pend_c.pop(c, None)
        elif c in pend_c:
            writer.submit(c, pend_c.pop(c), arr)
        elif c not in lost:
            pend_d[pos] = arr
    return lost


def _final_status(path: Path, plan: FramePlan, writer: _FrameWriter, lost: set[int]) -> np.ndarray:
    if writer.errors:
        raise GaitdataError(f"{path}: {len(writer.errors)} frame(s) could not be written, e.g. {writer.errors[0]}")
    status = plan.status.copy()
    never = set(plan.colour_positions.tolist()) - writer.written - lost  # listed in the index, never delivered
    for p in lost | never:
        status[p] = "decode_error"
    if not np.isin(status, WRITTEN_STATUSES).any():
        raise GaitdataError(
            f"{path}: no frame could be written ({int((status == 'decode_error').sum())} decode errors, "
            f"{int((status == 'no_depth_partner').sum())} without a depth partner); check the options and the file"
        )
    return status


def _frame_table(vid: str, info, plan: FramePlan, status: np.ndarray) -> pd.DataFrame:
    """One row per source colour frame: numbers, timestamps, the pair's dt, paths of what was written."""
    n_c = len(info.colour)
    paired = plan.partner >= 0
    if info.has_depth:
        dfn = pd.array([int(info.depth.frame_numbers[k]) if k >= 0 else None for k in plan.partner], dtype="Int64")
        dts = np.where(paired, info.depth.ts_ms[np.maximum(plan.partner, 0)], np.nan)
    else:
        dfn, dts = pd.array([None] * n_c, dtype="Int64"), np.full(n_c, np.nan)
    df = pd.DataFrame({
        "video_id": vid, "frame_index": np.arange(n_c, dtype=np.int64),
        "colour_frame_number": info.colour.frame_numbers, "depth_frame_number": dfn,
        "colour_ts_ms": info.colour.ts_ms, "depth_ts_ms": dts, "status": status.astype(str),
    })  # fmt: skip
    df["dt_ms"] = df["depth_ts_ms"] - df["colour_ts_ms"]
    written = np.isin(status, WRITTEN_STATUSES)
    df["rgb_path"] = np.where(written, [DatasetRoot.rgb_relpath(vid, i) for i in range(n_c)], None)
    with_depth = (status == "ok") & plan.use_depth
    df["depth_path"] = np.where(with_depth, [DatasetRoot.depth_relpath(vid, i) for i in range(n_c)], None)
    return conform(df, FRAME_COLUMNS, "frames")


def _loss_note(n_lost: int, n_colour: int) -> tuple[str, ...]:
    if not n_lost:
        return ()
    return (f"{n_lost} of {n_colour} colour frames could not be decoded (damaged data): status decode_error; "
            f"every other frame was extracted",)  # fmt: skip


def _recording_out(job: _Job, rec, plan: FramePlan, writer: _FrameWriter, frames: pd.DataFrame, t0: float) -> _Out:
    """The videos.parquet row and the run's result for an extracted recording."""
    info, src = rec.info, job.src
    status = frames["status"]
    n_c, n_written = len(info.colour), int(status.isin(WRITTEN_STATUSES).sum())
    n_lost = int((status == "decode_error").sum()) + int(info.n_unindexed)
    notes = plan.notes + tuple(rec.read_notes) + _loss_note(n_lost, n_c + int(info.n_unindexed))
    (sw, sh), (tw, th) = info.colour_size, writer.size
    intr = info.colour_intrinsics
    if intr is not None and (tw, th) != (sw, sh):
        intr = intr.scaled(tw / sw, th / sh)
    ext = info.depth_to_colour if info.has_depth else None
    row = _video_row(
        job, "ok", None,
        n_colour_frames=n_c, n_depth_frames=plan.n_depth, n_written=n_written, n_depth_unpaired=plan.n_depth_unpaired,
        n_decode_error=n_lost, notes="; ".join(notes) or None,
        fps=float(info.fps), width=tw, height=th, source_width=sw, source_height=sh,
        fx=intr.fx if intr else None, fy=intr.fy if intr else None, cx=intr.cx if intr else None,
        cy=intr.cy if intr else None, distortion_model=intr.model if intr else None,
        distortion_coeffs=list(intr.coeffs) if intr else None,
        depth_scale=float(info.depth_scale) if info.has_depth and info.depth_scale else None,
        depth_to_colour_rotation=list(ext.rotation) if ext is not None else None,
        depth_to_colour_translation=list(ext.translation) if ext is not None else None,
    )  # fmt: skip
    res = RecordingResult(
        src.video_id, str(src.path), src.kind, "ok", None, n_colour=n_c, n_depth=plan.n_depth, n_written=n_written,
        n_no_depth_partner=int((status == "no_depth_partner").sum()), n_depth_unpaired=plan.n_depth_unpaired,
        n_decode_error=n_lost, seconds=time.monotonic() - t0, reader=getattr(rec, "reader_name", ""), notes=notes,
        n_no_depth=int((status == "no_depth").sum()),
    )  # fmt: skip
    return _Out(res, row, frames, staged=True)


def plan_one(src: Source, options: ExtractOptions) -> RecordingResult:
    """Dry run of one recording: open, index and plan exactly as the real run does; decode nothing."""
    t0 = time.monotonic()
    try:
        if src.error:
            raise GaitdataError(src.error)
        rec = _open(src, options)
        try:
            plan = plan_frames(rec.info, options)
            _check_registration(rec, plan)
            n_c = len(rec.info.colour)
            notes = plan.notes + _loss_note(int(rec.info.n_unindexed), n_c + int(rec.info.n_unindexed))
            return RecordingResult(
                src.video_id, str(src.path), src.kind, "planned", None, n_colour=n_c, n_depth=plan.n_depth,
                n_written=len(plan.colour_positions), n_no_depth_partner=plan.count("no_depth_partner"),
                n_depth_unpaired=plan.n_depth_unpaired, n_decode_error=int(rec.info.n_unindexed),
                seconds=time.monotonic() - t0, reader=getattr(rec, "reader_name", ""), notes=notes,
                n_no_depth=plan.count("no_depth"),
            )  # fmt: skip
        finally:
            rec.close()
    except Exception as exc:  # reported per recording, like a real run
        msg = _one_line(exc)
        return RecordingResult(src.video_id, str(src.path), src.kind, "failed",
                               msg if str(src.path) in msg else f"{src.path}: {msg}")  # fmt: skip


# ---- the manifest (parent process only) ---------------------------------------------------------------
class _Manifest:
    """Per-recording table parts (the source of truth) and the merged tables built from them.

    Parts are read once and cached; the merged tables are rewritten after each committed recording,
    at most every ``interval_s`` seconds and at least ten times the last merge's duration apart
    during a run (a large corpus spends at most ~10% of the driver's time merging; a lagging merged
    table only omits recordings, it never refers to missing files), immediately when a recording's
    old frames are about to be removed, and at the end of the run.
    """

    def __init__(self, root: DatasetRoot, interval_s: float = 5.0):
        self.root = root
        self.parts = root.path / PARTS_DIR
        self.interval_s = interval_s
        self._cache: dict[str, tuple[pd.DataFrame, pd.DataFrame | None]] | None = None
        self._last_write = 0.0
        self._last_cost = 0.0  # seconds the last merge took

    def part_paths(self, vid: str) -> tuple[Path, Path]:
        return self.parts / f"{vid}.video.parquet", self.parts / f"{vid}.frames.parquet"

    def existing(self, vid: str) -> dict | None:
        """The recording's row as last committed (None when absent or unreadable: redone)."""
        hit = self._load().get(vid)
        return None if hit is None else hit[0].iloc[0].to_dict()

    def rows(self) -> dict[str, dict]:
        return {vid: v.iloc[0].to_dict() for vid, (v, _) in self._load().items()}

    def clean_leftovers(self) -> None:
        """What a killed run left behind: staging folders and temporary files of interrupted writes."""
        shutil.rmtree(self.root.path / STAGING_DIR, ignore_errors=True)
        for tmp in self.parts.glob(".*.tmp") if self.parts.is_dir() else ():
            tmp.unlink(missing_ok=True)

    def _load(self) -> dict[str, tuple[pd.DataFrame, pd.DataFrame | None]]:
        if self._cache is None:
            self._cache = {}
            vpaths = sorted(self.parts.glob("*.video.parquet")) if self.parts.is_dir() else []
            for vid, vdf in self._video_parts(vpaths).items():
                fpath = self.part_paths(vid)[1]
                ok = vdf["status"].iloc[0] == "ok"
                try:
                    fdf = pd.read_parquet(fpath) if ok and fpath.is_file() else None
                except Exception:  # unreadable part: left out of the tables, redone by the next run
                    continue
                if ok and fdf is None:
                    continue
                self._cache[vid] = (vdf, fdf)
        return self._cache

    @staticmethod
    def _video_parts(paths: list[Path]) -> dict[str, pd.DataFrame]:
        """The one-row video table of each readable part (older parts: new columns null), read as one
        table: per-part pandas overhead would make a 100,000-recording root take an hour to open."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables: dict[str, pa.Table] = {}
        for vpath in paths:
            try:
                table = pq.read_table(vpath)
            except Exception:  # unreadable part: left out of the tables, redone by the next run
                continue
            if table.num_rows == 1:
                tables[vpath.name[: -len(".video.parquet")]] = table
        if not tables:
            return {}
        try:
            df = conform(pa.concat_tables(tables.values(), promote_options="permissive").to_pandas(), VIDEO_COLUMNS, "video parts")
        except Exception:  # parts that do not fit together: conformed one by one, the unfit ones left out
            out = {}
            for vid, table in tables.items():
                with contextlib.suppress(Exception):
                    out[vid] = conform(table.to_pandas(), VIDEO_COLUMNS, vid)
            return out
        return {vid: df.iloc[i : i + 1].reset_index(drop=True) for i, vid in enumerate(tables)}

    def drop(self, vid: str) -> None:
        vpath, fpath = self.part_paths(vid)
        if vpath.exists():
            vpath.unlink()
            self._load().pop(vid, None)
            self.merge(force=True)  # before the old frames go, the tables must stop referring to them
        fpath.unlink(missing_ok=True)

    def remove(self, vid: str) -> None:
        """Take a recording out of the root: its rows, then its frames."""
        self.drop(vid)
        shutil.rmtree(self.root.path / "frames" / vid, ignore_errors=True)

    def update_row(self, vid: str, fields: dict) -> None:
        """Change columns of a committed recording's row (metadata, source path) without touching its frames."""
        vdf, fdf = self._load()[vid]
        vdf = vdf.copy()
        for k, v in fields.items():
            vdf[k] = pd.Series([v], dtype=VIDEO_COLUMNS[k]) if VIDEO_COLUMNS[k] != "object" else [v]
        vdf = conform(vdf, VIDEO_COLUMNS, "videos")
        atomic_write_parquet(self.part_paths(vid)[0], vdf)
        self._cache[vid] = (vdf, fdf)
        self.merge()

    def commit(self, out: _Out, staging: Path) -> None:
        vid = out.result.video_id
        final = self.root.path / "frames" / vid
        if self.existing(vid) is not None:
            self.drop(vid)
        if final.exists():
            shutil.rmtree(final)
        if out.staged:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, final)
        vpath, fpath = self.part_paths(vid)
        if out.frames is not None:
            atomic_write_parquet(fpath, out.frames)
        vdf = conform(pd.DataFrame([out.video_row]), VIDEO_COLUMNS, "videos")
        atomic_write_parquet(vpath, vdf)  # the video part is written last: it marks the recording complete
        self._load()[vid] = (vdf, out.frames)
        self.merge()

    def merge(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_write < max(self.interval_s, 10 * self._last_cost):
            return
        t0 = time.monotonic()
        cache = self._load()
        vids = sorted(cache)
        videos = [cache[v][0] for v in vids]
        vdf = pd.concat(videos, ignore_index=True) if videos else pd.DataFrame(columns=list(VIDEO_COLUMNS))
        fparts = [cache[v][1] for v in vids if cache[v][1] is not None]
        fdf = pd.concat(fparts, ignore_index=True) if fparts else pd.DataFrame(columns=list(FRAME_COLUMNS))
        with tables_lock(self.root.path, exclusive=True):  # readers see both old tables or both new
            self.root.write_frames(fdf)
            self.root.write_videos(vdf)
        self._last_write = time.monotonic()
        self._last_cost = self._last_write - t0


# ---- what to do with each recording (shared by --dry-run and the real run) ----------------------------
@dataclass(frozen=True)
class _Decision:
    action: str  # extract | skip | refuse
    src: Source  # with the metadata to record (this run's, over what the root already holds)
    fingerprint: str = ""
    reason: str | None = None  # refuse: the one-line message
    replaces: str | None = None  # extract: the id the same source had in the root (dropped after commit)
    update: dict = field(default_factory=dict)  # skip: row columns to bring up to date
    prev: dict | None = None


def _present(v: object) -> bool:
    return v is not None and not (isinstance(v, float) and np.isnan(v)) and v is not pd.NA


def _decide(s: Source, rows: dict[str, dict], by_path: dict[str, str], root: Path,
            options: ExtractOptions) -> _Decision:  # fmt: skip
    """Skip, extract or refuse one recording, from the root's rows and this run's options."""
    if s.id_conflict:
        return _Decision("refuse", s, reason=s.id_conflict)
    prev = rows.get(s.video_id)
    if prev is not None:  # metadata the root holds stays unless this run names new values
        s = replace(s, meta={**{k: prev.get(k) for k in META_FIELDS if _present(prev.get(k))}, **s.meta})
    if s.error:
        return _Decision("extract", s, prev=prev)
    try:
        fp = source_fingerprint(s)
    except OSError as exc:
        return _Decision("extract", replace(s, error=f"{s.path}: cannot read ({exc.strerror or exc})"), prev=prev)
    prev_ok = prev is not None and prev.get("status") == "ok"
    if prev_ok and prev.get("fingerprint") != fp and not options.overwrite:
        return _Decision("refuse", s, fp, _other_source_message(s, prev, fp, root), prev=prev)
    other = by_path.get(str(s.path))
    if other is not None and other != s.video_id and not options.overwrite:
        return _Decision("refuse", s, fp, (
            f"{s.path}: already in {root} as video_id {other!r}; this run would add it again as {s.video_id!r} "
            f"(a new --id-pattern or another input root) - extract it with the input root and --id-pattern of its "
            f"first run, or pass --overwrite to move it to {s.video_id!r}"), prev=prev)  # fmt: skip
    replaces = other if other is not None and other != s.video_id else None
    same_options = prev_ok and prev.get("options") == json.dumps(options.output_key(), sort_keys=True)
    if prev_ok and same_options and prev.get("fingerprint") == fp and not options.overwrite:
        update = {k: s.meta.get(k) for k in META_FIELDS if s.meta.get(k) != _or_none(prev.get(k))}
        if prev.get("source_path") != str(s.path):  # the same files, moved: remember where they are now
            update.update(source_path=str(s.path), source_rel=s.rel,
                          depth_source_path=str(s.depth_path) if s.depth_path else None)  # fmt: skip
        return _Decision("skip", s, fp, update=update, prev=prev)
    return _Decision("extract", s, fp, replaces=replaces, prev=prev)


def _or_none(v: object) -> object:
    return v if _present(v) else None


def _other_source_message(s: Source, prev: dict, fp: str, root: Path) -> str:
    vid, old = s.video_id, str(prev.get("source_path"))
    if old == str(s.path):
        return (f"{s.path}: changed since it was extracted as {vid!r} (fingerprint {prev.get('fingerprint')} -> {fp}); "
                f"its frames in {root} are kept - pass --overwrite to re-extract it")  # fmt: skip
    hint = distinguishing_pattern(Path(old), s.path, str(prev.get("kind") or "video"), s.kind)
    fix = (f"give the recordings distinct ids with --id-pattern '{hint}' (ids from the last {hint.count('/') + 1} "
           f"path levels; name fields such as {{subject}} in it)" if hint else "rename one of them")  # fmt: skip
    return (f"{s.path}: video_id {vid!r} in {root} already holds another recording, {old}; not replaced - "
            f"{fix}, or pass --overwrite to replace it")  # fmt: skip


def _meta_note(update: dict) -> tuple[str, ...]:
    meta = {k: v for k, v in update.items() if k in META_FIELDS}
    if not meta:
        return ()
    return ("metadata updated (frames kept): " + ", ".join(f"{k}={v if v is not None else 'null'}" for k, v in meta.items()),)


def _skipped(d: _Decision) -> RecordingResult:
    prev, s = d.prev or {}, d.src

    def n(key: str) -> int:
        v = prev.get(key)
        return int(v) if _present(v) else 0

    return RecordingResult(
        s.video_id, str(s.path), s.kind, "skipped", n_colour=n("n_colour_frames"), n_depth=n("n_depth_frames"),
        n_written=n("n_written"), n_depth_unpaired=n("n_depth_unpaired"), n_decode_error=n("n_decode_error"),
        notes=_meta_note(d.update),
    )  # fmt: skip


def _refused(d: _Decision) -> RecordingResult:
    s = d.src
    return RecordingResult(s.video_id, str(s.path), s.kind, "failed", d.reason)


# ---- the run ---------------------------------------------------------------------------------------
@writes_root("extract", lambda a: [] if a["options"].dry_run else [a["out"]], create=True)
def extract(sources: Sequence[str | os.PathLike] | str | os.PathLike, out: str | os.PathLike,
            options: ExtractOptions = ExtractOptions(), progress: bool = True,
            on_result: Callable[[RecordingResult], None] | None = None) -> ExtractSummary:  # fmt: skip
    """Extract every recording under ``sources`` into the dataset root ``out``; see the module docstring."""
    return _extract(sources, out, options, progress, on_result)


def _extract(sources: Sequence[str | os.PathLike] | str | os.PathLike, out: str | os.PathLike,
             options: ExtractOptions, progress: bool,
             on_result: Callable[[RecordingResult], None] | None) -> ExtractSummary:  # fmt: skip
    t0 = time.monotonic()
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    found = discover(list(sources), options.id_pattern, options.metadata_csv)
    root = DatasetRoot(out)
    if options.dry_run:
        manifest = _Manifest(root)  # read only: what the root already holds decides skips and refusals
        decisions = _decide_all(found, manifest, root.path, options)
        results = tuple(_dry_result(d, options) for d in decisions)
        return ExtractSummary(root.path, results, time.monotonic() - t0, dry_run=True)
    if options.ray is not None:
        from gaitdata.distributed import preflight

        preflight(options.ray)
    root.init(provenance={"extracted_with": f"gaitdata {__version__}"})
    manifest = _Manifest(root)
    manifest.clean_leftovers()
    decisions = _decide_all(found, manifest, root.path, options)
    results: dict[int, RecordingResult] = {}
    jobs: dict[int, tuple[_Job, _Decision]] = {}
    for i, d in enumerate(decisions):
        if d.action == "extract":
            staging = str(root.path / STAGING_DIR / d.src.video_id)
            jobs[i] = (_Job(d.src, str(root.path), staging, options, d.fingerprint), d)
            continue
        results[i] = _skipped(d) if d.action == "skip" else _refused(d)
        if d.action == "skip" and d.update:
            manifest.update_row(d.src.video_id, d.update)
    bar = _Progress(len(found), progress)
    bar.advance(len(results), sum(r.n_written for r in results.values()))
    for r in results.values():
        if on_result is not None:
            on_result(r)

    def finish(i: int, out_: _Out) -> None:
        job, d = jobs[i]
        _commit(manifest, d, out_, Path(out_.extra.get("staging", job.staging)))
        results[i] = out_.result
        bar.advance(1, out_.result.n_written, out_.result)
        if on_result is not None:
            on_result(out_.result)

    try:
        if options.ray is not None:
            _run_on_ray(jobs, options.ray, root.path, finish, bar)
        else:
            _run_jobs(jobs, options, finish, bar)
        manifest.merge(force=True)
    finally:
        bar.close()
        shutil.rmtree(root.path / STAGING_DIR, ignore_errors=True)
    ordered = tuple(results[i] for i in range(len(decisions)) if i in results)
    return ExtractSummary(root.path, ordered, time.monotonic() - t0)


def _decide_all(found: list[Source], manifest: _Manifest, root: Path, options: ExtractOptions) -> list[_Decision]:
    rows = manifest.rows()
    by_path = {str(r.get("source_path")): vid for vid, r in rows.items() if r.get("status") == "ok"}
    decisions = [_decide(s, rows, by_path, root, options) for s in found]
    claimed = {d.src.video_id for d in decisions if d.action == "extract"}
    return [replace(d, replaces=None) if d.replaces in claimed else d for d in decisions]


def _dry_result(d: _Decision, options: ExtractOptions) -> RecordingResult:
    if d.action == "skip":
        return _skipped(d)
    if d.action == "refuse":
        return _refused(d)
    return plan_one(d.src, options)


def _commit(manifest: _Manifest, d: _Decision, out: _Out, staging: Path) -> None:
    """Record a finished recording; a failed one never replaces a recording the root holds under its id."""
    vid = out.result.video_id
    prev = manifest.existing(vid)
    if out.result.status == "failed" and prev is not None and prev.get("status") == "ok":
        return  # e.g. a missing path whose id another, extracted recording holds: reported only
    manifest.commit(out, staging)
    if out.result.status == "ok" and d.replaces is not None:
        manifest.remove(d.replaces)  # --overwrite moved this source to its new id


def _run_jobs(jobs: dict[int, tuple[_Job, _Decision]], options: ExtractOptions,
              finish: Callable[[int, _Out], None], bar: _Progress) -> None:  # fmt: skip
    """Worker processes across recordings (they die with this process), else this process."""
    workers = options.workers or min(os.cpu_count() or 1, max(1, len(jobs)))
    workers = max(1, min(workers, len(jobs) or 1))
    if workers > 1 and not _can_spawn():
        workers = 1  # interactive session / stdin script: worker processes cannot re-import __main__
    done: set[int] = set()
    if workers > 1:
        from concurrent.futures.process import BrokenProcessPool

        from gaitdata.procs import worker_pool

        try:
            with worker_pool(workers) as pool:
                futs = {pool.submit(extract_one, job): i for i, (job, _) in jobs.items()}
                for fut in as_completed(futs):
                    finish(futs[fut], fut.result())
                    done.add(futs[fut])
        except BrokenProcessPool:
            import warnings

            warnings.warn(
                "extraction worker processes could not start (a script that calls extract() needs an "
                "`if __name__ == '__main__':` guard); continuing in this process",
                RuntimeWarning,
                stacklevel=3,
            )
    for i, (job, _) in jobs.items():  # sequential path, or what a broken pool left
        if i not in done:
            bar.start_recording(job.src.video_id)
            finish(i, extract_one(job, bar.tick))


def _run_on_ray(jobs: dict[int, tuple[_Job, _Decision]], ray: RayOptions, root: Path,
                finish: Callable[[int, _Out], None], bar: _Progress) -> None:  # fmt: skip
    """One Ray task per recording; this process commits each result as it comes, like a local run."""
    from gaitdata.distributed import RayPool, TaskLostError
    from gaitdata.procs import as_done

    if not jobs:
        return
    t0 = time.monotonic()
    with RayPool(ray, paths=[root], note=bar.note) as pool:

        def submit(i: int) -> Future:
            return pool.run(f"gaitdata-extract:{jobs[i][0].src.video_id}", _extract_attempt, jobs[i][0])

        for i, fut in as_done(list(jobs), submit, window=2 * pool.slots + 2):
            try:
                out = fut.result()
            except TaskLostError as exc:  # a recording that keeps killing its worker fails alone
                out = _failed(jobs[i][0], str(exc), t0)
            finish(i, out)


def _can_spawn() -> bool:
    """Spawned workers re-import ``__main__``: possible only when it is a real file (or a module)."""
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return bool(getattr(getattr(main, "__spec__", None), "name", None)) or (
        path is not None and Path(path).is_file()
    )


class _Progress:
    """Progress over recordings, with the frames written so far, frames/s, failures and the recording in work."""

    def __init__(self, total: int, enabled: bool):
        from gaitdata.progress import progress_bar

        self._bar = progress_bar(total=total, desc="extract", unit="recording", enabled=enabled)
        self._frames = 0
        self._new = 0  # frames written by this run (skipped recordings excluded): the rate's numerator
        self._live = 0
        self._failed = 0
        self._last = ""
        self._t0 = time.monotonic()

    def _show(self) -> None:
        parts = [f"{self._frames + self._live} frames"]
        dt = time.monotonic() - self._t0
        if dt > 0 and self._new + self._live:
            parts.append(f"{(self._new + self._live) / dt:.1f} frames/s")
        if self._failed:
            parts.append(f"{self._failed} failed")
        if self._last:
            parts.append(self._last)
        self._bar.set_status(", ".join(parts))

    def advance(self, n: int, frames: int, result: RecordingResult | None = None) -> None:
        self._frames += frames
        if result is not None:
            self._new += frames
            self._failed += result.status == "failed"
        self._live = 0
        self._last = f"{result.video_id}: {result.status}" if result else ""
        self._show()
        self._bar.update(n)

    def start_recording(self, video_id: str) -> None:
        self._live = 0
        self._last = f"{video_id}: extracting"
        self._show()

    def tick(self, n: int) -> None:
        """Frames of the recording in progress (in-process extraction only)."""
        self._live += n
        self._show()

    def note(self, text: str) -> None:
        """One line with the bar (e.g. where the work runs)."""
        self._bar.note(text)

    def close(self) -> None:
        self._last = ""
        self._show()
        self._bar.close()


__all__ = ["ExtractOptions", "ExtractSummary", "FramePlan", "RecordingResult", "extract", "pair_by_timestamp",
           "plan_frames", "select_frames", "source_fingerprint"]  # fmt: skip
