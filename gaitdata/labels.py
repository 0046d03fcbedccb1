"""Label sets: ``<root>/labels/<name>.parquet``, one row per (frame, person), metadata inside.

Every labelled frame has at least one row: frames without a person get one explicit row with
``person_index = -1`` and ``has_person = False``. Coordinates are pixels of the full-resolution
colour frame in the COCO convention.

**One table, one schema.** ``labels/`` holds nothing but the label-set parquet files, all with
the Arrow schema :data:`LABEL_SCHEMA` (``qa_flags`` is ``list<string>`` even when every list is
empty), so ``pd.read_parquet("ROOT/labels")``, DuckDB's ``read_parquet('ROOT/labels/*.parquet')``
and ``pl.scan_parquet("ROOT/labels")`` read every label set as one table. A label set's metadata
(teacher, settings, thresholds, lineage, ...) is JSON under the key :data:`META_KEY` of the
parquet schema metadata: it is written in the same atomic rename as the rows, so the two can
never disagree, and a copied file keeps its description. Temporaries and the resumable parts of
a labelling run live under ``<root>/.gaitdata/``, never in ``labels/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot, conform
from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_parquet, json_default
from gaitdata.lineage import label_set_lineage

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

META_KEY = b"gaitdata.label_set"  # parquet schema-metadata key holding the label set's JSON metadata
WORK_DIR = ".gaitdata"  # under the root: in-progress work of writers (parts, temporaries)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def label_schema() -> Any:
    """The Arrow schema of every label-set file (a function: pyarrow is imported lazily)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("video_id", pa.string()), ("frame_index", pa.int64()), ("person_index", pa.int64()),
            ("has_person", pa.bool_()), ("bbox_x", pa.float64()), ("bbox_y", pa.float64()),
            ("bbox_w", pa.float64()), ("bbox_h", pa.float64()), ("score", pa.float64()),
            ("keypoints", pa.list_(pa.float64())), ("visibility", pa.list_(pa.int64())),
            ("num_visible", pa.int64()), ("track_id", pa.int64()), ("is_subject", pa.bool_()),
            ("teacher", pa.string()), ("weights_hash", pa.string()), ("qa_flags", pa.list_(pa.string())),
            ("raw_score", pa.float64()),
        ]
    )  # fmt: skip


def check_label_set_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise GaitdataError(f"label set name {name!r} must be letters, digits, '_', '-', '.' (no slashes)")
    return name


def work_dir(root: DatasetRoot) -> Path:
    return root.path / WORK_DIR


def tmp_dir(root: DatasetRoot) -> Path:
    """Where label-set files are written before the rename into ``labels/`` (same filesystem)."""
    return work_dir(root) / "tmp"


def _as_root(root: DatasetRoot | str) -> DatasetRoot:
    return root if isinstance(root, DatasetRoot) else DatasetRoot(root)


def _missing(root: DatasetRoot, name: str) -> GaitdataError:
    have = root.label_sets()
    return GaitdataError(
        f"label set {name!r} not found in {root.labels_dir}; available: {', '.join(have) or 'none'}. "
        f"Create one with: gaitdata label {root.path}"
    )


def read_labels(root: DatasetRoot | str, name: str) -> pd.DataFrame:
    root = _as_root(root)
    path = root.label_path(check_label_set_name(name))
    if not path.is_file():
        raise _missing(root, name)
    return conform(pd.read_parquet(path), LABEL_COLUMNS, str(path))


