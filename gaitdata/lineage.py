"""Lineage records: the fingerprints of exactly what each derived artefact was made from.

The data flows one way (recordings -> frames -> labels -> splits -> exports -> models), and each
derived artefact stores a small record of its inputs when it is written:

* a **label set** (in its metadata): per recording, the fingerprint of that recording's frames,
  and for a label set derived from others (a reviewed copy), their row fingerprints;
* a **split** (``inputs.lineage`` of the split file): the label set it was weighted by (name and
  row fingerprint) and the frame fingerprints of its recordings;
* an **export** (``info.lineage`` of each COCO file): the label set and the split (name and
  content hash);
* a **model run** (``lineage`` in the run's ``config.json``): the SHA-256 of the export files it
  was trained on.

Every record also keeps the command that makes the artefact again (``"{root}"`` stands for the
dataset root). :mod:`gaitdata.staleness` compares the records with the root as it is now.

A recording's **frame fingerprint** is computed from the tables, not from the images: the
recording's source fingerprint, its extraction options (those that change what is written) and
its rows of ``frames.parquet`` (frame index, status, paths, timestamps). A re-extraction with
other options (``--resize``, ``--stride``, a time range...) or from another source changes it;
re-extracting the same source with the same options gives the same frames and keeps it.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot

LINEAGE_VERSION = 1
FRAME_FINGERPRINT_COLUMNS = ("frame_index", "status", "rgb_path", "depth_path", "colour_ts_ms", "depth_ts_ms")
ROOT_TOKEN = "{root}"


class _Column:
    """One ``frames.parquet`` column as bytes that slice per recording (NA and NaN made canonical)."""

    def __init__(self, values: pd.Series):
        self.missing = values.isna().to_numpy(dtype=bool)
        if pd.api.types.is_float_dtype(values.dtype):
            self.kind = "f"
            self.data = np.where(self.missing, 0.0, values.to_numpy(dtype=np.float64, na_value=0.0)).astype("<f8")
        elif pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            self.kind = "i"
            self.data = values.to_numpy(dtype=np.int64, na_value=0).astype("<i8")
        else:
            self.kind = "s"
            self.data = ["" if m else str(v) for v, m in zip(values.tolist(), self.missing.tolist(), strict=True)]

    def feed(self, h: Any, a: int, b: int) -> None:
        h.update(self.kind.encode() + self.missing[a:b].tobytes())
        if self.kind == "s":
            h.update("\x1f".join(self.data[a:b]).encode("utf-8", "surrogatepass"))
        else:
            h.update(self.data[a:b].tobytes())


def _options(text: Any) -> Any:
    if text is None or (isinstance(text, float) and pd.isna(text)) or text is pd.NA:
        return None
    try:
        return json.loads(str(text))
    except json.JSONDecodeError:
        return str(text)


def frame_fingerprints(
    videos: pd.DataFrame, frames: pd.DataFrame, video_ids: Iterable[str] | None = None
) -> dict[str, str]:
    """``{video_id: fingerprint}`` of the recordings in ``videos`` (or only ``video_ids``).

    ``videos``/``frames`` are the root's ``videos.parquet``/``frames.parquet`` tables.
    """
    wanted = None if video_ids is None else set(map(str, video_ids))
    vids = videos if wanted is None else videos[videos["video_id"].astype(str).isin(wanted)]
    fr = frames[frames["video_id"].astype(str).isin(set(vids["video_id"].astype(str)))]
    fr = fr.sort_values(["video_id", "frame_index"], kind="stable")
    keys = fr["video_id"].astype(str).to_numpy()
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
    ends = [*starts[1:].tolist(), len(keys)] if len(keys) else []
    bounds = dict(zip(keys[starts].tolist(), zip(starts.tolist(), ends, strict=True), strict=True))
    columns = [_Column(fr[c]) for c in FRAME_FINGERPRINT_COLUMNS]  # converted once, sliced per video
    out: dict[str, str] = {}
    for vid, source, options in zip(
        vids["video_id"].astype(str), vids["fingerprint"], vids["options"], strict=True
    ):
        a, b = bounds.get(vid, (0, 0))
        src = None if source is None or source is pd.NA or (isinstance(source, float) and pd.isna(source)) else str(source)
        head = {"source": src, "options": _options(options), "rows": b - a, "columns": FRAME_FINGERPRINT_COLUMNS}
        h = hashlib.sha256(json.dumps(head, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
        for col in columns:
            col.feed(h, a, b)
        out[vid] = "sha256:" + h.hexdigest()[:32]
    return out


def root_frame_fingerprints(root: DatasetRoot, video_ids: Iterable[str] | None = None) -> dict[str, str]:
    """:func:`frame_fingerprints` of the root's tables as they are now."""
    ids = None if video_ids is None else list(video_ids)
    return frame_fingerprints(root.read_videos(), root.read_frames(ids), ids)


def label_set_lineage(
    root: DatasetRoot,
    video_ids: Iterable[str],
    *,
    command: list[str] | None = None,
    frames: dict[str, str] | None = None,
    sources: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """The lineage of a label set covering ``video_ids``.

    ``frames``: the frame fingerprints the labels were made from (default: the current ones);
    ``sources``: ``{label set: row fingerprint}`` of the label sets it was derived from.
    """
    ids = sorted(set(map(str, video_ids)))
    fps = dict(frames) if frames is not None else root_frame_fingerprints(root, ids)
    rec: dict[str, Any] = {"version": LINEAGE_VERSION, "frames": {v: fps.get(v) for v in ids}}
    if sources:
        rec["sources"] = dict(sorted(sources.items()))
    rec["command"] = command
    return rec


def split_lineage(
    frames: dict[str, str], labels: str | None, label_fingerprint: str | None, command: list[str]
) -> dict[str, Any]:
    """The lineage of a split: the frame fingerprints of its recordings and its label set."""
    return {
        "version": LINEAGE_VERSION,
        "label_set": None if labels is None else {"name": labels, "fingerprint": label_fingerprint},
        "frames": dict(sorted(frames.items())),
        "command": command,
    }


def export_lineage(
    labels: str,
    label_fingerprint: str | None,
    split_name: str | None,
    split_hash: str | None,
    command: list[str],
) -> dict[str, Any]:
    """The lineage of an export: its label set and split."""
    return {
        "version": LINEAGE_VERSION,
        "label_set": {"name": labels, "fingerprint": label_fingerprint},
        "split": None if split_name is None else {"name": split_name, "content_hash": split_hash},
        "command": command,
    }


def model_lineage(export_dir: Path, files: dict[str, str], command: list[str]) -> dict[str, Any]:
    """The lineage of a model run: the SHA-256 of each export file it was trained on."""
    return {
        "version": LINEAGE_VERSION,
        "export_dir": str(export_dir),
        "files": dict(sorted(files.items())),
        "command": command,
    }


def command_line(command: list[str] | None, root: DatasetRoot | Path) -> str | None:
    """A recorded command as a shell line, with the dataset root filled in."""
    if not command:
        return None
    path = str(root.path if isinstance(root, DatasetRoot) else root)
    return shlex.join(path if part == ROOT_TOKEN else str(part) for part in command)


def option(command: list[str], flag: str, value: Any, default: Any = None) -> None:
    """Append ``flag value`` to ``command`` unless ``value`` is the default (``True``: the flag alone)."""
    if value is None or value == default or value is False:
        return
    if value is True:
        command.append(flag)
    else:
        command.extend([flag, str(value)])
