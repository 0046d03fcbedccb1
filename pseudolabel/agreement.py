"""Agreement between two label sets (e.g. two teachers) as a review signal, and their merge.

:func:`compare_label_sets` matches the persons of each frame present in both sets and writes one
row per matched pair, plus one row per unmatched person, to ``<root>/agreement/<a>__<b>.parquet``
(and a summary to ``<a>__<b>.json``). The browse view of disagreements reads that table: sort by
``oks`` or filter ``status != "matched"``.

Definitions (symmetric in the two sets):

- joints compared: those with COCO visibility > 0 on both sides;
- ``oks``: COCO's object keypoint similarity over the compared joints with the OKS sigmas of the
  root's keypoint schema (COCO-17's for a COCO root) and,
  as the object area, the mean of the two boxes' areas (w * h); NaN when no joint is compared;
- ``joint_dist_px``: per joint the Euclidean distance in pixels, NaN where either side is invisible;
  ``mean_dist_px`` its mean over compared joints;
- matching: per frame, candidate pairs have OKS >= ``min_oks`` or box IoU >= ``min_iou``; pairs are
  taken greedily by decreasing OKS (then IoU), each person used once (COCOeval's matching habit).

:func:`merge_label_sets` writes a new label set from A. A frame *agrees* when every person of
either set is matched with OKS >= ``threshold`` (or neither set has a person). Rows of agreeing
frames are kept (``keypoints="a"``: A's keypoints unchanged; ``"average"``: each joint visible on
both sides becomes the confidence-weighted mean of the two positions, with the mean confidence and
the lower visibility; a joint visible on one side only keeps that side). Rows of disagreeing frames
keep A's values and get the QA flag ``disagree`` (or are dropped with ``keep_disagreeing=False``);
frames absent from B get ``not_compared``. The threshold and rules go into the label-set metadata.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.geometry import iou_matrix, match_greedy
from gaitdata.io import atomic_write_json, atomic_write_parquet
from gaitdata.labels import (
    check_label_set_name,
    encode_keypoints,
    keypoints_array,
    read_label_meta,
    read_labels,
    visibility_array,
    write_labels,
)
from gaitdata.lock import writes_root
from gaitdata.progress import progress_bar
from gaitdata.schema import COCO17, KeypointSchema

DISAGREE_FLAG = "disagree"
NOT_COMPARED_FLAG = "not_compared"
MIN_OKS = 0.1  # a pair with lower OKS and lower box IoU is not a candidate match
MIN_IOU = 0.1

AGREEMENT_COLUMNS: dict[str, str] = {
    "video_id": "string",
    "frame_index": "Int64",
    "status": "string",  # matched | only_a | only_b
    "person_index_a": "Int64",
    "person_index_b": "Int64",
    "oks": "float64",
    "box_iou": "float64",
    "mean_dist_px": "float64",
    "num_compared": "Int64",
    "pck_0.1": "float64",  # compared joints within 0.1 x A's box height (A as the reference)
    "joint_dist_px": "object",  # list[float] of K, NaN where either side is invisible
    "score_a": "float64",
    "score_b": "float64",
}


# ---- pure functions ----------------------------------------------------------------------------------
def pair_metrics(
    kp_a: np.ndarray, vis_a: np.ndarray, box_a: np.ndarray,
    kp_b: np.ndarray, vis_b: np.ndarray, box_b: np.ndarray,
    schema: KeypointSchema = COCO17,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """All pairs: OKS (Na, Nb) and per-joint distances (Na, Nb, K) (NaN where either side is invisible)."""
    kp_a, kp_b = np.asarray(kp_a, np.float64), np.asarray(kp_b, np.float64)
    both = (np.asarray(vis_a)[:, None] > 0) & (np.asarray(vis_b)[None] > 0)  # (Na, Nb, K)
    diff = kp_a[:, None, :, :2] - kp_b[None, :, :, :2]
    d2 = (diff**2).sum(-1)
    area_a = np.asarray(box_a, np.float64)[:, 2] * np.asarray(box_a, np.float64)[:, 3]
    area_b = np.asarray(box_b, np.float64)[:, 2] * np.asarray(box_b, np.float64)[:, 3]
    area = (area_a[:, None] + area_b[None]) / 2
    var = (2 * np.asarray(schema.sigmas, np.float64)) ** 2
    e = d2 / var / (area[..., None] + np.spacing(1)) / 2
    num = np.where(both, np.exp(-e), 0.0).sum(-1)
    den = both.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        oks = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    dist = np.where(both, np.sqrt(d2), np.nan)
    return oks, dist


def greedy_match(
    oks: np.ndarray, iou: np.ndarray, min_oks: float = MIN_OKS, min_iou: float = MIN_IOU
) -> list[tuple[int, int]]:
    """One-to-one pairs by :func:`gaitdata.geometry.match_greedy`: candidates have OKS >= ``min_oks`` or
    IoU >= ``min_iou``, taken by decreasing OKS (NaN counts as 0), then IoU."""
    o = np.nan_to_num(np.asarray(oks, np.float64), nan=0.0)
    iou = np.asarray(iou, np.float64)
    return match_greedy(o, (o >= min_oks) | (iou >= min_iou), then_by=iou)


# ---- label-set level -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Persons:
    """Person rows of one label set as arrays, indexed by frame."""

    frames: dict[tuple[str, int], np.ndarray]  # (video_id, frame_index) -> row positions of persons
    all_frames: frozenset[tuple[str, int]]
    kp: np.ndarray  # (N, K, 3)
    vis: np.ndarray  # (N, K)
    box: np.ndarray  # (N, 4)
    person_index: np.ndarray
    score: np.ndarray


def _persons(df: pd.DataFrame, k: int) -> _Persons:
    has = df["has_person"].fillna(False).to_numpy(dtype=bool)
    keys = list(zip(df["video_id"].astype(str), df["frame_index"].astype("int64"), strict=True))
    frames: dict[tuple[str, int], list[int]] = {}
    for pos in np.flatnonzero(has):
        frames.setdefault(keys[pos], []).append(int(pos))
    box = df[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(dtype=np.float64, na_value=np.nan)
    return _Persons(
        frames={f: np.asarray(v) for f, v in frames.items()},
        all_frames=frozenset(keys),
        kp=keypoints_array(df, k),
        vis=visibility_array(df, k),
        box=box,
        person_index=df["person_index"].to_numpy(dtype=np.int64, na_value=-1),
        score=df["score"].to_numpy(dtype=np.float64, na_value=np.nan),
    )


def _progress(it: Iterable, total: int, progress: bool, desc: str) -> Iterable:
    return progress_bar(it, total=total, desc=desc, unit="frame", enabled=progress, transient=True)


def _compare_frames(
    pa: _Persons, pb: _Persons, frames: list[tuple[str, int]], schema: KeypointSchema, progress: bool
) -> pd.DataFrame:
    nan_k = [math.nan] * schema.num_keypoints
    rows: list[dict] = []
    empty = np.zeros(0, dtype=np.int64)
    for vid, fi in _progress(frames, len(frames), progress, "compare"):
        ia, ib = pa.frames.get((vid, fi), empty), pb.frames.get((vid, fi), empty)
        pairs: list[tuple[int, int]] = []
        if len(ia) and len(ib):
            oks, dist = pair_metrics(pa.kp[ia], pa.vis[ia], pa.box[ia], pb.kp[ib], pb.vis[ib], pb.box[ib], schema)
            iou = iou_matrix(pa.box[ia], pb.box[ib])
            pairs = greedy_match(oks, iou)
            for i, j in pairs:
                d = dist[i, j]
                n = int(np.isfinite(d).sum())
                ref = 0.1 * pa.box[ia[i], 3]
                rows.append({
                    "video_id": vid, "frame_index": fi, "status": "matched",
                    "person_index_a": int(pa.person_index[ia[i]]), "person_index_b": int(pb.person_index[ib[j]]),
                    "oks": float(oks[i, j]), "box_iou": float(iou[i, j]),
                    "mean_dist_px": float(np.nanmean(d)) if n else math.nan, "num_compared": n,
                    "pck_0.1": float((d[np.isfinite(d)] <= ref).mean()) if n else math.nan,
                    "joint_dist_px": [float(v) for v in d],
                    "score_a": float(pa.score[ia[i]]), "score_b": float(pb.score[ib[j]]),
                })  # fmt: skip
        ma = {i for i, _ in pairs}
        mb = {j for _, j in pairs}
        for i in range(len(ia)):
            if i not in ma:
                rows.append({"video_id": vid, "frame_index": fi, "status": "only_a",
                             "person_index_a": int(pa.person_index[ia[i]]), "joint_dist_px": nan_k,
                             "score_a": float(pa.score[ia[i]])})  # fmt: skip
        for j in range(len(ib)):
            if j not in mb:
                rows.append({"video_id": vid, "frame_index": fi, "status": "only_b",
                             "person_index_b": int(pb.person_index[ib[j]]), "joint_dist_px": nan_k,
                             "score_b": float(pb.score[ib[j]])})  # fmt: skip
    out = pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
    for c, t in AGREEMENT_COLUMNS.items():
        out[c] = out[c].astype(t) if t != "object" else out[c].astype(object)
    return out


def frame_agreement(table: pd.DataFrame, threshold: float = 0.8) -> pd.DataFrame:
    """Per frame of an agreement table: persons matched / only in A / only in B, the lowest OKS
    (an unmatched person counts as 0) and ``agree`` (every person matched with OKS >= threshold).

    Frames where neither set has a person do not appear (they agree trivially).
    """
    t = table.assign(
        _oks=table["oks"].astype("float64").fillna(0.0).where(table["status"] == "matched", 0.0),
        _m=(table["status"] == "matched").astype(int),
        _a=(table["status"] == "only_a").astype(int),
        _b=(table["status"] == "only_b").astype(int),
    )
    g = t.groupby(["video_id", "frame_index"], sort=True)
    out = pd.DataFrame({
        "matched": g["_m"].sum(), "only_a": g["_a"].sum(), "only_b": g["_b"].sum(), "min_oks": g["_oks"].min(),
    }).reset_index()  # fmt: skip
    out["agree"] = (out["only_a"] == 0) & (out["only_b"] == 0) & (out["min_oks"] >= threshold)
    return out


def agreement_path(root: DatasetRoot | str, a: str, b: str) -> Path:
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    return root.path / "agreement" / f"{check_label_set_name(a)}__{check_label_set_name(b)}.parquet"


def summarize(table: pd.DataFrame, threshold: float = 0.8, schema: KeypointSchema = COCO17, **extra) -> dict:
    """Summary of an agreement table: counts, mean/median OKS, fraction of matches below
    ``threshold``, per-joint median distance (pixels)."""
    m = table[table["status"] == "matched"]
    oks = m["oks"].to_numpy(dtype=np.float64, na_value=np.nan)
    finite = oks[np.isfinite(oks)]
    if len(m):
        d = np.stack([np.asarray(v, np.float64) for v in m["joint_dist_px"]])
        with warnings.catch_warnings():  # all-NaN joints (never visible on both sides) -> NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(d, axis=0)
    else:
        med = np.full(schema.num_keypoints, np.nan)
    nan_none = lambda v: None if not np.isfinite(v) else float(v)  # noqa: E731
    return {
        **extra,
        "threshold": float(threshold),
        "persons_matched": int(len(m)),
        "persons_only_a": int((table["status"] == "only_a").sum()),
        "persons_only_b": int((table["status"] == "only_b").sum()),
        "mean_oks": nan_none(finite.mean()) if len(finite) else None,
        "median_oks": nan_none(np.median(finite)) if len(finite) else None,
        "fraction_below_threshold": float((finite < threshold).mean()) if len(finite) else None,
        "median_dist_px": nan_none(np.nanmedian(m["mean_dist_px"].to_numpy(np.float64, na_value=np.nan)))
        if len(m) and m["mean_dist_px"].notna().any()
        else None,
        "per_joint_median_dist_px": {n: nan_none(v) for n, v in zip(schema.keypoints, med, strict=True)},
    }


@writes_root("compare-labels", lambda a: [a["root"]] if a["write"] else [])
def compare_label_sets(
    root: DatasetRoot | str,
    a: str,
    b: str,
    *,
    progress: bool = False,
    threshold: float = 0.8,
    write: bool = True,
) -> pd.DataFrame:
    """Compare label sets ``a`` and ``b`` frame by frame (see the module docstring).

    Returns the agreement table (columns :data:`AGREEMENT_COLUMNS`), also written atomically to
    ``<root>/agreement/<a>__<b>.parquet`` with its summary (:func:`summarize`) in ``<a>__<b>.json``;
    the summary is also in ``table.attrs["summary"]``.
    """
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    if a == b:
        raise GaitdataError(f"compare-labels needs two different label sets, got {a!r} twice")
    da, db = read_labels(root, a), read_labels(root, b)
    schema = root.keypoint_schema()
    pa, pb = _persons(da, schema.num_keypoints), _persons(db, schema.num_keypoints)
    common = sorted(pa.all_frames & pb.all_frames)
    if not common:
        raise GaitdataError(
            f"label sets {a!r} and {b!r} in {root.labels_dir} share no frame; label the same dataset root with both teachers"
        )
    table = _compare_frames(pa, pb, common, schema, progress)
    summary = summarize(
        table, threshold, schema, label_sets=[a, b], frames_compared=len(common),
        frames_only_a=len(pa.all_frames - pb.all_frames), frames_only_b=len(pb.all_frames - pa.all_frames),
    )  # fmt: skip
    table.attrs["summary"] = summary
    if write:
        path = agreement_path(root, a, b)
        atomic_write_parquet(path, table)
        atomic_write_json(path.with_suffix(".json"), summary)
    return table


@dataclass(frozen=True)
class MergeSummary:
    label_set: str
    path: str
    frames: int
    frames_agree: int
    frames_disagree: int
    frames_not_compared: int
    rows: int
    threshold: float

    def to_dict(self) -> dict:
        return asdict(self)


def _average_keypoints(kpa: np.ndarray, va: np.ndarray, kpb: np.ndarray, vb: np.ndarray) -> tuple[list, list]:
    out = kpa.astype(np.float64).copy()
    vis = va.astype(np.int64).copy()
    both = (va > 0) & (vb > 0)
    ca, cb = kpa[:, 2].astype(np.float64), kpb[:, 2].astype(np.float64)
    wsum = np.where(ca + cb > 0, ca + cb, 1.0)
    wa = np.where(ca + cb > 0, ca / wsum, 0.5)
    for c in (0, 1):
        out[both, c] = (wa * kpa[:, c] + (1 - wa) * kpb[:, c])[both]
    out[both, 2] = ((ca + cb) / 2)[both]
    vis[both] = np.minimum(va, vb)[both]
    only_b = (va <= 0) & (vb > 0)
    out[only_b] = kpb[only_b]
    vis[only_b] = vb[only_b]
    return encode_keypoints(out), [int(v) for v in vis]


@writes_root("compare-labels")
def merge_label_sets(
    root: DatasetRoot | str, a: str, b: str, name: str, threshold: float = 0.8, *, keypoints: str = "a",
    keep_disagreeing: bool = True, progress: bool = False,
) -> MergeSummary:  # fmt: skip
    """Write label set ``name`` from ``a``, keeping frames where ``a`` and ``b`` agree (see the module docstring)."""
    if keypoints not in ("a", "average"):
        raise ValueError(f"merge_label_sets: keypoints must be 'a' or 'average', got {keypoints!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"merge_label_sets: threshold is an OKS in [0, 1], got {threshold}")
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    check_label_set_name(name)
    if name in (a, b):
        raise GaitdataError(f"the merged label set needs a new name, not {name!r} (one of the inputs)")
    table = compare_label_sets(root, a, b, progress=progress, threshold=threshold)
    da, db = read_labels(root, a), read_labels(root, b)
    schema = root.keypoint_schema()
    k, schema_name = schema.num_keypoints, schema.name
    b_frames = set(zip(db["video_id"].astype(str), db["frame_index"].astype("int64"), strict=True))
    oks = table["oks"].to_numpy(dtype=np.float64, na_value=np.nan)
    fa = frame_agreement(table, threshold)
    fa = fa[~fa["agree"]]
    disagree = set(zip(fa["video_id"].astype(str), fa["frame_index"].astype("int64"), strict=True))

    keys = list(zip(da["video_id"].astype(str), da["frame_index"].astype("int64"), strict=True))
    out = da.copy()
    flags = []
    keep = np.ones(len(out), dtype=bool)
    for pos, key in enumerate(keys):
        f = list(out.at[pos, "qa_flags"]) if out.at[pos, "qa_flags"] is not None else []
        if key not in b_frames:
            f.append(NOT_COMPARED_FLAG)
        elif key in disagree:
            f.append(DISAGREE_FLAG)
            keep[pos] = keep_disagreeing
        flags.append(sorted(set(f)))
    out["qa_flags"] = pd.Series(flags, index=out.index, dtype=object)

    if keypoints == "average":
        matched = table[(table["status"] == "matched").to_numpy() & (oks >= threshold)]
        row_a = {
            (key[0], key[1], int(p)): i
            for i, (key, p) in enumerate(zip(keys, da["person_index"].astype("int64"), strict=True))
        }
        row_b = {
            (str(v), int(f), int(p)): i
            for i, (v, f, p) in enumerate(
                zip(db["video_id"], db["frame_index"], db["person_index"], strict=True)
            )
        }
        kpa, kpb = keypoints_array(da, k), keypoints_array(db, k)
        va, vb = visibility_array(da, k), visibility_array(db, k)
        teacher = f"{read_label_meta(root, a).get('teacher', a)}+{read_label_meta(root, b).get('teacher', b)}"
        new_kp = out["keypoints"].tolist()
        new_vis = out["visibility"].tolist()
        for v, f, pi, pj in zip(matched["video_id"], matched["frame_index"], matched["person_index_a"],
                                matched["person_index_b"], strict=True):  # fmt: skip
            key = (str(v), int(f))
            if key in disagree:
                continue
            i, j = row_a[(*key, int(pi))], row_b[(*key, int(pj))]
            new_kp[i], new_vis[i] = _average_keypoints(kpa[i], va[i], kpb[j], vb[j])
            out.at[i, "teacher"] = teacher
        out["keypoints"] = pd.Series(new_kp, index=out.index, dtype=object)
        out["visibility"] = pd.Series(new_vis, index=out.index, dtype=object)
        nv = [int(np.sum(np.asarray(x) > 0)) if x is not None else 0 for x in new_vis]
        out["num_visible"] = pd.array(nv, dtype="Int64")

    out = out[keep].reset_index(drop=True)
    frames_a = set(keys)
    n_nc = len(frames_a - b_frames)
    n_dis = len(frames_a & disagree)
    meta = {
        "teacher": "merge",
        "merge": {
            "sources": [a, b],
            "threshold": float(threshold),
            "keypoints": keypoints,
            "keep_disagreeing": bool(keep_disagreeing),
            "rule": "frame agrees when every person of both sets is matched with OKS >= threshold",
            "oks": f"{schema_name} OKS sigmas, area = mean box area, joints visible on both sides",
            "flags": {
                DISAGREE_FLAG: "teachers disagree: review",
                NOT_COMPARED_FLAG: f"frame absent from {b!r}",
            },
            "agreement_table": str(agreement_path(root, a, b).relative_to(root.path)),
        },
        "source_meta": {a: read_label_meta(root, a), b: read_label_meta(root, b)},
        "summary": table.attrs.get("summary", {}),
    }
    path = write_labels(root, name, out, meta)
    return MergeSummary(
        label_set=name, path=str(path), frames=len(frames_a), frames_agree=len(frames_a) - n_dis - n_nc,
        frames_disagree=n_dis, frames_not_compared=n_nc, rows=len(out), threshold=float(threshold),
    )  # fmt: skip
