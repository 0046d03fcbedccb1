"""Label sets: ``<root>/labels/<name>.parquet`` (one row per (frame, person)) + ``<name>.json`` metadata.

Every labelled frame has at least one row: frames without a person get one explicit row with
``person_index = -1`` and ``has_person = False``. Coordinates are pixels of the full-resolution
colour frame in the COCO convention.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot, conform
from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_json, atomic_write_parquet

LABEL_COLUMNS: dict[str, str] = {
    "video_id": "string",
    "frame_index": "Int64",
    "person_index": "Int64",  # 0.. within the frame; -1 on the explicit "no person" row
    "has_person": "boolean",
    "bbox_x": "float64",  # COCO box: top-left x, y, width, height (pixels)
    "bbox_y": "float64",
    "bbox_w": "float64",
    "bbox_h": "float64",
    "score": "float64",  # person score in [0, 1]
    "keypoints": "object",  # list[float] of length 3K: x, y, confidence per joint
    "visibility": "object",  # list[int] of length K: COCO v in {0, 1, 2}
    "num_visible": "Int64",  # joints with v > 0
    "track_id": "Int64",
    "is_subject": "boolean",  # the gait subject of the recording (bystanders: False)
    "teacher": "string",
    "weights_hash": "string",
    "qa_flags": "object",  # list[str]
    "raw_score": "float64",  # the source's own person score in its own units (e.g. AlphaPose's 0..3.25); null if none
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_label_set_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise GaitdataError(f"label set name {name!r} must be letters, digits, '_', '-', '.' (no slashes)")
    return name


def label_meta_path(root: DatasetRoot, name: str) -> Path:
    return root.labels_dir / f"{name}.json"


def read_labels(root: DatasetRoot | str, name: str) -> pd.DataFrame:
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    path = root.label_path(check_label_set_name(name))
    if not path.is_file():
        have = root.label_sets()
        raise GaitdataError(
            f"label set {name!r} not found in {root.labels_dir}; available: {', '.join(have) or 'none'}. "
            f"Create one with: gaitdata label {root.path}"
        )
    return conform(pd.read_parquet(path), LABEL_COLUMNS, str(path))


def read_label_meta(root: DatasetRoot | str, name: str) -> dict:
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    p = label_meta_path(root, name)
    return json.loads(p.read_text()) if p.is_file() else {}


def write_labels(root: DatasetRoot | str, name: str, df: pd.DataFrame, meta: dict) -> Path:
    """Write a label set atomically (table first, metadata second)."""
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    check_label_set_name(name)
    df = conform(df, LABEL_COLUMNS, f"label set {name}")
    df = df.sort_values(["video_id", "frame_index", "person_index"], kind="stable").reset_index(drop=True)
    key = df[["video_id", "frame_index", "person_index"]]
    if key.duplicated().any():
        raise GaitdataError(f"label set {name}: duplicate (video_id, frame_index, person_index) rows")
    path = root.label_path(name)
    atomic_write_parquet(path, df)
    atomic_write_json(label_meta_path(root, name), meta)
    return path


def keypoints_array(df: pd.DataFrame, num_keypoints: int = 17) -> np.ndarray:
    """(N, K, 3) float32 array of x, y, confidence from the ``keypoints`` column (NaN for no-person rows)."""
    out = np.full((len(df), num_keypoints, 3), np.nan, dtype=np.float32)
    for i, kp in enumerate(df["keypoints"]):
        if kp is not None and len(kp):
            out[i] = np.asarray(kp, dtype=np.float32).reshape(num_keypoints, 3)
    return out


def visibility_array(df: pd.DataFrame, num_keypoints: int = 17) -> np.ndarray:
    out = np.zeros((len(df), num_keypoints), dtype=np.int8)
    for i, v in enumerate(df["visibility"]):
        if v is not None and len(v):
            out[i] = np.asarray(v, dtype=np.int8)
    return out
