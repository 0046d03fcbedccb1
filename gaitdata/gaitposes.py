"""Pose sequences for skeleton-based gait recognition.

Layout (one file per recording, grouped by subject, as pose-based gait-recognition toolkits read
sequences)::

    <out>/index.csv                         subject, video_id, session, view, condition, frames,
                                            frames_with_pose, fps, path
    <out>/<subject>/<video_id>.npz          one recording

Each ``.npz`` holds

* ``keypoints``: float32 ``[T, 17, 3]`` = x, y (pixels of the colour frame), confidence, joints
  in COCO-17 order (``joint_names``). T = labelled frames of the recording in frame order.
* ``frame_index``: int64 ``[T]`` (the dataset root's frame index), ``timestamp_ms``: float64
  ``[T]`` (colour timestamp), ``has_pose``: bool ``[T]``.
* ``joint_names``, ``video_id``, ``subject``, ``view``, ``condition``, ``width``, ``height``,
  ``fps`` (scalars / string arrays).

Per frame the gait subject's pose is taken (``is_subject``); if no row of that frame is flagged,
the highest-scoring person. Frames without a person keep their slot with ``has_pose = False``
and x = y = confidence = 0, so the time axis stays regular. Joints with visibility 0 keep their
coordinates and confidence (usually low): the toolkit decides how to use them.
Recordings without a subject go under ``_unknown/``.

``layout="opengait"`` writes the id/type/view tree that OpenGait's pose pretreatment produces:
``<out>/<subject>/<condition>-<session>/<view>/<view>.pkl``, a pickled float32 ``[T', 17, 3]``
array of the frames *with* a pose only (as that pretreatment keeps only valid frames), and the
frame mapping of each recording in ``<out>/_frames/<video_id>.csv`` (frame_index, timestamp_ms),
outside the tree the toolkit scans. A second recording with the same subject/type/view gets
``-2``, ``-3``... appended to its type.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_bytes, atomic_write_text
from gaitdata.labels import read_labels

UNKNOWN_SUBJECT = "_unknown"
LAYOUTS = ("npz", "opengait")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or UNKNOWN_SUBJECT


def _pick(group: pd.DataFrame) -> pd.Series | None:
    persons = group[group["has_person"].fillna(False).astype(bool)]
    if persons.empty:
        return None
    subj = persons[persons["is_subject"].fillna(False).astype(bool)]
    cand = subj if len(subj) else persons
    order = cand.assign(_s=cand["score"].fillna(-1.0)).sort_values(
        ["_s", "person_index"], ascending=[False, True]
    )
    return order.iloc[0]


def export_gait_poses(
    root: DatasetRoot | str | os.PathLike,
    labels: str,
    out: str | os.PathLike | None = None,
    split_name: str | None = None,
    split_part: str | None = None,
    progress: bool = False,
    layout: str = "npz",
) -> Path:
    """Write ``<out>/<subject>/<video_id>.npz`` per labelled recording plus ``<out>/index.csv``.

    Default ``out``: ``<root>/exports/gait_poses/<labels>``. ``split_name``/``split_part`` limit
    the export to the videos of one part of a split. ``layout="opengait"`` writes the
    id/type/view pickles instead (see the module docstring). Returns the index path.
    """
    if layout not in LAYOUTS:
        raise GaitdataError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    r.meta()
    schema = r.keypoint_schema()
    k = schema.num_keypoints
    lab = read_labels(r, labels)
    if lab.empty:
        raise GaitdataError(f"label set {labels!r} of {r.path} is empty; label the root first")
    if split_name is not None:
        from splits import load_split

        sp = load_split(r, split_name)
        keep = sp.videos(split_part) if split_part else sp.all_videos()
        lab = lab[lab["video_id"].isin(keep)]
        if lab.empty:
            raise GaitdataError(
                f"no frames of label set {labels!r} in split {split_name!r} {split_part or ''}".strip()
            )
    out_dir = Path(out).expanduser().resolve() if out is not None else r.exports_dir / "gait_poses" / labels
    frames = r.read_frames(sorted(lab["video_id"].astype(str).unique()))
    ts = {
        (str(v), int(f)): t
        for v, f, t in zip(frames["video_id"], frames["frame_index"], frames["colour_ts_ms"], strict=True)
    }
    videos = r.read_videos().set_index("video_id")
    index_rows = []
    used: set[tuple[str, str, str]] = set()
    groups = lab.groupby("video_id", sort=True)
    it = groups
    if progress:
        from rich.progress import track

        it = track(groups, total=groups.ngroups, description="gait poses", transient=True)
    for vid, g in it:
        vid = str(vid)
        meta = videos.loc[vid] if vid in videos.index else None

        def field(name: str, meta: pd.Series | None = meta) -> object:
            return None if meta is None or pd.isna(meta[name]) else meta[name]

        subject = field("subject")
        fidx = np.array(sorted(g["frame_index"].astype(int).unique()), dtype=np.int64)
        arr = np.zeros((len(fidx), k, 3), dtype=np.float32)
        has = np.zeros(len(fidx), dtype=bool)
        pos = {int(f): i for i, f in enumerate(fidx)}
        for f, fg in g.groupby("frame_index", sort=True):
            row = _pick(fg)
            if row is None or row["keypoints"] is None or len(row["keypoints"]) != 3 * k:
                continue
            kp = np.asarray(row["keypoints"], dtype=np.float32).reshape(k, 3)
            arr[pos[int(f)]] = np.nan_to_num(kp, nan=0.0)
            has[pos[int(f)]] = True
        tms = np.array([ts.get((vid, int(f)), np.nan) for f in fidx], dtype=np.float64)
        subdir = _safe(str(subject)) if subject is not None else UNKNOWN_SUBJECT
        if layout == "opengait":
            view = _safe(str(field("view") or "000"))
            seq = _safe(f"{field('condition') or 'walk'}-{field('session') or '01'}")
            n = 1
            while (subdir, seq if n == 1 else f"{seq}-{n}", view) in used:
                n += 1
            seq = seq if n == 1 else f"{seq}-{n}"
            used.add((subdir, seq, view))
            rel = f"{subdir}/{seq}/{view}/{view}.pkl"
            atomic_write_bytes(out_dir / rel, pickle.dumps(arr[has], protocol=4))
            frame_map = pd.DataFrame({"frame_index": fidx[has], "timestamp_ms": tms[has]})
            atomic_write_text(out_dir / "_frames" / f"{_safe(vid)}.csv", frame_map.to_csv(index=False))
            index_rows.append({
                "subject": subject, "video_id": vid, "session": field("session"), "view": field("view"),
                "condition": field("condition"), "frames": int(has.sum()), "frames_with_pose": int(has.sum()),
                "fps": field("fps"), "path": rel,
            })  # fmt: skip
            continue
        rel = f"{subdir}/{_safe(vid)}.npz"
        buf = io.BytesIO()
        np.savez_compressed(
            buf, keypoints=arr, frame_index=fidx, timestamp_ms=tms, has_pose=has,
            joint_names=np.array(schema.keypoints), video_id=np.array(vid), subject=np.array(str(subject or "")),
            view=np.array(str(field("view") or "")), condition=np.array(str(field("condition") or "")),
            width=np.array(int(field("width") or 0)), height=np.array(int(field("height") or 0)),
            fps=np.array(float(field("fps") or 0.0)),
        )  # fmt: skip
        atomic_write_bytes(out_dir / rel, buf.getvalue())
        index_rows.append({
            "subject": subject, "video_id": vid, "session": field("session"), "view": field("view"),
            "condition": field("condition"), "frames": len(fidx), "frames_with_pose": int(has.sum()),
            "fps": field("fps"), "path": rel,
        })  # fmt: skip
    index = pd.DataFrame(index_rows)
    path = out_dir / "index.csv"
    atomic_write_text(path, index.to_csv(index=False))
    return path


def load_gait_poses(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read one ``.npz`` written by :func:`export_gait_poses` into a dict of arrays."""
    with np.load(path, allow_pickle=False) as z:
        return {key: z[key] for key in z.files}
