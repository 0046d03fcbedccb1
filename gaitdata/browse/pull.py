"""Pull review edits made in FiftyOne back into a NEW label set.

The teacher's label set on disk is never modified. The new set is the source set with the
reviewed frames' edits applied:

- a sample tagged ``reject`` (or ``rejected``): every row of that frame gets the QA flag
  ``rejected`` (``gaitdata export coco --exclude-flag rejected`` leaves it out);
- a person (its keypoints or its box) tagged ``reject``: that person's row gets ``rejected``;
- a moved keypoint, or a moved vertex of the editable skeleton polyline (``<set>_edit``, built
  with ``--editable``: FiftyOne's in-App annotation edits polylines and boxes, not keypoints):
  the new position, confidence 1.0, visibility 2, QA flag ``corrected``; a moved box: the new box;
- a person deleted in FiftyOne (its keypoints or its box): its row is dropped (a frame left empty
  gets a no-person row);
- a person added in FiftyOne: a new row (box from the Detection with the same ``person_index``
  attribute, else the keypoints' extent), QA flag ``added``;
- samples tagged ``reviewed`` (or with any edit): rows get the QA flag ``reviewed``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot, utc_now
from gaitdata.errors import GaitdataError
from gaitdata.labels import (
    LABEL_COLUMNS,
    decode_keypoints,
    encode_keypoints,
    label_set_fingerprint,
    read_label_meta,
    read_labels,
    write_labels,
)
from gaitdata.lineage import label_set_lineage
from gaitdata.lock import writes_root

REJECT_TAGS = frozenset({"reject", "rejected"})
REVIEWED_TAG = "reviewed"
MOVE_TOLERANCE_PX = 0.5  # a point that moved less than this is unchanged


def _flags(old: Any, *add: str) -> list[str]:
    out = [str(f) for f in (old if old is not None else [])]
    for f in add:
        if f not in out:
            out.append(f)
    return out


def _apply_person(row: dict, kp: Any, w: int, h: int, k: int) -> tuple[dict, bool]:
    """Apply one FiftyOne Keypoint to a label row; returns (row, whether a point moved)."""
    arr = decode_keypoints(row["keypoints"], k)
    vis = np.asarray(row["visibility"], dtype=np.int64).copy()
    moved = False
    for j, pt in enumerate(kp.points[:k]):
        x, y = pt[0], pt[1]
        if x is None or y is None or math.isnan(x) or math.isnan(y):
            continue  # hidden (v = 0) points cannot be edited in the App: keep them
        px, py = float(x) * w, float(y) * h
        if vis[j] == 0 or abs(px - arr[j, 0]) > MOVE_TOLERANCE_PX or abs(py - arr[j, 1]) > MOVE_TOLERANCE_PX:
            arr[j] = (px, py, 1.0)
            vis[j] = 2
            moved = True
    row = dict(row)
    row["keypoints"] = encode_keypoints(arr)
    row["visibility"] = vis.tolist()
    row["num_visible"] = int((vis > 0).sum())
    return row, moved


def _apply_polyline(row: dict, src: dict, poly: Any, w: int, h: int, k: int) -> tuple[dict, bool]:
    """Apply an edited skeleton polyline (``joints`` names the joint of each vertex) to a label row.

    A vertex counts as moved when it differs from the source row ``src``; a joint takes the mean of
    its moved vertices (it appears once per edge).
    """
    joints = getattr(poly, "joints", None)
    if not joints:
        return row, False
    ref = decode_keypoints(src["keypoints"], k)
    arr = decode_keypoints(row["keypoints"], k)
    vis = np.asarray(row["visibility"], dtype=np.int64).copy()
    moved: dict[int, list[tuple[float, float]]] = {}
    for shape, js in zip(poly.points or [], joints, strict=False):
        for (x, y), j in zip(shape, js, strict=False):
            j = int(j)
            if not 0 <= j < k or x is None or y is None or math.isnan(x) or math.isnan(y):
                continue
            px, py = float(x) * w, float(y) * h
            if abs(px - ref[j, 0]) > MOVE_TOLERANCE_PX or abs(py - ref[j, 1]) > MOVE_TOLERANCE_PX:
                moved.setdefault(j, []).append((px, py))
    if not moved:
        return row, False
    for j, pts in moved.items():
        arr[j] = (*np.mean(pts, axis=0), 1.0)
        vis[j] = 2
    row = dict(row)
    row["keypoints"] = encode_keypoints(arr)
    row["visibility"] = vis.tolist()
    row["num_visible"] = int((vis > 0).sum())
    return row, True


def _new_person(kp: Any, det: Any, w: int, h: int, k: int, vid: str, fi: int, idx: int, teacher: str) -> dict:
    pts = np.full((k, 3), 0.0)
    vis = np.zeros(k, dtype=np.int64)
    for j, pt in enumerate(kp.points[:k]):
        if pt[0] is not None and not math.isnan(pt[0]):
            pts[j] = (pt[0] * w, pt[1] * h, 1.0)
            vis[j] = 2
    if det is not None:
        bx, by, bw, bh = det.bounding_box
        box = (bx * w, by * h, bw * w, bh * h)
    elif vis.any():
        xs, ys = pts[vis > 0, 0], pts[vis > 0, 1]
        box = (xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min())
    else:
        box = (math.nan,) * 4
    return {
        "video_id": vid, "frame_index": fi, "person_index": idx, "has_person": True,
        "bbox_x": box[0], "bbox_y": box[1], "bbox_w": box[2], "bbox_h": box[3], "score": 1.0,
        "keypoints": encode_keypoints(pts), "visibility": vis.tolist(), "num_visible": int((vis > 0).sum()),
        "track_id": None, "is_subject": bool(getattr(kp, "is_subject", None) or False), "teacher": teacher,
        "weights_hash": None, "qa_flags": ["added", REVIEWED_TAG],
    }  # fmt: skip


def _pulled_lineage(r: DatasetRoot, source: str, reviewed: str, out_name: str, out: pd.DataFrame) -> dict:
    """A reviewed copy is made from the frames its source was labelled on, and from the source."""
    recorded = (read_label_meta(r, source).get("lineage") or {}).get("frames")
    cmd = ["gaitdata", "browse", "{root}", "--pull", "--label-set", reviewed, "--name", out_name]
    return label_set_lineage(
        r, out["video_id"].astype(str).unique(), command=cmd, frames=recorded,
        sources={source: label_set_fingerprint(r, source)},
    )  # fmt: skip


@writes_root("browse --pull")
def pull(
    root: str | os.PathLike | DatasetRoot,
    label_set: str,
    source_labels: str | None = None,
    name: str | None = None,
    db_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> os.PathLike:
    """Write the review edits of ``label_set``'s FiftyOne field into a new label set; return its path.

    ``label_set``: the label set that was reviewed in FiftyOne (its field in the dataset).
    ``source_labels``: the label set on disk the edits are applied to (default: ``label_set``).
    ``name``: the new label set (default ``<label_set>.reviewed``); it may not be ``source_labels``.
    """
    from gaitdata.browse.build import dataset_name, field_name, rgb_view

    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    r.meta()
    source = source_labels or label_set
    out_name = name or f"{label_set}.reviewed"
    if out_name in (source, label_set):
        raise GaitdataError(f"the reviewed labels need a new name, not {out_name!r}: the teacher's set stays untouched")
    base = read_labels(r, source)  # a clear error listing the available sets
    k = r.keypoint_schema().num_keypoints
    from gaitdata.browse.db import connect

    fo = connect(r.path, db_dir)
    dsname = dataset_name(r)
    if not fo.dataset_exists(dsname):
        raise GaitdataError(f"no FiftyOne dataset for {r.path} yet; build it first with: gaitdata browse {r.path} --no-launch")
    ds = fo.load_dataset(dsname)
    fld = ds.info.get("gaitdata", {}).get("fields", {}).get(label_set, field_name(label_set))
    if fld not in ds.get_field_schema():
        have = sorted(ds.info.get("gaitdata", {}).get("fields", {}))
        raise GaitdataError(f"label set {label_set!r} is not in the FiftyOne dataset {dsname}; it has: "
                            f"{', '.join(have) or 'none'}. Add it with: gaitdata browse {r.path} --labels {label_set}")  # fmt: skip
    view = rgb_view(ds)
    vids, fis = view.values("video_id"), view.values("frame_index")
    tags = view.values("tags")
    kps = view.values(fld)
    dets = view.values(fld + "_boxes")
    edits = view.values(fld + "_edit") if fld + "_edit" in ds.get_field_schema() else [None] * len(vids)
    widths, heights = view.values("metadata.width"), view.values("metadata.height")

    teacher = str(base["teacher"].dropna().iloc[0]) if base["teacher"].notna().any() else label_set
    groups = {key: g for key, g in base.groupby(["video_id", "frame_index"], sort=False)}
    counts = {"frames_rejected": 0, "persons_rejected": 0, "persons_corrected": 0, "persons_added": 0,
              "persons_deleted": 0, "frames_reviewed": 0}  # fmt: skip
    replaced: dict[tuple[str, int], list[dict]] = {}
    for vid, fi, stags, kpl, detl, editl, w, h in zip(vids, fis, tags, kps, dets, edits, widths, heights, strict=True):
        key = (vid, int(fi))
        stags = set(stags or [])
        frame_rejected = bool(stags & REJECT_TAGS)
        rows = groups.get(key)
        if rows is None or kpl is None:
            continue  # not labelled by this set
        old = {int(x["person_index"]): x for x in rows.to_dict("records") if bool(x["has_person"])}
        none_rows = [x for x in rows.to_dict("records") if not bool(x["has_person"])]
        by_idx_det = {getattr(d, "person_index", None): d for d in (detl.detections if detl else [])}
        by_idx_poly = {getattr(q, "person_index", None): q for q in (editl.polylines if editl else [])}
        new_rows: list[dict] = []
        edited = False
        seen: set[int] = set()
        for kp in kpl.keypoints:
            idx = getattr(kp, "person_index", None)
            if idx is not None and int(idx) in old:
                idx = int(idx)
                det = by_idx_det.get(idx)
                src = old[idx]
                had_box = not any(pd.isna(src[c]) for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
                if detl is not None and had_box and det is None:
                    continue  # its box was deleted in the App: the person is deleted
                seen.add(idx)
                row, moved = _apply_person(src, kp, w, h, k)
                if idx in by_idx_poly:
                    row, poly_moved = _apply_polyline(row, src, by_idx_poly[idx], w, h, k)
                    moved = moved or poly_moved
                if det is not None:
                    bx, by, bw, bh = det.bounding_box
                    box = (bx * w, by * h, bw * w, bh * h)
                    if np.abs(np.subtract(box, [row["bbox_x"], row["bbox_y"], row["bbox_w"], row["bbox_h"]])).max() > 0.5:
                        row.update(bbox_x=box[0], bbox_y=box[1], bbox_w=box[2], bbox_h=box[3])
                        moved = True
                if moved:
                    row["qa_flags"] = _flags(row["qa_flags"], "corrected", REVIEWED_TAG)
                    counts["persons_corrected"] += 1
                    edited = True
                if REJECT_TAGS & set(kp.tags or []) or (det is not None and REJECT_TAGS & set(det.tags or [])):
                    row["qa_flags"] = _flags(row["qa_flags"], "rejected", REVIEWED_TAG)
                    counts["persons_rejected"] += 1
                    edited = True
                new_rows.append(row)
            else:
                nxt = max([*old, *seen, -1, *(int(x["person_index"]) for x in new_rows)]) + 1
                new_rows.append(_new_person(kp, by_idx_det.get(idx), w, h, k, vid, int(fi), nxt, teacher))
                counts["persons_added"] += 1
                edited = True
        deleted = set(old) - seen
        if deleted:
            counts["persons_deleted"] += len(deleted)
            edited = True
        if not new_rows:
            if none_rows:
                new_rows = [dict(none_rows[0])]
            else:
                new_rows = [{**dict.fromkeys(LABEL_COLUMNS), "video_id": vid, "frame_index": int(fi), "person_index": -1,
                             "has_person": False, "num_visible": 0, "teacher": teacher, "qa_flags": []}]  # fmt: skip
        if frame_rejected:
            counts["frames_rejected"] += 1
            for row in new_rows:
                row["qa_flags"] = _flags(row["qa_flags"], "rejected", REVIEWED_TAG)
        elif edited or REVIEWED_TAG in stags:
            for row in new_rows:
                row["qa_flags"] = _flags(row["qa_flags"], REVIEWED_TAG)
        if frame_rejected or edited or REVIEWED_TAG in stags:
            counts["frames_reviewed"] += 1
            replaced[key] = new_rows

    keep = base[[(v, int(f)) not in replaced for v, f in zip(base["video_id"], base["frame_index"], strict=True)]]
    extra = pd.DataFrame([row for rows in replaced.values() for row in rows], columns=list(LABEL_COLUMNS))
    out = pd.concat([keep, extra], ignore_index=True) if len(extra) else keep
    meta = dict(read_label_meta(r, source))
    meta.update(
        name=out_name,
        source_label_set=source,
        reviewed_field=label_set,
        reviewed_at=utc_now(),
        review=counts,
    )
    path = write_labels(r, out_name, out, meta, lineage=_pulled_lineage(r, source, label_set, out_name, out))
    if progress:
        print(f"browse: pulled {counts['frames_reviewed']} reviewed frames into {out_name} ({counts})", flush=True)
    return path
