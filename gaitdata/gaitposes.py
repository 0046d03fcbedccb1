"""Pose sequences for skeleton-based gait recognition.

Per recording, per frame the gait subject's pose is taken (``is_subject``); if no row of that
frame is flagged, the highest-scoring person. Keypoints are x, y (pixels of the colour frame),
confidence, in the root's keypoint order (COCO-17). Joints with visibility 0 keep their
coordinates and confidence (usually low): the toolkit decides how to use them. Each recording is
named ``<id>/<type>/<view>`` by a naming of :mod:`gaitdata.gaitnames` (``plain`` or ``casiab``).

Layouts (``<out>/index.csv`` lists every recording in all of them: subject, video_id, session,
view, condition, part (with a split), seq_id, seq_type, seq_view, frames, frames_with_pose, fps,
path; ``<out>/export.json`` records the options, inputs and files written):

``npz`` (default)::

    <out>/<id>/<video_id>.npz     keypoints float32 [T, K, 3]; frame_index int64 [T] (the root's
                                  frame index); timestamp_ms float64 [T] (colour timestamp);
                                  has_pose bool [T]; joint_names, video_id, subject, view,
                                  condition, width, height, fps

  T = labelled frames in frame order. Frames without a person keep their slot with
  ``has_pose = False`` and x = y = confidence = 0, so the time axis stays regular.

``opengait`` (OpenGait / FastPoseGait pose datasets, as their pose pretreatment writes them)::

    <out>/<id>/<type>/<view>/<view>.pkl   pickled float32 [T', K, 3], frames WITH a pose only
    <out>/_frames/<video_id>.csv          frame_index, timestamp_ms of those T' frames
    <out>/partition.json                  {"TRAIN_SET": [ids], "TEST_SET": [ids]} (with a split)

  Their loaders refuse an empty sequence, so a recording without any pose is listed in the index
  with an empty ``path`` and not written.

``gaitgraph`` (GaitGraph's pose CSV; CASIA-B naming)::

    <out>/poses.csv            image_name, <joint>_x, <joint>_y, <joint>_conf for every joint;
                               one row per frame with a pose; image_name is
                               ``<id>/<id>-<type>-<view>/<frame_index:06d>.jpg``
    <out>/poses_<part>.csv     the rows of each part of the split (with a split)

Rerunning an export into the same folder removes the files the previous export listed in its
``export.json`` that the new one does not write, so toolkits walking the tree see no stale
sequences. Files not written by an export are never touched.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.gaitnames import (
    CASIAB_TYPES,
    UNKNOWN_SUBJECT,
    CasiaBNaming,
    SequenceName,
    SequenceNames,
    check_subject_parts,
    partition,
    safe_name,
    sequence_names,
)
from gaitdata.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from gaitdata.labels import keypoints_array, read_labels
from gaitdata.lock import writes_root
from gaitdata.progress import progress_bar
from gaitdata.staleness import require_fresh_inputs

if TYPE_CHECKING:
    from gaitdata.schema import KeypointSchema
    from splits import Split

__all__ = ["LAYOUTS", "UNKNOWN_SUBJECT", "export_gait_poses", "load_gait_poses", "read_gaitgraph_csv"]

LAYOUTS = ("npz", "opengait", "gaitgraph")
EXPORT_FORMAT = "gaitdata-gait-poses"
EXPORT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class PoseSequence:
    """One recording's chosen pose per labelled frame."""

    video_id: str
    name: SequenceName
    meta: dict[str, Any]  # subject, session, view, condition, width, height, fps (None when unknown)
    frame_index: np.ndarray  # int64 [T]
    timestamp_ms: np.ndarray  # float64 [T]
    keypoints: np.ndarray  # float32 [T, K, 3]
    has_pose: np.ndarray  # bool [T]

    def __post_init__(self) -> None:
        t = len(self.frame_index)
        if self.keypoints.shape[0] != t or self.has_pose.shape != (t,) or self.timestamp_ms.shape != (t,):
            raise ValueError(
                f"{self.video_id}: {t} frames but keypoints {self.keypoints.shape}, "
                f"has_pose {self.has_pose.shape}, timestamps {self.timestamp_ms.shape}"
            )


