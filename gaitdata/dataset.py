"""The dataset root: the single source of truth (the README's "The dataset root" section describes it).

::

    <root>/dataset.json            schema_version, keypoint schema, tool version, provenance
    <root>/videos.parquet          one row per recording
    <root>/frames.parquet          one row per SOURCE colour frame
    <root>/frames/<video_id>/rgb/<n:06d>.jpg
    <root>/frames/<video_id>/depth/<n:06d>.png     uint16, registered to colour, raw units
    <root>/labels/<label_set>.parquet   (nothing else: the folder reads as one table)
    <root>/splits/<name>.json
    <root>/exports/...   <root>/models/...
    <root>/.gaitdata/    in-progress work of writers (resumable parts, temporaries)

Tables store paths relative to the root, never pixels. ``dataset.json`` holds the schema version
of the layout; a root written by an older version is upgraded in place by ``gaitdata migrate``
(:mod:`gaitdata.migrate`), and is refused with that advice until then.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from gaitdata._version import __version__
from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_json, atomic_write_parquet
from gaitdata.lock import tables_lock
from gaitdata.schema import COCO17, KeypointSchema

# 1: label-set metadata in labels/<set>.json sidecars, parts in labels/.parts
# 2: label-set metadata inside the parquet file, one Arrow schema for all label sets
SCHEMA_VERSION = 2

# Column contracts. Readers and writers of each table use exactly these columns (in this order).
VIDEO_COLUMNS: dict[str, str] = {
    "video_id": "string",  # filesystem-safe, stable: derived from the path relative to the input root
    "source_path": "string",  # absolute path of the recording (first file of a pair)
    "source_rel": "string",  # path relative to the input root it was discovered under
    "depth_source_path": "string",  # depth file/folder of a pair, else null
    "kind": "string",  # bag | db3 | pair | video | images
    "fingerprint": "string",  # gaitdata.io.file_fingerprint of the source(s)
    "subject": "string",
    "session": "string",
    "view": "string",
    "condition": "string",
    "status": "string",  # ok | failed
    "error": "string",  # one line: the cause and the fix, for failed recordings
    "n_colour_frames": "Int64",  # colour frames in the container
    "n_depth_frames": "Int64",  # depth frames in the container (0 when there is no depth)
    "n_written": "Int64",  # frames written (status ok or no_depth in frames.parquet)
    "n_depth_unpaired": "Int64",  # depth frames no colour frame was paired with
    "n_decode_error": "Int64",  # frames lost to damaged data (status decode_error, or not indexable)
    "fps": "float64",
    "width": "Int64",  # colour resolution as stored under frames/ (after any resize)
    "height": "Int64",
    "source_width": "Int64",  # colour resolution in the container
    "source_height": "Int64",
    "fx": "float64",  # colour intrinsics of the stored frames
    "fy": "float64",
    "cx": "float64",
    "cy": "float64",
    "distortion_model": "string",
    "distortion_coeffs": "object",  # list[float]
    "depth_scale": "float64",  # metres per depth unit
    "depth_to_colour_rotation": "object",  # list[float] 9, row-major
    "depth_to_colour_translation": "object",  # list[float] 3, metres
    "options": "string",  # JSON of the extraction options used
    "tool_version": "string",
    "extracted_at": "string",  # ISO-8601 UTC
    "notes": "string",  # what extraction noticed, "; "-separated (colour only, no overlap, decode errors, ...)
}

FRAME_COLUMNS: dict[str, str] = {
    "video_id": "string",
    "frame_index": "Int64",  # 0..n_colour_frames-1, in colour stream order
    "colour_frame_number": "Int64",  # the container's own frame number (or index)
    "depth_frame_number": "Int64",  # the paired depth frame's number, null if none
    "colour_ts_ms": "float64",
    "depth_ts_ms": "float64",
    "dt_ms": "float64",  # depth_ts - colour_ts of the pair
    "rgb_path": "string",  # relative to the root; null when not written
    "depth_path": "string",  # relative to the root; null when not written or no depth
    "status": "string",  # see FRAME_STATUSES
}

FRAME_STATUSES = (
    "ok",  # written (rgb, and depth when the recording has depth)
    "no_depth",  # rgb written without depth: the recording's colour and depth never overlap in time
    "sampled_out",  # skipped by stride / target fps / max frames
    "out_of_range",  # outside the requested time range
    "no_depth_partner",  # no depth frame within half a frame period: not written
    "decode_error",  # the container's frame could not be decoded
)
WRITTEN_STATUSES = ("ok", "no_depth")  # frames with files on disk: see written_frames


def written_frames(frames: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frames`` (a ``frames.parquet`` table) whose images are on disk: status ``ok``, and
    ``no_depth`` (colour written without depth: ``depth_path`` is null). Every stage that reads frames
    (labelling, splits, exports, the browser) takes exactly these."""
    return frames[frames["status"].isin(WRITTEN_STATUSES)]


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def conform(df: pd.DataFrame, columns: dict[str, str], table: str) -> pd.DataFrame:
    """Return ``df`` with exactly ``columns`` in order and dtypes; missing optional columns become null."""
    unknown = set(df.columns) - set(columns)
    if unknown:
        raise ValueError(f"{table}: unknown columns {sorted(unknown)}; expected {list(columns)}")
    out = {}
    for c, t in columns.items():
        s = df[c] if c in df.columns else pd.Series([None] * len(df), index=df.index)
        out[c] = s if s.dtype == _dtype(t) else s.astype(t)  # (converting to its own dtype copies for nothing)
    return pd.DataFrame(out).reset_index(drop=True)


