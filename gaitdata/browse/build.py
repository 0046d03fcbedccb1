"""Build or update the FiftyOne grouped dataset of a dataset root.

One group per written frame: slice ``rgb`` (the colour frame; person boxes and keypoints of every
label set, one field pair per set; the raw 16-bit depth as a ``Heatmap``) and slice ``depth`` (an
8-bit colourised preview generated under ``<root>/.fiftyone/previews``). Sample fields: video_id,
subject, session, view, condition, frame_index, colour_frame_number, colour/depth timestamps,
split (plus a ``split:<name>`` tag). Label-set QA flags become label tags.

Updates are incremental: frames already in the dataset are left alone (user tags stay); new
frames are added; a label set whose file changed is rewritten in its fields only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_bytes, file_fingerprint
from gaitdata.labels import read_labels
from gaitdata.schema import COCO17, KeypointSchema

RGB, DEPTH = "rgb", "depth"
FIELD_INFO_KEY = "gaitdata"
LOW_CONFIDENCE = 0.5  # mean keypoint confidence below which a person is "low confidence"
DISAGREEMENT_OKS = 0.8  # lowest OKS between two label sets below which a frame is a "disagreement"
DEPTH_RANGE_M = 6.0  # heatmap/preview colour scale when a recording gives no sample: 0 .. 6 m
PREVIEW_DIR = Path(".fiftyone") / "previews"
FIELD_COLOURS = ("#ff00ff", "#00e5ff", "#ffd400", "#ff6a00", "#7cff00", "#ff4f9a")  # one per label set
_RESERVED = {
    "id", "filepath", "tags", "metadata", "group", "media_type", "created_at", "last_modified_at",
    "depth", "split", "video_id", "subject", "session", "view", "condition", "frame_index",
    "colour_frame_number", "colour_ts_ms", "depth_ts_ms", "frames",
}  # fmt: skip
_META_COLS = ("subject", "session", "view", "condition")


@dataclass(frozen=True)
class BuildPlan:
    """What one build will do (validated before the database starts)."""

    root: DatasetRoot
    name: str
    label_sets: tuple[str, ...]
    fields: dict[str, str]  # label set -> keypoints field (boxes: "<field>_boxes")
    split_name: str | None
    video_split: dict[str, str]
    notes: tuple[str, ...] = ()


@dataclass
class BuildReport:
    """Counts of one build, stored in ``dataset.info['gaitdata']['last_build']``."""

    added_frames: int = 0
    existing_frames: int = 0
    removed_frames: int = 0
    updated_label_sets: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def dataset_name(root: DatasetRoot) -> str:
    """``gaitdata-<root folder>-<8 hex of the absolute path>``: stable per root, unique per path."""
    digest = hashlib.sha1(str(root.path).encode()).hexdigest()[:8]
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", root.path.name).strip("-") or "root"
    return f"gaitdata-{base}-{digest}"


def field_name(label_set: str) -> str:
    """FiftyOne field for a label set: dots/dashes become underscores; reserved names get a prefix."""
    f = re.sub(r"[^A-Za-z0-9_]", "_", label_set)
    if f in _RESERVED or f[0].isdigit() or f.endswith("_boxes") or f.startswith("oks_"):
        f = "labels_" + f
    return f


def video_split_map(root: DatasetRoot, split: str | None) -> tuple[str | None, dict[str, str]]:
    """(split name, video_id -> part) for ``split``; ``None`` picks ``default`` or the only split."""
    have = sorted(p.stem for p in root.splits_dir.glob("*.json")) if root.splits_dir.is_dir() else []
    if split is None:
        if "default" in have:
            split = "default"
        elif len(have) == 1:
            split = have[0]
        else:
            return None, {}
    if split not in have:
        raise GaitdataError(
            f"split {split!r} not found in {root.splits_dir}; available: {', '.join(have) or 'none'}. "
            f"Create one with: gaitdata split {root.path}"
        )
    try:
        from splits.core import load_split

        return split, load_split(root, split).video_to_split()
    except ImportError:  # the splits package is absent: read the members directly
        d = json.loads((root.splits_dir / f"{split}.json").read_text())
        out: dict[str, str] = {}
        for part, members in d.get("splits", {}).items():
            for v in members.get("videos", []):
                out.setdefault(v, part)
        return split, out


def plan(root: str | os.PathLike | DatasetRoot, labels: Sequence[str] | None = None, split: str | None = None) -> BuildPlan:
    """Validate the inputs of a build (root, label sets, split) without touching FiftyOne."""
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    r.meta()
    available = r.label_sets()
    notes: list[str] = []
    if labels is None:
        chosen = list(available)
    else:
        chosen = list(dict.fromkeys(labels))
        unknown = [name for name in chosen if name not in available]
        if unknown:
            raise GaitdataError(
                f"label set(s) {', '.join(map(repr, unknown))} not found in {r.labels_dir}; available: "
                f"{', '.join(available) or 'none'}"
            )
    if not chosen:
        notes.append(f"no label sets in {r.labels_dir}: browsing frames only (label them with: gaitdata label {r.path})")
    fields = {name: field_name(name) for name in chosen}
    clash = [f for f in set(fields.values()) if list(fields.values()).count(f) > 1]
    if clash:
        raise GaitdataError(f"label sets {sorted(n for n, f in fields.items() if f in clash)} map to one field; rename one")
    split_name, vmap = video_split_map(r, split)
    if split_name is None:
        notes.append("no split selected: no split field or split views (create one with: gaitdata split ROOT)")
    return BuildPlan(r, dataset_name(r), tuple(chosen), fields, split_name, vmap, tuple(notes))


# ---- conversion --------------------------------------------------------------------------------
def _frame_size(root: DatasetRoot, video: Any, rgb_rel: str) -> tuple[int, int]:
    w, h = video.get("width"), video.get("height")
    if w is not None and h is not None and not pd.isna(w) and not pd.isna(h):
        return int(w), int(h)
    import cv2

    img = cv2.imread(str(root.abspath(rgb_rel)), cv2.IMREAD_REDUCED_GRAYSCALE_2)
    if img is None:
        raise GaitdataError(f"cannot read {root.abspath(rgb_rel)}: re-extract {video.get('video_id')}")
    return img.shape[1] * 2, img.shape[0] * 2


def depth_units_range(depth_scale: float | None, sample: np.ndarray | None = None) -> list[float]:
    """Colour scale ``[lo, hi]`` (raw depth units) of a recording's heatmaps and previews.

    From a sample depth frame: its 1st-99th percentile of valid (non-zero) depth, widened by 10 %
    (at least 10 cm);
    without one (or when it holds no depth): 0 .. 6 m in the recording's units.
    """
    scale = depth_scale if depth_scale and not pd.isna(depth_scale) and depth_scale > 0 else 0.001
    fallback = [0.0, float(min(65535.0, round(DEPTH_RANGE_M / scale)))]
    if sample is None:
        return fallback
    valid = sample[sample > 0]
    if valid.size < 16:
        return fallback
    lo, hi = (float(v) for v in np.percentile(valid, [1, 99]))
    pad = max(0.1 * (hi - lo), 0.1 / scale)  # at least 10 cm
    return [max(0.0, round(lo - pad)), min(65535.0, round(hi + pad))]


def _video_depth_range(root: DatasetRoot, depth_scale: Any, frames: pd.DataFrame) -> list[float]:
    """:func:`depth_units_range` from the middle depth frame of one recording's ``frames``."""
    import cv2

    rels = frames["depth_path"].dropna()
    sample = None
    if len(rels):
        d = cv2.imread(str(root.abspath(str(rels.iloc[len(rels) // 2]))), cv2.IMREAD_UNCHANGED)
        sample = d if d is not None and d.dtype == np.uint16 else None
    return depth_units_range(depth_scale, sample)


def preview_relpath(video_id: str, frame_index: int) -> str:
    return (PREVIEW_DIR / video_id / f"{frame_index:06d}.png").as_posix()


def make_preview(depth_path: Path, out: Path, value_range: Sequence[float]) -> None:
    """8-bit colourised preview of a 16-bit depth PNG (0 = no depth = black), written atomically."""
    import cv2

    d = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
    if d is None or d.dtype != np.uint16:
        raise GaitdataError(f"{depth_path}: not a 16-bit depth PNG; re-extract this recording")
    lo, hi = float(value_range[0]), float(value_range[1])
    v = np.clip((d.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)
    rgb = cv2.applyColorMap(v, cv2.COLORMAP_TURBO)
    rgb[d == 0] = 0
    ok, buf = cv2.imencode(".png", rgb, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise GaitdataError(f"cannot encode the depth preview of {depth_path}")
    atomic_write_bytes(out, buf.tobytes())


def make_previews(root: DatasetRoot, jobs: list[tuple[str, str, Sequence[float]]], workers: int = 2) -> dict[str, str]:
    """Write missing previews for ``(depth_rel, preview_rel, range)``; return ``{depth_rel: error}`` failures."""
    todo = [j for j in jobs if not root.abspath(j[1]).is_file()]
    errors: dict[str, str] = {}

    def one(job: tuple[str, str, Sequence[float]]) -> None:
        try:
            make_preview(root.abspath(job[0]), root.abspath(job[1]), job[2])
        except (GaitdataError, OSError) as exc:
            errors[job[0]] = str(exc)

    if todo:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(one, todo))
    return errors


def _person_docs(r: Any, w: int, h: int, k: int) -> tuple[dict, dict | None]:
    """FiftyOne ``Keypoint`` and ``Detection`` documents (plain dicts) of one label row with a person."""
    from bson import ObjectId

    arr = np.asarray(r.keypoints, dtype=np.float64).reshape(k, 3)
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

    arr = np.asarray(r.keypoints, dtype=np.float64).reshape(k, 3)
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
            kp, det = _person_docs(r, w, h, k)
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


def write_docs(fo: Any, ds: Any, updates: dict[str, dict[str, dict | None]], fast: bool = True) -> None:
    """Set label fields from FiftyOne documents on samples ``{sample id: {field: doc or None}}``.

    One bulk write straight to the dataset's sample collection: building FiftyOne Label objects
    and serialising them back costs most of the ingest time. The fields must be declared first
    (see :func:`declare_label_fields`). Falls back to ``set_values`` with Label objects when the
    collection is not reachable.
    """
    if not updates:
        return
    coll = getattr(ds, "_sample_collection", None) if fast else None
    if coll is None:  # another FiftyOne version (or fast=False): the public, slower path
        by_field: dict[str, dict[str, Any]] = {}
        for sid, fields in updates.items():
            for f, doc in fields.items():
                by_field.setdefault(f, {})[sid] = None if doc is None else getattr(fo, doc["_cls"]).from_dict(doc)
        view = ds.select_group_slices()
        for f, vals in by_field.items():
            view.select(list(vals)).set_values(f, vals, key_field="id")
        return
    from datetime import UTC, datetime

    from bson import ObjectId
    from pymongo import UpdateOne

    now = datetime.now(UTC).replace(tzinfo=None)
    ops = [UpdateOne({"_id": ObjectId(sid)}, {"$set": {**fields, "last_modified_at": now}}) for sid, fields in updates.items()]
    for start in range(0, len(ops), 1000):
        coll.bulk_write(ops[start : start + 1000], ordered=False)


def declare_label_fields(fo: Any, ds: Any, fields: Iterable[str], heatmap: bool = True, editable: bool = False) -> None:
    """Declare ``<f>`` (Keypoints), ``<f>_boxes`` (Detections), with ``editable`` ``<f>_edit``
    (Polylines) for each label field, and ``depth`` (Heatmap)."""
    schema = ds.get_field_schema()
    wanted: dict[str, Any] = {}
    for f in fields:
        wanted.update({f: fo.Keypoints, f + "_boxes": fo.Detections})
        if editable:
            wanted[f + "_edit"] = fo.Polylines
    if heatmap:
        wanted["depth"] = fo.Heatmap
    for f, cls in wanted.items():
        if f not in schema:
            ds.add_sample_field(f, fo.EmbeddedDocumentField, embedded_doc_type=cls)


# ---- agreement between two label sets ------------------------------------------------------------
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of COCO boxes a (N,4) and b (M,4)."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def frame_agreement(a: pd.DataFrame, b: pd.DataFrame, schema: KeypointSchema = COCO17,
                    min_iou: float = 0.1) -> dict[tuple[str, int], float]:  # fmt: skip
    """Per frame, the lowest OKS between persons of label sets ``a`` (reference) and ``b``.

    Persons are matched greedily by box IoU (>= ``min_iou``); a person without a partner counts
    as OKS 0. Frames where neither set has a person are left out.
    """
    from gaitdata.labels import keypoints_array, visibility_array
    from gaitdata.metrics import oks

    k = schema.num_keypoints
    a = a[a["has_person"].fillna(False).astype(bool)]
    b = b[b["has_person"].fillna(False).astype(bool)]
    ga = dict(list(a.groupby(["video_id", "frame_index"], sort=False)))
    gb = dict(list(b.groupby(["video_id", "frame_index"], sort=False)))
    out: dict[tuple[str, int], float] = {}
    for key in set(ga) | set(gb):
        ra, rb = ga.get(key), gb.get(key)
        if ra is None or rb is None:
            out[(str(key[0]), int(key[1]))] = 0.0
            continue
        ba = ra[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(np.float64)
        bb = rb[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(np.float64)
        iou = np.nan_to_num(_iou(ba, bb))
        ka, kb = keypoints_array(ra, k), keypoints_array(rb, k)
        va = visibility_array(ra, k)
        scores: list[float] = []
        used_a, used_b = set(), set()
        for flat in np.argsort(-iou, axis=None):
            i, j = np.unravel_index(flat, iou.shape)
            if iou[i, j] < min_iou:
                break
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            area = float(np.nan_to_num(ba[i, 2] * ba[i, 3]))
            s = float(oks(kb[j], ka[i], va[i], area, schema))
            scores.append(0.0 if math.isnan(s) else s)
        scores += [0.0] * (len(ra) - len(used_a) + len(rb) - len(used_b))
        out[(str(key[0]), int(key[1]))] = min(scores) if scores else 0.0
    return out


def pair_agreement(root: DatasetRoot, a: str, b: str, da: pd.DataFrame, db: pd.DataFrame,
                   schema: KeypointSchema = COCO17) -> dict[tuple[str, int], float]:  # fmt: skip
    """Per-frame lowest OKS between label sets ``a`` and ``b`` (an unmatched person counts as 0).

    Uses ``pseudolabel.agreement`` (the project's matching rules) when it is installed, else
    :func:`frame_agreement`.
    """
    try:
        from pseudolabel.agreement import compare_label_sets
        from pseudolabel.agreement import frame_agreement as per_frame
    except ImportError:
        return frame_agreement(da, db, schema)
    try:
        table = compare_label_sets(root, a, b, write=False)
    except GaitdataError:  # no frame in common
        return {}
    f = per_frame(table)
    return {(str(v), int(i)): float(o) for v, i, o in zip(f["video_id"], f["frame_index"], f["min_oks"], strict=True)}


def agreement_field(fa: str, fb: str) -> str:
    return f"oks_{fa}_vs_{fb}"


# ---- build ---------------------------------------------------------------------------------------
def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, flush=True)


def _new_dataset(fo: Any, name: str, schema: KeypointSchema) -> Any:
    ds = fo.Dataset(name, persistent=True)
    ds.add_group_field("group", default=RGB)
    ds.default_skeleton = fo.KeypointSkeleton(
        labels=list(schema.keypoints), edges=[[a, b] for a, b in schema.skeleton]
    )
    return ds


def _ensure_fields(fo: Any, ds: Any) -> None:
    """Declare the metadata fields (so all-None values, e.g. no split, still have a type)."""
    have = ds.get_field_schema()
    wanted = {f: fo.StringField for f in ("video_id", "split", *_META_COLS)}
    wanted.update({f: fo.IntField for f in ("frame_index", "colour_frame_number")})
    wanted.update({f: fo.FloatField for f in ("colour_ts_ms", "depth_ts_ms")})
    for f, ftype in wanted.items():
        if f not in have:
            ds.add_sample_field(f, ftype)


def rgb_view(ds: Any) -> Any:
    """The ``rgb`` slice as a flat view (the review queues are built on it)."""
    return ds.select_group_slices(RGB)


def build_dataset(
    root: str | os.PathLike | DatasetRoot,
    labels: Sequence[str] | None = None,
    split: str | None = None,
    db_dir: str | os.PathLike | None = None,
    video_level: bool = False,
    progress: bool = False,
    batch_size: int = 500,
    rebuild: bool = False,
    editable: bool = False,
) -> Any:
    """Build or update the persistent grouped FiftyOne dataset of ``root``; return the ``fo.Dataset``.

    ``labels``: label sets to show (default: all; unknown names raise an error listing the
    available ones). ``split``: split to tag samples with (default: ``default`` or the only one).
    ``db_dir``: FiftyOne database directory (default ``<root>/.fiftyone/db``, or
    ``$GAITDATA_FIFTYONE_DIR/db``). ``video_level``: also save a view with one item per recording
    (frames in order). ``rebuild``: delete the FiftyOne dataset first (review tags are lost).
    ``editable``: also add ``<set>_edit`` skeleton polylines, which FiftyOne's in-App annotation
    can move (its keypoints cannot be edited in the App); once on, it stays on for the dataset.
    The build report is in ``dataset.info['gaitdata']['last_build']``.
    """
    p = plan(root, labels, split)
    from gaitdata.browse.db import connect

    fo = connect(p.root.path, db_dir)
    report = BuildReport(notes=list(p.notes))
    schema = p.root.keypoint_schema()
    k = schema.num_keypoints

    if rebuild and fo.dataset_exists(p.name):
        fo.delete_dataset(p.name)
    if fo.dataset_exists(p.name):
        ds = fo.load_dataset(p.name)
        if ds.media_type != "group":
            raise GaitdataError(f"FiftyOne dataset {p.name} is not a grouped dataset; delete it with: "
                                f"gaitdata browse {p.root.path} --rebuild")  # fmt: skip
    else:
        ds = _new_dataset(fo, p.name, schema)
    _ensure_fields(fo, ds)
    info = dict(ds.info.get(FIELD_INFO_KEY, {}))
    known_sets: dict[str, dict] = dict(info.get("label_sets", {}))

    videos = p.root.read_videos().set_index("video_id", drop=False)
    frames = p.root.read_frames()
    frames = frames[(frames["status"] == "ok") & frames["rgb_path"].notna()]
    frames = frames[frames["video_id"].isin(videos.index)].reset_index(drop=True)
    have: set[tuple[str, int]] = set()
    keys = list(zip(frames["video_id"].astype(str), frames["frame_index"].astype(int), strict=True))
    if RGB in (ds.group_slices or []):
        rgb = rgb_view(ds)
        gids = rgb.values("group.id")
        have_keys = list(zip(rgb.values("video_id"), rgb.values("frame_index"), strict=True))
        current = set(keys)
        stale = [g for g, key in zip(gids, have_keys, strict=True) if key not in current]
        if stale:  # frames no longer written in the root (re-extracted, removed): drop their groups
            ds.delete_groups(stale)
            report.removed_frames = len(stale)
            report.notes.append(f"{len(stale)} frames no longer in {p.root.frames_path} were removed from the dataset")
        have = set(have_keys) & current
    report.existing_frames = len(have)
    new_mask = np.array([key not in have for key in keys], dtype=bool)
    new = frames[new_mask].reset_index(drop=True)

    sizes: dict[str, tuple[int, int]] = {}
    for vid, grp in frames.groupby("video_id", sort=False):
        sizes[str(vid)] = _frame_size(p.root, videos.loc[vid].to_dict(), str(grp["rgb_path"].iloc[0]))
    ranges = {str(v): _video_depth_range(p.root, videos.loc[v, "depth_scale"], grp)
              for v, grp in frames.groupby("video_id", sort=False)}  # fmt: skip

    tables = {name: read_labels(p.root, name) for name in p.label_sets}
    fingerprints = {name: file_fingerprint(p.root.label_path(name)) for name in p.label_sets}
    changed = [n for n in p.label_sets if known_sets.get(n, {}).get("fingerprint") != fingerprints[n]]
    if editable and not info.get("editable"):
        changed = list(p.label_sets)  # the existing frames need their editable skeletons too
    editable = editable or bool(info.get("editable"))
    skel = list(schema.skeleton) if editable else None

    # 1. new frames: previews, then samples in batches
    if len(new):
        jobs = [(str(r.depth_path), preview_relpath(r.video_id, int(r.frame_index)), ranges[r.video_id])
                for r in new.itertuples(index=False) if r.depth_path is not None and not pd.isna(r.depth_path)]  # fmt: skip
        _say(progress, f"browse: {len(jobs)} depth previews ({sum(not p.root.abspath(j[1]).is_file() for j in jobs)} new)")
        bad_depth = make_previews(p.root, jobs)
        for rel, err in list(bad_depth.items())[:3]:
            report.skipped.append(f"depth {rel}: {err}")
        if len(bad_depth) > 3:
            report.skipped.append(f"... and {len(bad_depth) - 3} more depth frames without a preview")
        new_keys = list(zip(new["video_id"].astype(str), new["frame_index"].astype(int), strict=True))
        per_set = {name: label_docs(tables[name], sizes, new_keys, k, skel) for name in p.label_sets}
        declare_label_fields(fo, ds, [p.fields[n] for n in p.label_sets], editable=editable)
        _say(progress, f"browse: adding {len(new)} frames to FiftyOne dataset {p.name}")
        for start in range(0, len(new), batch_size):
            chunk = new.iloc[start : start + batch_size]
            add_specs(fo, ds, make_specs(p, chunk, videos, sizes, ranges, per_set, bad_depth))
        report.added_frames = len(new)

    # 2. label sets that changed on disk: rewrite their fields on the frames that were already there
    old_keys = [key for key, is_new in zip(keys, new_mask, strict=True) if not is_new]
    if RGB not in (ds.group_slices or []):
        report.notes.append(f"no written frames in {p.root.frames_path}: the dataset is empty")
        ds.info[FIELD_INFO_KEY] = {**info, "root": str(p.root.path)}
        ds.save()
        return ds
    rgb = rgb_view(ds)
    for name in changed:
        if name in known_sets and old_keys:
            _say(progress, f"browse: label set {name} changed; updating its fields")
        if old_keys:
            set_label_fields(fo, ds, p.fields[name], label_docs(tables[name], sizes, old_keys, k, skel), old_keys,
                             editable)  # fmt: skip
        report.updated_label_sets.append(name)
        known_sets[name] = {"field": p.fields[name], "fingerprint": fingerprints[name]}

    # 3. split field and tags, agreement fields, saved views
    if report.added_frames or changed:
        ds.add_dynamic_sample_fields()  # person_index, score, ... of the keypoints: filterable in the App
    set_split(p, ds)
    pairs = [(p.label_sets[0], other) for other in p.label_sets[1:]]
    for a, b in pairs:
        f = agreement_field(p.fields[a], p.fields[b])
        if f not in ds.get_field_schema():
            ds.add_sample_field(f, fo.FloatField)
        elif not (changed or len(new)):
            continue  # nothing changed since it was computed
        scores = pair_agreement(p.root, a, b, tables[a], tables[b], schema)
        ids, vids, fis = rgb.values("id"), rgb.values("video_id"), rgb.values("frame_index")
        rgb.set_values(f, {i: scores.get((v, fi)) for i, v, fi in zip(ids, vids, fis, strict=True)}, key_field="id")
    save_views(ds, p, video_level=video_level)
    # every label field the dataset holds (also those of earlier builds), in a stable order
    all_fields = list(dict.fromkeys([*(p.fields[n] for n in p.label_sets), *(v["field"] for v in known_sets.values())]))
    colours = [{"path": f + suffix, "fieldColor": FIELD_COLOURS[i % len(FIELD_COLOURS)]}
               for i, f in enumerate(all_fields) for suffix in LABEL_SUFFIXES]  # fmt: skip
    ds.app_config.color_scheme = fo.ColorScheme(color_by="field", fields=colours)
    info.update(
        root=str(p.root.path),
        label_sets=known_sets,
        fields=p.fields,
        split=p.split_name,
        editable=editable,
        last_build={"added_frames": report.added_frames, "existing_frames": report.existing_frames,
                    "removed_frames": report.removed_frames,
                    "updated_label_sets": report.updated_label_sets, "skipped": report.skipped,
                    "notes": report.notes},  # fmt: skip
    )
    ds.info[FIELD_INFO_KEY] = info
    ds.save()
    return ds


@dataclass(frozen=True)
class SampleSpec:
    """One sample to add: its slice, media file, tags, size, metadata fields and label documents."""

    slice: str
    group_id: str
    filepath: str
    tags: tuple[str, ...]
    width: int
    height: int
    fields: dict[str, Any]
    docs: dict[str, dict | None]

    def sample(self, fo: Any) -> Any:
        """A ``fo.Sample`` with Label objects (FiftyOne's public path)."""
        s = fo.Sample(filepath=self.filepath, group=fo.Group(id=self.group_id, name=self.slice), tags=list(self.tags),
                      metadata=fo.ImageMetadata(width=self.width, height=self.height), **self.fields)  # fmt: skip
        for f, doc in self.docs.items():
            s[f] = None if doc is None else getattr(fo, doc["_cls"]).from_dict(doc)
        return s

    def document(self, dataset_id: Any, now: Any, rand: float) -> dict:
        """The stored document, in the layout FiftyOne itself writes for a grouped image sample."""
        from bson import ObjectId

        return {
            "_id": ObjectId(), "_dataset_id": dataset_id, "_media_type": "image", "_rand": rand,
            "filepath": self.filepath, "tags": list(self.tags), "created_at": now, "last_modified_at": now,
            "metadata": {"_cls": "ImageMetadata", "width": self.width, "height": self.height},
            "group": {"_cls": "Group", "_id": ObjectId(self.group_id), "name": self.slice},
            **self.fields, **self.docs,
        }  # fmt: skip


def make_specs(p: BuildPlan, chunk: pd.DataFrame, videos: pd.DataFrame, sizes: dict, ranges: dict,
               per_set: dict, bad_depth: dict) -> list[SampleSpec]:  # fmt: skip
    """The ``rgb`` and ``depth`` samples of the frames in ``chunk`` (one group per frame)."""
    from bson import ObjectId

    out: list[SampleSpec] = []
    vmeta = {str(vid): {c: None if pd.isna(videos.loc[vid, c]) else str(videos.loc[vid, c]) for c in _META_COLS}
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
            "split": p.video_split.get(vid),
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


def add_specs(fo: Any, ds: Any, specs: list[SampleSpec], fast: bool = True) -> None:
    """Insert samples in one bulk write to the dataset's sample collection.

    A sample of a slice the dataset does not have yet goes through ``add_samples`` (FiftyOne
    registers the slice and its media type); the rest are stored directly in the layout FiftyOne
    writes itself, which is several times faster than building and serialising Sample and Label
    objects. Without access to the collection (another FiftyOne version) everything takes the
    public path (as with ``fast=False``).
    """
    import random
    from datetime import UTC, datetime

    coll = getattr(ds, "_sample_collection", None) if fast else None
    dataset_id = getattr(ds, "_doc", None) and getattr(ds._doc, "id", None)
    rest = list(specs)
    if coll is None or dataset_id is None:
        ds.add_samples([s.sample(fo) for s in rest], progress=False, validate=False)
        return
    from bson import ObjectId

    while rest:
        known = set(ds.group_slices or [])
        new_slice = next((i for i, s in enumerate(rest) if s.slice not in known), None)
        if new_slice is None:
            break
        ds.add_samples([rest.pop(new_slice).sample(fo)], progress=False, validate=False)
    if not rest:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    rng = random.Random()
    oid = ObjectId(str(dataset_id))
    docs = [s.document(oid, now, rng.random() * 0.001 + 0.999) for s in rest]
    coll.insert_many(docs, ordered=False)


def set_label_fields(fo: Any, ds: Any, fld: str, values: dict[tuple[str, int], dict[str, dict]],
                     keys: Iterable[tuple[str, int]], editable: bool = False) -> None:  # fmt: skip
    """Set the fields of label field ``fld`` on the rgb samples of ``keys`` (frames without rows: None)."""
    declare_label_fields(fo, ds, [fld], heatmap=False, editable=editable)
    suffixes = LABEL_SUFFIXES if editable else LABEL_SUFFIXES[:2]
    rgb = rgb_view(ds)
    wanted = set(keys)
    ids, vids, fis = rgb.values("id"), rgb.values("video_id"), rgb.values("frame_index")
    updates = {}
    for i, v, f in zip(ids, vids, fis, strict=True):
        if (v, f) in wanted:
            docs = values.get((v, f), {})
            updates[i] = {fld + sfx: docs.get(sfx) for sfx in suffixes}
    write_docs(fo, ds, updates)


def set_split(p: BuildPlan, ds: Any) -> int:
    """Write the split field and ``split:<part>`` tags on both slices where they differ; other tags stay.

    Returns the number of samples changed.
    """
    view = ds.select_group_slices()
    ids, vids, splits, tags = view.values("id"), view.values("video_id"), view.values("split"), view.values("tags")
    new_split, new_tags = {}, {}
    for i, v, old, t in zip(ids, vids, splits, tags, strict=True):
        part = p.video_split.get(v)
        if part != old:
            new_split[i] = part
        keep = [x for x in (t or []) if not x.startswith("split:")] + ([f"split:{part}"] if part else [])
        if keep != list(t or []):
            new_tags[i] = keep
    if new_split:
        view.select(list(new_split)).set_values("split", new_split, key_field="id")
    if new_tags:
        view.select(list(new_tags)).set_values("tags", new_tags, key_field="id")
    return len(set(new_split) | set(new_tags))


def save_views(ds: Any, p: BuildPlan, video_level: bool = False) -> list[str]:
    """(Re)create the saved review views; returns their names."""
    from fiftyone import ViewField as F

    rgb = rgb_view(ds)
    names: list[str] = []
    for old in ds.list_saved_views():
        ds.delete_saved_view(old)

    def save(name: str, view: Any, description: str) -> None:
        ds.save_view(name, view, description=description, overwrite=True)
        names.append(name)

    if p.label_sets:
        primary = p.fields[p.label_sets[0]]
        save("low-confidence", rgb.filter_labels(primary, F("mean_confidence") < LOW_CONFIDENCE),
             f"persons of {p.label_sets[0]} with mean keypoint confidence < {LOW_CONFIDENCE}")  # fmt: skip
        flagged = rgb.match_labels(filter=F("tags").length() > 0, fields=[p.fields[n] for n in p.label_sets])
        save("qa-flagged", flagged, "frames with a QA-flagged person in any label set")
        for other in p.label_sets[1:]:
            f = agreement_field(primary, p.fields[other])
            save(f"disagree-{re.sub(r'[^A-Za-z0-9-]', '-', other)}".lower(),
                 rgb.match(F(f) < DISAGREEMENT_OKS).sort_by(f),
                 f"frames where {other} and {p.label_sets[0]} agree with OKS < {DISAGREEMENT_OKS}")  # fmt: skip
    for part in sorted(set(p.video_split.values())):
        save(f"split-{re.sub(r'[^A-Za-z0-9-]', '-', part)}".lower(), rgb.match(F("split") == part),
             f"{part} frames of split {p.split_name}")  # fmt: skip
    if video_level:
        save("videos", rgb.group_by("video_id", order_by="frame_index"),
             "one item per recording; frames in order with their labels")  # fmt: skip
    return names