def _chosen_rows(lab: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per (video, frame) the subject's row, else the highest-scoring person (ties: lowest index);
    only rows with a person and 3*K keypoint values."""
    persons = lab[lab["has_person"].fillna(False).astype(bool)]
    ok = persons["keypoints"].map(lambda kp: kp is not None and len(kp) == 3 * k)
    persons = persons[ok.astype(bool)]
    order = persons.assign(
        _subj=persons["is_subject"].fillna(False).astype(bool), _s=persons["score"].fillna(-1.0)
    ).sort_values(
        ["video_id", "frame_index", "_subj", "_s", "person_index"], ascending=[True, True, False, False, True]
    )  # fmt: skip
    return order.drop_duplicates(["video_id", "frame_index"], keep="first")


def _video_meta(videos: pd.DataFrame, vid: str) -> dict[str, Any]:
    cols = ("subject", "session", "view", "condition", "width", "height", "fps")
    if vid not in videos.index:
        return dict.fromkeys(cols)
    row = videos.loc[vid]
    return {c: None if pd.isna(row[c]) else row[c] for c in cols}


def _sequences(
    r: DatasetRoot, lab: pd.DataFrame, names: SequenceNames, k: int, progress: bool
) -> list[PoseSequence]:
    vids = sorted(lab["video_id"].astype(str).unique())
    frames = r.read_frames(vids)
    ts = {(str(v), int(f)): t for v, f, t in zip(frames["video_id"], frames["frame_index"], frames["colour_ts_ms"],
                                                   strict=True)}  # fmt: skip
    videos = r.read_videos().set_index("video_id")
    chosen = {str(v): g for v, g in _chosen_rows(lab, k).groupby("video_id", sort=False)}
    it = lab.groupby("video_id", sort=True)
    out = []
    for vid, g in progress_bar(it, total=it.ngroups, desc="gait poses", unit="video", enabled=progress,
                               transient=True):  # fmt: skip
        vid = str(vid)
        fidx = np.array(sorted(g["frame_index"].astype(int).unique()), dtype=np.int64)
        arr = np.zeros((len(fidx), k, 3), dtype=np.float32)
        has = np.zeros(len(fidx), dtype=bool)
        if vid in chosen:
            c = chosen[vid]
            pos = np.searchsorted(fidx, c["frame_index"].astype(int).to_numpy())
            kp = keypoints_array(c, k)
            arr[pos] = np.nan_to_num(kp, nan=0.0)
            has[pos] = True
        tms = np.array([ts.get((vid, int(f)), np.nan) for f in fidx], dtype=np.float64)
        out.append(PoseSequence(vid, names.names[vid], _video_meta(videos, vid), fidx, tms, arr, has))
    return out


# ------------------------------------------------------------------------------------------------
# layouts: each writes one sequence and returns (index path, files written)
# ------------------------------------------------------------------------------------------------
def _write_npz(out_dir: Path, seq: PoseSequence, schema: KeypointSchema) -> tuple[str, list[str]]:
    m = seq.meta
    rel = f"{seq.name.subject}/{safe_name(seq.video_id)}.npz"
    buf = io.BytesIO()
    np.savez_compressed(
        buf, keypoints=seq.keypoints, frame_index=seq.frame_index, timestamp_ms=seq.timestamp_ms,
        has_pose=seq.has_pose, joint_names=np.array(schema.keypoints), video_id=np.array(seq.video_id),
        subject=np.array(str(m["subject"] or "")), view=np.array(str(m["view"] or "")),
        condition=np.array(str(m["condition"] or "")), width=np.array(int(m["width"] or 0)),
        height=np.array(int(m["height"] or 0)), fps=np.array(float(m["fps"] or 0.0)),
    )  # fmt: skip
    atomic_write_bytes(out_dir / rel, buf.getvalue())
    return rel, [rel]


def _write_opengait(out_dir: Path, seq: PoseSequence) -> tuple[str, list[str]]:
    if not seq.has_pose.any():
        return "", []
    n = seq.name
    rel = f"{n.subject}/{n.seq_type}/{n.view}/{n.view}.pkl"
    atomic_write_bytes(out_dir / rel, pickle.dumps(seq.keypoints[seq.has_pose], protocol=4))
    fmap = pd.DataFrame(
        {"frame_index": seq.frame_index[seq.has_pose], "timestamp_ms": seq.timestamp_ms[seq.has_pose]}
    )
    frel = f"_frames/{safe_name(seq.video_id)}.csv"
    atomic_write_text(out_dir / frel, fmap.to_csv(index=False))
    return rel, [rel, frel]


def gaitgraph_columns(schema: KeypointSchema) -> list[str]:
    """GaitGraph's pose CSV header: image_name, then x, y, conf per joint."""
    return ["image_name", *(f"{j}_{c}" for j in schema.keypoints for c in ("x", "y", "conf"))]


def gaitgraph_rows(seq: PoseSequence, schema: KeypointSchema) -> pd.DataFrame:
    """The pose CSV rows of one sequence, frames with a pose only, in frame order (float32 values)."""
    n = seq.name
    frames = seq.frame_index[seq.has_pose]
    df = pd.DataFrame(
        seq.keypoints[seq.has_pose].reshape(len(frames), -1), columns=gaitgraph_columns(schema)[1:]
    )
    df.insert(
        0, "image_name", [f"{n.subject}/{n.subject}-{n.seq_type}-{n.view}/{int(f):06d}.jpg" for f in frames]
    )
    return df


def read_gaitgraph_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a GaitGraph pose CSV written by :func:`export_gait_poses` (float32 coordinates)."""
    df = pd.read_csv(path)
    return df.astype({c: np.float32 for c in df.columns[1:]})


# ------------------------------------------------------------------------------------------------
# the export
# ------------------------------------------------------------------------------------------------
def _check_options(layout: str, naming: str | None, schema: KeypointSchema) -> str:
    if layout not in LAYOUTS:
        raise GaitdataError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    naming = naming or ("casiab" if layout == "gaitgraph" else "plain")
    if layout == "gaitgraph" and naming != "casiab":
        raise GaitdataError(
            "the gaitgraph layout needs CASIA-B names (its reader parses them); use naming casiab"
        )
    if layout == "gaitgraph" and schema.num_keypoints != 17:
        raise GaitdataError(
            f"the gaitgraph layout reads COCO-17 poses; this root has {schema.num_keypoints} joints"
        )
    return naming


def _select(lab: pd.DataFrame, split: Split | None, split_part: str | None, labels: str) -> pd.DataFrame:
    if split is None:
        return lab
    keep = split.videos(split_part) if split_part else split.all_videos()
    lab = lab[lab["video_id"].isin(keep)]
    if lab.empty:
        raise GaitdataError(
            f"no frames of label set {labels!r} in split {split.name!r} {split_part or ''}".strip()
        )
    return lab


def _index_row(seq: PoseSequence, path: str, split: Split | None, layout: str) -> dict[str, Any]:
    m = seq.meta
    row = {"subject": m["subject"], "video_id": seq.video_id, "session": m["session"], "view": m["view"],
           "condition": m["condition"]}  # fmt: skip
    if split is not None:
        row["part"] = split.part_of_video(seq.video_id)
    n_pose = int(seq.has_pose.sum())
    row.update({
        "seq_id": seq.name.subject, "seq_type": seq.name.seq_type, "seq_view": seq.name.view,
        "frames": len(seq.frame_index) if layout == "npz" else n_pose, "frames_with_pose": n_pose,
        "fps": m["fps"], "path": path,
    })  # fmt: skip
    return row


def _write_gaitgraph(
    out_dir: Path, seqs: list[PoseSequence], schema: KeypointSchema, split: Split | None
) -> list[str]:
    bad = sorted({s.name.seq_type.split("-")[0] for s in seqs} - set(CASIAB_TYPES))
    if bad:
        raise GaitdataError(
            f"gaitgraph layout: type code(s) {', '.join(bad)} are not nm/bg/cl, which GaitGraph's reader "
            f"knows; map the conditions with --type-map CONDITION=nm|bg|cl"
        )
    tables = {s.video_id: gaitgraph_rows(s, schema) for s in seqs}
    groups = {"poses.csv": list(tables.values())}
    for part in split.part_names if split is not None else ():
        keep = set(split.videos(part))  # type: ignore[union-attr]
        groups[f"poses_{part}.csv"] = [t for v, t in tables.items() if v in keep]
    for name, group in groups.items():
        table = pd.concat(group) if group else pd.DataFrame(columns=gaitgraph_columns(schema))
        atomic_write_text(out_dir / name, table.to_csv(index=False))
    return list(groups)


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    """Delete the files the previous export in ``out_dir`` wrote and this one did not."""
    try:
        old = json.loads((out_dir / "export.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return
    if not isinstance(old, dict) or old.get("format") != EXPORT_FORMAT:
        return
    for rel in old.get("files", []):
        p = (out_dir / rel).resolve()
        if rel in keep or out_dir not in p.parents or not p.is_file():
            continue
        p.unlink()
        for parent in p.parents:
            if parent == out_dir or any(parent.iterdir()):
                break
            parent.rmdir()


@writes_root("export", out="out", out_elsewhere_reads_only=True)
def export_gait_poses(
    root: DatasetRoot | str | os.PathLike,
    labels: str,
    out: str | os.PathLike | None = None,
    split_name: str | None = None,
    split_part: str | None = None,
    progress: bool = False,
    layout: str = "npz",
    naming: str | None = None,
    casiab: CasiaBNaming | None = None,
    test_parts: tuple[str, ...] | None = None,
    train_parts: tuple[str, ...] | None = None,
) -> Path:
    """Write the pose sequences of a label set in ``layout`` (see the module docstring).

    Default ``out``: ``<root>/exports/gait_poses/<labels>``. ``split_name``/``split_part`` limit
    the export to the videos of a split (or of one part of it). ``naming``: ``plain`` (default;
    ``casiab`` for the gaitgraph layout) or ``casiab``, configured by ``casiab``. With a split,
    the opengait layout writes ``partition.json``: ``TEST_SET`` holds the subjects of
    ``test_parts`` (default ``("test",)``; without such a part no partition is written unless
    asked for), ``TRAIN_SET`` those of ``train_parts`` (default every other part). Returns the
    index path.
    """
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    r.meta()
    schema = r.keypoint_schema()
    naming = _check_options(layout, naming, schema)
    casiab = casiab or CasiaBNaming()
    lab = read_labels(r, labels)
    if lab.empty:
        raise GaitdataError(f"label set {labels!r} of {r.path} is empty; label the root first")
    require_fresh_inputs(r, "export gait-poses", labels=[labels], split=split_name)
    split = None
    if split_name is not None:
        from splits import load_split

        split = load_split(r, split_name)
    lab = _select(lab, split, split_part, labels)
    vids = sorted(lab["video_id"].astype(str).unique())
    videos = r.read_videos()
    unknown = sorted(set(vids) - set(videos["video_id"].astype(str)))  # labelled, not in videos.parquet
    if unknown:
        videos = pd.concat([videos, pd.DataFrame({"video_id": unknown})], ignore_index=True)
    names = sequence_names(videos, naming, casiab)
    names.check(vids)
    parts = None
    if split is not None and layout != "npz":
        check_subject_parts(split)
    asked = test_parts is not None or train_parts is not None
    if split is not None and layout == "opengait" and (asked or "test" in split.part_names):
        parts = partition(split, names, test_parts or ("test",), train_parts)
    out_dir = (Path(out).expanduser() if out is not None else r.exports_dir / "gait_poses" / labels).resolve()
    seqs = _sequences(r, lab, names, schema.num_keypoints, progress)
    rows, files = [], []
    for seq in seqs:
        if layout == "npz":
            path, written = _write_npz(out_dir, seq, schema)
        elif layout == "opengait":
            path, written = _write_opengait(out_dir, seq)
        else:
            path, written = ("poses.csv" if seq.has_pose.any() else ""), []
        rows.append(_index_row(seq, path, split, layout))
        files += written
    if layout == "gaitgraph":
        files += _write_gaitgraph(out_dir, seqs, schema, split)
    if parts is not None:
        atomic_write_json(out_dir / "partition.json", parts)
        files.append("partition.json")
    index = out_dir / "index.csv"
    atomic_write_text(index, pd.DataFrame(rows).to_csv(index=False))
    files.append("index.csv")
    _remove_stale(out_dir, set(files))
    atomic_write_json(out_dir / "export.json", {
        "format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "layout": layout, "naming": naming,
        "type_map": dict(casiab.type_map) if naming == "casiab" else None,
        "view_map": dict(casiab.view_map) if naming == "casiab" else None,
        "root": str(r.path), "labels": labels, "split": split_name, "split_hash": split.content_hash if split else None,
        "part": split_part, "partition": parts, "recordings": len(rows), "files": files,
    })  # fmt: skip
    return index


def load_gait_poses(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read one ``.npz`` written by :func:`export_gait_poses` into a dict of arrays."""
    with np.load(path, allow_pickle=False) as z:
        return {key: z[key] for key in z.files}
