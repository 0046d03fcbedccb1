"""FiftyOne documents of a root's frames and labels: keypoints, boxes, editable skeletons,
depth heatmaps, and the ``rgb``/``depth`` samples of each frame.

Documents are FiftyOne's storage format (``_cls`` + fields): ``fo.<Label>.from_dict`` builds the
Label objects from them, and :mod:`gaitdata.browse.fo_internals` stores them directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gaitdata.browse.fo_internals import SampleSpec
from gaitdata.browse.plan import DEPTH, META_COLS, RGB
from gaitdata.browse.previews import preview_relpath
from gaitdata.labels import decode_keypoints

if TYPE_CHECKING:
    from gaitdata.browse.plan import BuildPlan


def person_docs(r: Any, w: int, h: int, k: int) -> tuple[dict, dict | None]:
    """FiftyOne ``Keypoint`` and ``Detection`` documents (plain dicts) of one label row with a person."""
    from bson import ObjectId

    arr = decode_keypoints(r.keypoints, k)
    vis = np.asarray(r.visibility if r.visibility is not None else np.full(k, 2), dtype=np.int64)
    xy = arr[:, :2] / (w, h)
    xy[vis <= 0] = np.nan  # not visible: hidden in the App
    seen = arr[vis > 0, 2]
    attrs = {
        "person_index": int(r.person_index),
        "score": None if pd.isna(r.score) else float(r.score),
        "is_subject": None if pd.isna(r.is_subject) else bool(r.is_subject),
        "track_id": None if pd.isna(r.track_id) else int(r.track_id),
        "num_visible": int((vis > 0).sum()),
        "mean_confidence": float(seen.mean()) if len(seen) else 0.0,
    }
    tags = [str(t) for t in (r.qa_flags if r.qa_flags is not None else [])]
    kp = {"_id": ObjectId(), "_cls": "Keypoint", "tags": tags, "label": "person", "points": xy.tolist(),
          "confidence": arr[:, 2].tolist(), "index": None, **attrs}  # fmt: skip
    det = None
    if not any(pd.isna(v) for v in (r.bbox_x, r.bbox_y, r.bbox_w, r.bbox_h)):
        det = {"_id": ObjectId(), "_cls": "Detection", "tags": list(tags), "label": "person",
               "bounding_box": [r.bbox_x / w, r.bbox_y / h, r.bbox_w / w, r.bbox_h / h],
               "confidence": attrs["score"], "index": None, "person_index": attrs["person_index"],
               "is_subject": attrs["is_subject"]}  # fmt: skip
    return kp, det


def skeleton_polyline_doc(r: Any, w: int, h: int, skeleton: Sequence[tuple[int, int]], k: int) -> dict:
    """An editable ``Polyline`` of one person: one 2-vertex shape per skeleton edge with both joints
    visible, one 1-vertex shape per other visible joint; ``joints`` lists the joint of each vertex.

    FiftyOne's in-App annotation edits polylines (not keypoints): moving a vertex here is a
    keypoint correction for :func:`gaitdata.browse.pull`.
    """
    from bson import ObjectId

    arr = decode_keypoints(r.keypoints, k)
    vis = np.asarray(r.visibility if r.visibility is not None else np.full(k, 2), dtype=np.int64) > 0
    xy = (arr[:, :2] / (w, h)).tolist()
    shapes, joints, covered = [], [], set()
    for a, b in skeleton:
        if vis[a] and vis[b]:
            shapes.append([xy[a], xy[b]])
            joints.append([int(a), int(b)])
            covered.update((a, b))
    for j in np.flatnonzero(vis):
        if int(j) not in covered:
            shapes.append([xy[j]])
            joints.append([int(j)])
    return {"_id": ObjectId(), "_cls": "Polyline", "tags": [], "label": "person", "points": shapes, "closed": False,
            "filled": False, "index": None, "person_index": int(r.person_index), "joints": joints}  # fmt: skip


LABEL_SUFFIXES = ("", "_boxes", "_edit")  # keypoints, boxes, editable skeleton (optional)


def label_docs(df: pd.DataFrame, sizes: dict[str, tuple[int, int]], keys: Iterable[tuple[str, int]], k: int,
               skeleton: Sequence[tuple[int, int]] | None = None) -> dict[tuple[str, int], dict[str, dict]]:  # fmt: skip
    """``{(video_id, frame_index): {suffix: doc}}`` for the ``keys`` labelled in ``df``.

    Suffixes: ``""`` Keypoints, ``"_boxes"`` Detections and, with ``skeleton``, ``"_edit"``
    Polylines (see :func:`skeleton_polyline_doc`). A frame labelled "no person" gets empty lists
    (labelled, nobody there); frames the set does not cover are absent. Documents are FiftyOne's
    storage format (``_cls`` + fields).
    """
    wanted = set(keys)
    people: dict[tuple[str, int], tuple[list, list, list]] = {}
    for r in df.itertuples(index=False):
        key = (str(r.video_id), int(r.frame_index))
        if key not in wanted:
            continue
        kps, dets, polys = people.setdefault(key, ([], [], []))
        if bool(r.has_person) and r.keypoints is not None:
            w, h = sizes[key[0]]
            kp, det = person_docs(r, w, h, k)
            kps.append(kp)
            if det is not None:
                dets.append(det)
            if skeleton is not None:
                polys.append(skeleton_polyline_doc(r, w, h, skeleton, k))
    out: dict[tuple[str, int], dict[str, dict]] = {}
    for key, (kps, dets, polys) in people.items():
        out[key] = {"": {"_cls": "Keypoints", "keypoints": kps}, "_boxes": {"_cls": "Detections", "detections": dets}}
        if skeleton is not None:
            out[key]["_edit"] = {"_cls": "Polylines", "polylines": polys}
    return out


def heatmap_doc(map_path: str, value_range: list[float]) -> dict:
    from bson import ObjectId

    return {"_id": ObjectId(), "_cls": "Heatmap", "tags": [], "map_path": map_path, "range": list(value_range)}


def make_specs(p: BuildPlan, chunk: pd.DataFrame, videos: pd.DataFrame, sizes: dict, ranges: dict,
               per_set: dict, bad_depth: dict) -> list[SampleSpec]:  # fmt: skip
    """The ``rgb`` and ``depth`` samples of the frames in ``chunk`` (one group per frame)."""
    from bson import ObjectId

    out: list[SampleSpec] = []
    vmeta = {str(vid): {c: None if pd.isna(videos.loc[vid, c]) else str(videos.loc[vid, c]) for c in META_COLS}
             for vid in chunk["video_id"].unique()}  # fmt: skip
    for r in chunk.itertuples(index=False):
        vid, fi = str(r.video_id), int(r.frame_index)
        w, h = sizes[vid]
        common: dict[str, Any] = {
            "video_id": vid,
            "frame_index": fi,
            "colour_frame_number": None if pd.isna(r.colour_frame_number) else int(r.colour_frame_number),
            "colour_ts_ms": None if pd.isna(r.colour_ts_ms) else float(r.colour_ts_ms),
            "depth_ts_ms": None if pd.isna(r.depth_ts_ms) else float(r.depth_ts_ms),
            "split": p.video_part.get(vid),
            **vmeta[vid],
        }
        tags = (f"split:{common['split']}",) if common["split"] else ()
        gid = str(ObjectId())
        docs: dict[str, dict | None] = {}
        has_depth = r.depth_path is not None and not pd.isna(r.depth_path) and str(r.depth_path) not in bad_depth
        if has_depth:
            docs["depth"] = heatmap_doc(str(p.root.abspath(str(r.depth_path))), ranges[vid])
        for name in p.label_sets:
            for suffix, doc in per_set[name].get((vid, fi), {}).items():
                docs[p.fields[name] + suffix] = doc
        out.append(SampleSpec(RGB, gid, str(p.root.abspath(str(r.rgb_path))), tags, w, h, common, docs))
        if has_depth:
            prev = str(p.root.abspath(preview_relpath(vid, fi)))
            out.append(SampleSpec(DEPTH, gid, prev, tags, w, h, dict(common), {}))
    return out