def meta_from_schema(schema: Any) -> dict:
    """The label-set metadata stored in an Arrow schema (``{}`` when there is none)."""
    raw = (schema.metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def read_label_meta(root: DatasetRoot | str, name: str) -> dict:
    """The label set's metadata (reads the parquet footer only); ``{}`` when the set does not exist."""
    import pyarrow.parquet as pq

    root = _as_root(root)
    path = root.label_path(check_label_set_name(name))
    if not path.is_file():
        return {}
    return meta_from_schema(pq.read_schema(path))


def labels_table(df: pd.DataFrame, name: str) -> Any:
    """The rows as an Arrow table with :func:`label_schema` (sorted, keys checked; no metadata yet)."""
    import pyarrow as pa

    df = conform(df, LABEL_COLUMNS, f"label set {name}")
    df = df.sort_values(["video_id", "frame_index", "person_index"], kind="stable").reset_index(drop=True)
    key = df[["video_id", "frame_index", "person_index"]]
    if key.duplicated().any():
        raise GaitdataError(f"label set {name}: duplicate (video_id, frame_index, person_index) rows")
    df = df.assign(qa_flags=[[] if f is None else [str(x) for x in f] for f in df["qa_flags"]])
    try:
        return pa.Table.from_pandas(df, schema=label_schema(), preserve_index=False).replace_schema_metadata(None)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise GaitdataError(f"label set {name}: rows do not fit the label schema ({exc})") from exc


def table_fingerprint(table: Any) -> str:
    """Digest of a label table's rows, whatever their in-memory layout or the file's metadata.

    The rows are encoded as plain, uncompressed parquet in one row group: an encoding of the
    values alone (null slots and validity buffers leave no trace), so a table read back from a
    file gives the digest of the table that was written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = table.replace_schema_metadata(None).cast(label_schema())
    sink = pa.BufferOutputStream()
    pq.write_table(
        table, sink, compression="none", use_dictionary=False, write_statistics=False,
        row_group_size=max(table.num_rows, 1),
    )  # fmt: skip
    return "sha256:" + hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:32]


def label_set_fingerprint(root: DatasetRoot | str, name: str) -> str | None:
    """The fingerprint of the rows of label set ``name`` (None when it does not exist).

    Taken from the metadata written with the rows; computed from the rows when a tool that
    dropped the metadata rewrote the file.
    """
    import pyarrow.parquet as pq

    root = _as_root(root)
    path = root.label_path(check_label_set_name(name))
    if not path.is_file():
        return None
    fp = meta_from_schema(pq.read_schema(path)).get("fingerprint")
    return fp or table_fingerprint(pq.read_table(path, schema=label_schema()))


def remove_stale_temporaries(folder: Path, prefix: str = ".") -> list[Path]:
    """Delete ``<prefix>*.tmp`` files in ``folder`` that an interrupted writer left behind.

    Call only while holding the root's write lock: a running writer's temporary looks the same.
    """
    removed = []
    if folder.is_dir():
        for p in folder.glob(f"{prefix}*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def write_labels(
    root: DatasetRoot | str, name: str, df: pd.DataFrame, meta: dict, *, lineage: dict | None = None
) -> Path:
    """Write a label set atomically: the rows and ``meta`` in one parquet file.

    ``lineage`` records what the labels were made from (see :mod:`gaitdata.lineage`); without it
    the label set is recorded as made from the current frames of its recordings. A ``lineage``
    or ``fingerprint`` key copied into ``meta`` from another label set is replaced.
    """
    root = _as_root(root)
    check_label_set_name(name)
    table = labels_table(df, name)
    meta = {k: v for k, v in meta.items() if k not in ("lineage", "fingerprint")}
    if lineage is None:
        videos = sorted(set(table.column("video_id").to_pylist()))
        lineage = label_set_lineage(root, videos, command=_command_of(meta, name))
    meta["lineage"] = lineage
    return write_label_file(root, name, table, meta)


def write_label_file(root: DatasetRoot, name: str, table: Any, meta: dict) -> Path:
    """Write a label table (:func:`labels_table`) with ``meta`` and its row fingerprint, atomically."""
    meta = {**meta, "fingerprint": table_fingerprint(table)}
    blob = json.dumps(meta, default=json_default, allow_nan=True).encode("utf-8")
    path = root.label_path(name)
    remove_stale_temporaries(tmp_dir(root), f".{path.name}.")
    atomic_write_parquet(path, table.replace_schema_metadata({META_KEY: blob}), tmp_dir=tmp_dir(root))
    return path


def _command_of(meta: dict, name: str) -> list[str] | None:
    """The command that re-creates a label set written without an explicit lineage, when known."""
    files = meta.get("imported_from")
    if isinstance(files, list) and files:
        return ["gaitdata", "import", "coco", *map(str, files), "--root", "{root}", "--label-set", name, "--overwrite"]
    return None


def encode_keypoints(keypoints: Any) -> list[float]:
    """The ``keypoints`` value of a label row: (K, 3) x, y, confidence -> a flat list of 3K floats.

    The one encoder of the column; :func:`decode_keypoints` is its inverse.
    """
    return np.asarray(keypoints, dtype=np.float64).reshape(-1).tolist()


def decode_keypoints(value: Any, num_keypoints: int) -> np.ndarray:
    """The ``keypoints`` value of a label row -> a new (K, 3) float64 array of x, y, confidence.

    ``num_keypoints`` is K of the label set's schema (``root.keypoint_schema().num_keypoints``).
    A missing value (the "no person" row: ``None`` or empty) decodes to NaN; a value that is not
    3K numbers is an error naming both counts.
    """
    if value is None or len(value) == 0:
        return np.full((num_keypoints, 3), np.nan)
    arr = np.array(value, dtype=np.float64)
    if arr.size != 3 * num_keypoints:
        raise GaitdataError(
            f"a keypoints value holds {arr.size} numbers, expected 3 x {num_keypoints} (x, y, confidence per "
            f"joint of the schema); the label set was written for another keypoint schema"
        )
    return arr.reshape(num_keypoints, 3)


def keypoints_array(df: pd.DataFrame, num_keypoints: int) -> np.ndarray:
    """(N, K, 3) float32 array of x, y, confidence from the ``keypoints`` column (NaN for no-person rows)."""
    out = np.full((len(df), num_keypoints, 3), np.nan, dtype=np.float32)
    for i, kp in enumerate(df["keypoints"]):
        out[i] = decode_keypoints(kp, num_keypoints)
    return out


def visibility_array(df: pd.DataFrame, num_keypoints: int) -> np.ndarray:
    out = np.zeros((len(df), num_keypoints), dtype=np.int8)
    for i, v in enumerate(df["visibility"]):
        if v is not None and len(v):
            out[i] = np.asarray(v, dtype=np.int8)
    return out