@functools.lru_cache(maxsize=64)
def _dtype(name: str) -> Any:
    """The pandas dtype a column type name stands for (``object`` included)."""
    return pd.api.types.pandas_dtype(name)


@dataclass(frozen=True)
class ValidationReport:
    root: Path
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    counts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


class OutdatedRootError(GaitdataError):
    """The root was written by an older gaitdata; ``gaitdata migrate ROOT`` upgrades it."""


class DatasetRoot:
    """Paths and tables of one dataset root. Cheap to create; reads tables on demand."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().resolve()

    # ---- paths ---------------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.path / "dataset.json"

    @property
    def videos_path(self) -> Path:
        return self.path / "videos.parquet"

    @property
    def frames_path(self) -> Path:
        return self.path / "frames.parquet"

    @property
    def labels_dir(self) -> Path:
        return self.path / "labels"

    @property
    def splits_dir(self) -> Path:
        return self.path / "splits"

    @property
    def exports_dir(self) -> Path:
        return self.path / "exports"

    @property
    def models_dir(self) -> Path:
        return self.path / "models"

    @staticmethod
    def rgb_relpath(video_id: str, frame_index: int) -> str:
        return f"frames/{video_id}/rgb/{frame_index:06d}.jpg"

    @staticmethod
    def depth_relpath(video_id: str, frame_index: int) -> str:
        return f"frames/{video_id}/depth/{frame_index:06d}.png"

    def abspath(self, rel: str) -> Path:
        return self.path / rel

    # ---- metadata -------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.meta_path.is_file()

    def init(self, schema: KeypointSchema = COCO17, provenance: dict | None = None) -> dict:
        """Create the root (idempotent): writes ``dataset.json`` if missing."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GaitdataError(
                f"cannot create dataset root {self.path}: {exc.strerror}. Choose a writable --out directory."
            ) from exc
        if not os.access(self.path, os.W_OK):
            raise GaitdataError(f"dataset root {self.path} is not writable. Choose a writable --out directory.")
        if self.exists():
            return self.meta()
        meta = {
            "schema_version": SCHEMA_VERSION,
            "tool": "gaitdata",
            "tool_version": __version__,
            "created_at": utc_now(),
            "keypoint_schema": schema.to_dict(),
            "provenance": provenance or {},
        }
        atomic_write_json(self.meta_path, meta)
        return meta

    def meta(self) -> dict:
        if not self.meta_path.is_file():
            raise GaitdataError(
                f"{self.path} is not a gaitdata dataset root (no dataset.json). "
                f"Create one with: gaitdata extract RECORDINGS... --out {self.path}"
            )
        try:
            meta = json.loads(self.meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise GaitdataError(f"{self.meta_path} is not valid JSON ({exc}); restore it or re-extract.") from exc
        version = meta.get("schema_version")
        if isinstance(version, int) and 1 <= version < SCHEMA_VERSION:
            raise OutdatedRootError(
                f"{self.path} was written by an older gaitdata (dataset schema {version}; this version reads "
                f"{SCHEMA_VERSION}); upgrade it in place with: gaitdata migrate {self.path}"
            )
        if version != SCHEMA_VERSION:
            raise GaitdataError(
                f"{self.meta_path}: dataset schema_version {version} is not supported by gaitdata "
                f"{__version__} (it reads {SCHEMA_VERSION}); upgrade gaitdata or re-extract with this version."
            )
        return meta

    def keypoint_schema(self) -> KeypointSchema:
        return KeypointSchema.from_dict(self.meta()["keypoint_schema"])

    # ---- tables ---------------------------------------------------------------------------------
    def read_videos(self) -> pd.DataFrame:
        if not self.videos_path.is_file():
            return _empty(VIDEO_COLUMNS)
        return conform(pd.read_parquet(self.videos_path), VIDEO_COLUMNS, str(self.videos_path))

    def read_frames(self, video_ids: list[str] | None = None) -> pd.DataFrame:
        if not self.frames_path.is_file():
            return _empty(FRAME_COLUMNS)
        filters = [("video_id", "in", list(video_ids))] if video_ids is not None else None
        df = pd.read_parquet(self.frames_path, filters=filters)
        return conform(df, FRAME_COLUMNS, str(self.frames_path))

    def write_videos(self, df: pd.DataFrame) -> None:
        df = conform(df, VIDEO_COLUMNS, "videos").sort_values("video_id", kind="stable")
        if df["video_id"].duplicated().any():
            dup = df.loc[df["video_id"].duplicated(), "video_id"].tolist()
            raise GaitdataError(f"duplicate video_id(s) {dup[:5]}: two recordings map to one id; check --id-pattern")
        atomic_write_parquet(self.videos_path, df.reset_index(drop=True))

    def write_frames(self, df: pd.DataFrame) -> None:
        df = conform(df, FRAME_COLUMNS, "frames").sort_values(["video_id", "frame_index"], kind="stable")
        atomic_write_parquet(self.frames_path, df.reset_index(drop=True))

    def label_sets(self) -> list[str]:
        if not self.labels_dir.is_dir():
            return []
        return sorted(p.stem for p in self.labels_dir.glob("*.parquet"))

    def label_path(self, name: str) -> Path:
        return self.labels_dir / f"{name}.parquet"

    # ---- validation ----------------------------------------------------------------------------
    def validate(self, check_files: bool = True) -> ValidationReport:
        return validate(self, check_files=check_files)


def validate(root: DatasetRoot | str | os.PathLike, check_files: bool = True) -> ValidationReport:
    """Check the root: metadata readable, keys unique, counts match the recordings, files exist."""
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    errors: list[str] = []
    warnings: list[str] = []
    try:
        root.meta()
    except GaitdataError as exc:
        return ValidationReport(root.path, errors=(str(exc),))
    try:
        with tables_lock(root.path, exclusive=False):  # both tables of one moment, even during an extract
            videos = root.read_videos()
            frames = root.read_frames()
    except Exception as exc:  # a corrupt parquet: report, do not crash
        return ValidationReport(root.path, errors=(f"cannot read tables: {exc}",))

    if videos["video_id"].duplicated().any():
        errors.append(f"videos.parquet: duplicate video_id {videos.loc[videos.video_id.duplicated(), 'video_id'].tolist()[:5]}")
    key = frames[["video_id", "frame_index"]]
    if key.duplicated().any():
        errors.append(f"frames.parquet: {int(key.duplicated().sum())} duplicate (video_id, frame_index) keys")
    unknown = set(frames["video_id"]) - set(videos["video_id"])
    if unknown:
        errors.append(f"frames.parquet: frames of unknown videos {sorted(unknown)[:5]}")
    bad_status = set(frames["status"].dropna()) - set(FRAME_STATUSES)
    if bad_status:
        errors.append(f"frames.parquet: unknown frame status {sorted(bad_status)}")

    per_video = frames.groupby("video_id", sort=False)
    for v in videos.itertuples(index=False):
        if v.status != "ok":
            if v.video_id in per_video.groups and per_video.get_group(v.video_id)["status"].isin(WRITTEN_STATUSES).any():
                errors.append(f"{v.video_id}: marked {v.status} but has written frames")
            continue
        if v.video_id not in per_video.groups:
            errors.append(f"{v.video_id}: status ok but no rows in frames.parquet")
            continue
        fr = per_video.get_group(v.video_id)
        n = len(fr)
        if not pd.isna(v.n_colour_frames) and n != int(v.n_colour_frames):
            errors.append(f"{v.video_id}: frames.parquet has {n} rows, the recording has {int(v.n_colour_frames)} colour frames")
        idx = fr["frame_index"].to_numpy()
        if sorted(idx.tolist()) != list(range(n)):
            errors.append(f"{v.video_id}: frame_index is not 0..{n - 1}")
        n_ok = int(fr["status"].isin(WRITTEN_STATUSES).sum())
        if not pd.isna(v.n_written) and n_ok != int(v.n_written):
            errors.append(f"{v.video_id}: {n_ok} frames written (status ok/no_depth), videos.parquet says n_written={int(v.n_written)}")
        ts = fr.sort_values("frame_index")["colour_ts_ms"].dropna().to_numpy()
        if len(ts) > 1 and (ts[1:] <= ts[:-1]).any():
            errors.append(f"{v.video_id}: colour timestamps are not strictly increasing")

    if check_files:
        ok = written_frames(frames)
        missing = []
        for col in ("rgb_path", "depth_path"):
            for rel in ok[col].dropna():
                if not (root.path / rel).is_file():
                    missing.append(rel)
        if missing:
            errors.append(f"{len(missing)} referenced frame files are missing, e.g. {missing[:3]}")
        if ok["rgb_path"].isna().any():
            errors.append(f"{int(ok['rgb_path'].isna().sum())} frames with status ok/no_depth have no rgb_path")

    counts = {
        "videos": len(videos),
        "videos_ok": int((videos["status"] == "ok").sum()),
        "videos_failed": int((videos["status"] == "failed").sum()),
        "frames": len(frames),
        "frames_written": int(frames["status"].isin(WRITTEN_STATUSES).sum()),
        "label_sets": root.label_sets(),
    }
    return ValidationReport(root.path, errors=tuple(errors), warnings=tuple(warnings), counts=counts)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
