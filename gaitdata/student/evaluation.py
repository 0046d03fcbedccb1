"""Evaluate a student against the teacher on held-out videos, and both against ground truth.

``gaitdata evaluate ROOT --run RUN --split test [--labels TEACHER_SET] [--gt ground_truth]``

- The frames: the COCO export of the split (``<export>/<split>.json``; the export the model was
  trained from unless ``export`` is given). The reference: the label set ``labels`` on those frames
  (else the export's own annotations, which are the teacher's labels).
- The student runs on the reference's person boxes (top-down, as it would behind the same
  proposer); its per-frame poses are then made left/right consistent along each track
  (:mod:`gaitdata.student.consistency`; ``consistency=None`` reports the raw per-frame output).
- Accuracy vs the teacher: OKS AP (pycocotools COCOeval, iouType keypoints, the schema's sigmas,
  area = box area), PCK at 0.05 / 0.1 / 0.2 of the box's longer side, per-joint errors.
- With a ground-truth label set (synthetic data): student AND teacher against it (each
  ground-truth person matched one-to-one to the reference person whose box overlaps it most).
- Gait, per view (from the recordings' ``view``, else the track's geometry): hip/knee flexion
  and shank inclination curves, correlation and RMSE against ground truth and the teacher; a
  correlation is reported only where the reference angle varies (front views: it does not); in
  side views, heel strikes, step and stride time and cadence (:mod:`gaitdata.student.gait`).
- Compressed variants found in the run (``pruned.pt``, ``int8.pt``, ...) are evaluated too and
  checked against the fp32 model (PCK@0.1 drop within ``tolerance``); ``make_variants=True``
  first creates the missing ones (off by default: evaluation writes only its report).
- Cost, measured in the same run (:mod:`gaitdata.student.cost`).

Writes ``<out>/report.md``, ``<out>/metrics.json`` and PNG plots under ``<out>/report/``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gaitdata.errors import GaitdataError, require
from gaitdata.geometry import match_by_iou
from gaitdata.io import atomic_write_json
from gaitdata.schema import COCO17, KeypointSchema
from gaitdata.staleness import check_evaluate_inputs
from gaitdata.student.consistency import ConsistencyConfig, consistent_persons, side_view_facing
from gaitdata.student.gait import (
    MIN_ANGLE_STD,
    cycle_summary,
    gait_angles,
    is_side,
    match_events,
    track_events,
)

PCK_ALPHAS = (0.05, 0.1, 0.2)
VARIANT_FILES = (
    ("fp32", "best.pt"),
    ("pruned", "pruned.pt"),
    ("int8", "int8.pt"),
    ("pruned_int8", "pruned_int8.pt"),
)
EVENT_TOLERANCE_S = 0.1  # a heel strike within this of the reference's counts as found
DEFAULT_TOLERANCE = 0.02  # PCK@0.1 a compressed variant may lose against fp32


@dataclass(frozen=True)
class EvalResult:
    run_dir: Path
    report: Path
    metrics: dict[str, Any]  # per variant: {"vs_teacher": {...}, "vs_gt": {...}}; plus "teacher_vs_gt"
    cost: list[dict[str, Any]]  # one row per model: name, params, macs, size_bytes, cpu_ms, gpu_ms, ...
    angles: dict[str, Any] = field(default_factory=dict)
    plots: tuple[Path, ...] = ()


# ------------------------------------------------------------------------------------------------
# persons: label-set-shaped frames -> arrays


@dataclass
class Persons:
    """Persons of a set of frames as arrays (one row per person)."""

    video_id: np.ndarray  # (N,) str
    frame_index: np.ndarray  # (N,) int
    bbox: np.ndarray  # (N, 4) x, y, w, h
    kp: np.ndarray  # (N, K, 3) x, y, confidence
    vis: np.ndarray  # (N, K) COCO v
    score: np.ndarray  # (N,)
    is_subject: np.ndarray  # (N,) bool
    track_id: np.ndarray | None = None  # (N,) int, -1 unknown

    def __post_init__(self) -> None:
        if self.track_id is None:
            self.track_id = np.full(len(self.video_id), -1, np.int64)

    def __len__(self) -> int:
        return len(self.video_id)

    def subset(self, idx: np.ndarray) -> Persons:
        return Persons(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    def with_keypoints(self, kp: np.ndarray) -> Persons:
        return Persons(self.video_id, self.frame_index, self.bbox, kp, self.vis, self.score, self.is_subject,
                       self.track_id)  # fmt: skip


def _empty_persons(k: int) -> Persons:
    return Persons(np.array([], str), np.array([], int), np.zeros((0, 4)), np.zeros((0, k, 3)),
                   np.zeros((0, k), int), np.zeros(0), np.zeros(0, bool))  # fmt: skip


def persons_from_labels(df: pd.DataFrame, k: int) -> Persons:
    from gaitdata.labels import keypoints_array, visibility_array

    df = df[df["has_person"].fillna(False).astype(bool)].reset_index(drop=True)
    subj = df["is_subject"]
    if subj.isna().all():  # no subject selection: the highest-scoring person of each frame
        top = df.groupby(["video_id", "frame_index"])["score"].transform("max")
        subj = df["score"] == top
    track = df["track_id"] if "track_id" in df else pd.Series([pd.NA] * len(df))
    return Persons(
        video_id=df["video_id"].astype(str).to_numpy(),
        frame_index=df["frame_index"].astype(int).to_numpy(),
        bbox=df[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(np.float64),
        kp=keypoints_array(df, k).astype(np.float64),
        vis=visibility_array(df, k).astype(np.int64),
        score=df["score"].fillna(1.0).to_numpy(np.float64),
        is_subject=subj.fillna(False).astype(bool).to_numpy(),
        track_id=pd.to_numeric(track, errors="coerce").fillna(-1).astype(np.int64).to_numpy(),
    )


def frames_from_coco(coco_file: Path) -> tuple[pd.DataFrame, dict]:
    """Frames (video_id, frame_index, file_name) of a COCO export, and the parsed file."""
    data = json.loads(coco_file.read_text())
    rows = []
    for im in data.get("images", []):
        vid, fi = im.get("video_id"), im.get("frame_index")
        if vid is None or fi is None:  # frames/<video_id>/rgb/<n:06d>.jpg
            parts = Path(im["file_name"]).parts
            if len(parts) >= 4 and parts[-2] == "rgb":
                vid, fi = parts[-3], int(Path(parts[-1]).stem)
            else:
                raise GaitdataError(
                    f"{coco_file}: image {im.get('id')} has no video_id/frame_index and its file_name "
                    f"{im['file_name']!r} is not frames/<video>/rgb/<n>.jpg; evaluate a gaitdata export"
                )
        rows.append({"image_id": int(im["id"]), "video_id": str(vid), "frame_index": int(fi),
                     "file_name": im["file_name"], "depth_file": im.get("depth_file")})  # fmt: skip
    cols = ["image_id", "video_id", "frame_index", "file_name", "depth_file"]
    return pd.DataFrame(rows, columns=cols), data


def persons_from_coco(data: dict, frames: pd.DataFrame, k: int) -> Persons:
    by_id = frames.set_index("image_id")
    rows = []
    for ann in data.get("annotations", []):
        kp = np.asarray(ann["keypoints"], np.float64).reshape(k, 3)
        conf = np.asarray(ann.get("keypoint_scores") or (kp[:, 2] > 0).astype(float), np.float64)
        im = by_id.loc[int(ann["image_id"])]
        track = ann.get("track_id")
        rows.append((im["video_id"], int(im["frame_index"]), ann["bbox"], np.c_[kp[:, :2], conf], kp[:, 2],
                     float(ann.get("score", 1.0)), ann.get("is_subject"), -1 if track is None else int(track)))  # fmt: skip
    if not rows:
        return _empty_persons(k)
    df = pd.DataFrame(rows, columns=["v", "f", "b", "kp", "vis", "s", "subj", "t"])
    subj = df["subj"]
    if subj.isna().all():
        subj = df["s"] == df.groupby(["v", "f"])["s"].transform("max")
    return Persons(
        df["v"].astype(str).to_numpy(),
        df["f"].astype(int).to_numpy(),
        np.stack(df["b"].map(np.asarray)).astype(float),
        np.stack(df["kp"]),
        np.stack(df["vis"]).astype(int),
        df["s"].to_numpy(float),
        subj.fillna(False).astype(bool).to_numpy(),
        df["t"].to_numpy(np.int64),
    )


# ------------------------------------------------------------------------------------------------
# prediction


def predict_persons(
    model,
    ref: Persons,
    image_root: Path,
    frames: pd.DataFrame,
    input_size,
    batch_size: int = 64,
    device=None,
    flip_test: bool = False,
    schema: KeypointSchema = COCO17,
) -> Persons:
    """Run a student on the reference's boxes; returns persons aligned one-to-one with ``ref``.

    ``flip_test``: also run the mirrored crop, decode it through its own (mirrored) affine with the
    left/right channels swapped, and average the two estimates (coordinates and peak scores).
    """
    import cv2
    import torch

    from gaitdata.student.data import crops_for_boxes, heatmaps_to_image

    device = device or torch.device("cpu")
    files = {(r.video_id, int(r.frame_index)): r.file_name for r in frames.itertuples(index=False)}
    k = ref.kp.shape[1]
    out_kp = np.zeros((len(ref), k, 3))
    order = np.lexsort((ref.frame_index, ref.video_id))
    crops, mats, idx = [], [], []
    fcrops, fmats = [], []

    def flush() -> None:
        if not crops:
            return
        x = torch.from_numpy(np.concatenate(crops)).to(device)
        with torch.no_grad():
            hm = model(x).float().cpu().numpy()
        xy, sc = heatmaps_to_image(hm, np.concatenate(mats), input_size)
        if flip_test:
            perm = schema.flip_permutation()
            with torch.no_grad():
                hf = model(torch.from_numpy(np.concatenate(fcrops)).to(device)).float().cpu().numpy()
            xyf, scf = heatmaps_to_image(hf[:, perm], np.concatenate(fmats), input_size)
            xy, sc = (xy + xyf) / 2, (sc + scf) / 2
            fcrops.clear()
            fmats.clear()
        ii = np.asarray(idx)
        out_kp[ii, :, :2] = xy
        out_kp[ii, :, 2] = np.clip(sc, 0.0, 1.0)
        crops.clear()
        mats.clear()
        idx.clear()

    cur_key, img = None, None
    for i in order:
        key = (ref.video_id[i], int(ref.frame_index[i]))
        if key != cur_key:
            rel = files.get(key)
            if rel is None:
                raise GaitdataError(f"labels name frame {key[0]}#{key[1]} that the evaluation export lacks")
            bgr = cv2.imread(str(image_root / rel), cv2.IMREAD_COLOR)
            if bgr is None:
                raise FileNotFoundError(
                    f"cannot read {image_root / rel}; check the dataset root / --image-root"
                )
            img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            cur_key = key
        c, m = crops_for_boxes(img, ref.bbox[i][None], input_size)
        crops.append(c)
        mats.append(m)
        idx.append(i)
        if flip_test:
            c, m = crops_for_boxes(img, ref.bbox[i][None], input_size, flip=True)
            fcrops.append(c)
            fmats.append(m)
        if len(idx) >= batch_size:
            flush()
    flush()
    vis = np.where(out_kp[..., 2] > 0.0, 2, 0)
    score = ref.score * out_kp[..., 2].mean(1) if len(ref) else np.zeros(0)
    return Persons(ref.video_id, ref.frame_index, ref.bbox, out_kp, vis, score, ref.is_subject, ref.track_id)


# ------------------------------------------------------------------------------------------------
# metrics


def coco_ap(gt: Persons, dt: Persons, schema: KeypointSchema = COCO17) -> dict[str, float]:
    """OKS AP / AP50 / AP75 / AR with pycocotools COCOeval (iouType keypoints), area = box area."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    keys = sorted(
        set(zip(gt.video_id, gt.frame_index, strict=True))
        | set(zip(dt.video_id, dt.frame_index, strict=True))
    )
    ids = {key: i + 1 for i, key in enumerate(keys)}
    anns = []
    for i in range(len(gt)):
        v = gt.vis[i]
        kp = np.c_[gt.kp[i, :, :2], v].reshape(-1)
        b = gt.bbox[i]
        anns.append(
            {
                "id": i + 1,
                "image_id": ids[(gt.video_id[i], gt.frame_index[i])],
                "category_id": 1,
                "keypoints": kp.tolist(),
                "num_keypoints": int((v > 0).sum()),
                "bbox": b.tolist(),
                "area": float(b[2] * b[3]),
                "iscrowd": 0,
            }
        )
    if not any(a["num_keypoints"] for a in anns):
        return {"AP": float("nan"), "AP50": float("nan"), "AP75": float("nan"), "AR": float("nan")}
    coco_gt = COCO()
    coco_gt.dataset = {
        "images": [{"id": i} for i in ids.values()],
        "annotations": anns,
        "categories": [
            {
                "id": 1,
                "name": "person",
                "keypoints": list(schema.keypoints),
                "skeleton": schema.skeleton_1based(),
            }
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        dets = [
            {
                "image_id": ids[(dt.video_id[i], dt.frame_index[i])],
                "category_id": 1,
                "keypoints": np.c_[dt.kp[i, :, :2], np.ones(len(schema.keypoints))].reshape(-1).tolist(),
                "score": float(dt.score[i]),
            }
            for i in range(len(dt))
        ]
        if not dets:
            return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR": 0.0}
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(schema.sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return {"AP": float(s[0]), "AP50": float(s[1]), "AP75": float(s[2]), "AR": float(s[5])}


def pck_table(pred: Persons, ref: Persons, schema: KeypointSchema = COCO17) -> dict[str, Any]:
    """PCK at :data:`PCK_ALPHAS` (of the reference box's longer side) and per-joint errors, for
    predictions aligned one-to-one with the reference."""
    from gaitdata.metrics import oks

    vis = ref.vis > 0
    d = np.linalg.norm(pred.kp[..., :2] - ref.kp[..., :2], axis=-1)
    size = np.maximum(ref.bbox[:, 2], ref.bbox[:, 3])
    out: dict[str, Any] = {"persons": int(len(ref)), "joints": int(vis.sum())}
    for a in PCK_ALPHAS:
        ok = (d <= a * size[:, None]) & vis
        out[f"PCK@{a}"] = float(ok.sum() / max(1, vis.sum())) if vis.sum() else float("nan")
    ok10 = (d <= 0.1 * size[:, None]) & vis
    per = []
    for j, name in enumerate(schema.keypoints):
        m = vis[:, j]
        per.append({
            "joint": name, "n": int(m.sum()),
            "mean_px": float(d[m, j].mean()) if m.any() else float("nan"),
            "median_px": float(np.median(d[m, j])) if m.any() else float("nan"),
            "mean_rel": float((d[m, j] / size[m]).mean()) if m.any() else float("nan"),
            "PCK@0.1": float(ok10[m, j].mean()) if m.any() else float("nan"),
        })  # fmt: skip
    out["per_joint"] = per
    o = oks(pred.kp[..., :2], ref.kp[..., :2], ref.vis, ref.bbox[:, 2] * ref.bbox[:, 3], schema)
    out["mean_OKS"] = float(np.nanmean(o)) if np.isfinite(o).any() else float("nan")
    out["mean_px"] = float(d[vis].mean()) if vis.any() else float("nan")
    return out


def match_boxes(a: Persons, b: Persons, min_iou: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of same-frame persons by box IoU (>= ``min_iou``) with the shared rule
    :func:`gaitdata.geometry.match_by_iou`; returns (indices into a, indices into b), by a."""
    groups: dict[tuple[str, int], list[int]] = {}
    for j in range(len(b)):
        groups.setdefault((str(b.video_id[j]), int(b.frame_index[j])), []).append(j)
    by_frame: dict[tuple[str, int], list[int]] = {}
    for i in range(len(a)):
        by_frame.setdefault((str(a.video_id[i]), int(a.frame_index[i])), []).append(i)
    ia, ib = [], []
    for key, rows in by_frame.items():
        cand = groups.get(key, [])
        if not cand:
            continue
        for i, j in match_by_iou(a.bbox[rows], b.bbox[cand], min_iou):
            ia.append(rows[i])
            ib.append(cand[j])
    order = np.argsort(ia, kind="stable")
    return np.asarray(ia, int)[order], np.asarray(ib, int)[order]


def make_consistent(p: Persons, schema: KeypointSchema, cfg: ConsistencyConfig | None,
                    depth: DepthFrames | None = None) -> Persons:  # fmt: skip
    """Predictions made left/right consistent along each (recording, track) (subject tracks when
    the reference has no track ids), with registered depth as evidence where ``depth`` has it."""
    if cfg is None or not len(p):
        return p
    track = np.where(p.track_id >= 0, p.track_id, np.where(p.is_subject, -1, -2 - np.arange(len(p))))
    jd = depth.joint_depths(p) if depth is not None else None
    kp, _ = consistent_persons(p.video_id, track, p.frame_index, p.kp, p.bbox[:, 3], schema, cfg, jd)
    return p.with_keypoints(kp)


@dataclass(frozen=True)
class DepthFrames:
    """Registered depth images of the evaluated frames (paths and scales; read on demand)."""

    root: Path
    files: dict[tuple[str, int], str]  # (video, frame) -> depth file relative to root
    scales: dict[str, float]  # video -> metres per depth unit

    def joint_depths(self, p: Persons) -> np.ndarray | None:
        """(N, K) depth (m) at every keypoint; NaN where a frame has no depth. None without any."""
        import cv2

        from gaitdata.student.consistency import sample_joint_depths

        if not self.files:
            return None
        out = np.full(p.kp.shape[:2], np.nan)
        order = np.lexsort((p.frame_index, p.video_id))
        cur, img = None, None
        for i in order:
            key = (str(p.video_id[i]), int(p.frame_index[i]))
            rel = self.files.get(key)
            scale = self.scales.get(key[0])
            if rel is None or not scale:
                continue
            if key != cur:
                img = cv2.imread(str(self.root / rel), cv2.IMREAD_UNCHANGED)
                cur = key
            if img is not None and img.ndim == 2:
                out[i] = sample_joint_depths(p.kp[i], img, scale)
        return out


# ------------------------------------------------------------------------------------------------
# gait: angle curves and cycle events per recording, grouped by view


def subject_track(p: Persons) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per video: (frame indices, (T, K, 3) keypoints) of the subject (one person per frame)."""
    out = {}
    for vid in np.unique(p.video_id):
        m = np.flatnonzero((p.video_id == vid) & p.is_subject)
        if not len(m):
            continue
        m = m[np.argsort(p.frame_index[m], kind="stable")]
        _, first = np.unique(p.frame_index[m], return_index=True)
        m = m[first]
        out[str(vid)] = (p.frame_index[m], p.kp[m])
    return out


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() <= 2 or x[ok].std() == 0 or y[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def angle_agreement(a: Persons, b: Persons, schema: KeypointSchema = COCO17) -> dict[str, Any]:
    """Per video and angle: Pearson r and RMSE of ``a``'s curve against ``b``'s (common frames);
    r is NaN where ``b``'s curve is flatter than :data:`MIN_ANGLE_STD` (flagged ``flat``)."""
    ta, tb = subject_track(a), subject_track(b)
    per_video: dict[str, dict[str, dict[str, Any]]] = {}
    curves: dict[str, dict[str, Any]] = {}
    for vid in sorted(set(ta) & set(tb)):
        fa, ka = ta[vid]
        fb, kb = tb[vid]
        common, ia, ib = np.intersect1d(fa, fb, return_indices=True)
        if len(common) < 3:
            continue
        aa, ab = gait_angles(ka[ia], schema), gait_angles(kb[ib], schema)
        per_video[vid] = {}
        curves[vid] = {"frames": common, "a": aa, "b": ab}
        for name in aa:
            x, y = aa[name], ab[name]
            ok = np.isfinite(x) & np.isfinite(y)
            flat = bool(ok.sum() > 2 and np.nanstd(y[ok]) < MIN_ANGLE_STD)
            per_video[vid][name] = {
                "r": float("nan") if flat else _corr(x, y),
                "rmse": float(np.sqrt(np.mean((x[ok] - y[ok]) ** 2))) if ok.any() else float("nan"),
                "ref_std": float(np.nanstd(y[ok])) if ok.any() else float("nan"),
                "flat": flat,
            }
    return {"per_video": per_video, "summary": _angle_summary(per_video), "curves": curves}


def _angle_summary(per_video: dict[str, dict[str, dict[str, Any]]], videos: list[str] | None = None) -> dict:
    vids = [v for v in per_video if videos is None or v in videos]
    names = sorted({n for v in vids for n in per_video[v]})
    out = {}
    for n in names:
        rows = [per_video[v][n] for v in vids if n in per_video[v]]
        out[n] = {"r": _nanmean([r["r"] for r in rows]), "rmse": _nanmean([r["rmse"] for r in rows])}
    return out


def _nanmean(x: list[float]) -> float:
    a = np.asarray(x, float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def mean_r(summary: dict[str, dict[str, float]]) -> float:
    """Mean correlation over the angles of a summary (NaN when none is meaningful)."""
    return _nanmean([v["r"] for v in summary.values()])


def video_views(droot: Any, ref: Persons) -> dict[str, str]:
    """View of each recording: the ``view`` column of videos.parquet, else ``side`` when the
    reference's subject track is a side view and ``other`` when it is not."""
    views: dict[str, str] = {}
    vids = droot.read_videos() if droot.videos_path.is_file() else None
    known = {}
    if vids is not None and "view" in vids:
        known = {str(v): str(w) for v, w in zip(vids["video_id"], vids["view"], strict=True) if isinstance(w, str) and w}
    for vid, (_, kp) in subject_track(ref).items():
        if vid in known:
            views[vid] = known[vid]
            continue
        scale = np.nanmax(kp[:, :, 1], axis=1) - np.nanmin(kp[:, :, 1], axis=1)
        views[vid] = "side" if side_view_facing(kp, scale) else "other"
    return views


def gait_cycles(tracks: dict[str, Persons], views: dict[str, str], fps: dict[str, float], reference: str,
                schema: KeypointSchema = COCO17) -> dict[str, Any]:  # fmt: skip
    """Per side-view recording and source (e.g. ground truth, teacher, student): heel strikes per
    foot, step/stride time, cadence, and the events matched to ``reference``'s per foot."""
    per_video: dict[str, Any] = {}
    subj = {name: subject_track(p) for name, p in tracks.items()}
    for vid in sorted(v for v in views if is_side(views[v])):
        if reference not in subj or vid not in subj[reference]:
            continue
        rate = float(fps.get(vid) or 30.0)
        f_ref, k_ref = subj[reference][vid]
        scale = np.nanmax(k_ref[:, :, 1], axis=1) - np.nanmin(k_ref[:, :, 1], axis=1)
        facing = side_view_facing(k_ref, scale, schema)
        if facing == 0:
            continue
        events = {}
        out: dict[str, Any] = {"fps": rate, "facing": facing}
        for name, tr in subj.items():
            if vid not in tr:
                continue
            f, k = tr[vid]
            ev = track_events(k, f, facing, rate, schema)
            events[name] = ev
            out[name] = {**cycle_summary(ev), "left": ev.left.tolist(), "right": ev.right.tolist()}
        tol = EVENT_TOLERANCE_S * rate
        for name, ev in events.items():
            if name == reference:
                continue
            m = [match_events(getattr(events[reference], s), getattr(ev, s), tol) for s in ("left", "right")]
            err = [x["mean_abs_error_frames"] * x["matched"] for x in m if x["matched"]]
            matched = sum(x["matched"] for x in m)
            out[name]["vs_" + reference] = {
                "matched": matched,
                "missed": sum(x["missed"] for x in m),
                "extra": sum(x["extra"] for x in m),
                "mean_abs_error_ms": float(sum(err) / matched / rate * 1000) if matched else float("nan"),
            }
        per_video[vid] = out
    return per_video


# ------------------------------------------------------------------------------------------------
# the evaluation: a short orchestrator over named steps


@dataclass(frozen=True)
class EvalInputs:
    """What is evaluated on what (resolved from :func:`evaluate`'s arguments)."""

    droot: Any  # DatasetRoot
    run_dir: Path
    variants: tuple[tuple[str, Path], ...]  # (name, checkpoint); the first is the main model
    main_ckpt: dict[str, Any]
    schema: KeypointSchema
    split: str
    coco_file: Path
    frames: pd.DataFrame
    coco: dict
    image_root: Path
    depth: DepthFrames | None = None


@dataclass(frozen=True)
class References:
    ref: Persons
    ref_name: str
    teacher: str | None  # the reference label set's teacher (from its metadata)
    teacher_options: dict
    gt: Persons | None
    gt_name: str | None


def evaluate(
    root: str | os.PathLike,
    model_path: str | os.PathLike,
    split: str = "test",
    labels: str | None = None,
    gt: str | None = "auto",
    out: str | os.PathLike | None = None,
    *,
    export: str | os.PathLike | None = None,
    image_root: str | os.PathLike | None = None,
    teacher_weights: str | None = None,
    latency: bool = True,
    latency_runs: int = 10,
    make_variants: bool = False,
    flip_test: bool = False,
    consistency: ConsistencyConfig | None = ConsistencyConfig(),
    tolerance: float = DEFAULT_TOLERANCE,
    batch_size: int = 64,
    progress: bool = False,
) -> EvalResult:
    """Evaluate a student run (all its variants) on the held-out ``split``; writes the report.

    ``labels``: the teacher label set used as reference (default: the export's annotations).
    ``gt``: a ground-truth label set; ``"auto"`` uses ``ground_truth`` when the root has it, None skips.
    ``export``: a COCO export folder or file (default: the export the model was trained from, else
    ``<root>/exports/coco``). ``out``: where the report goes (default: the run directory).
    ``consistency``: left/right consistency of the student's poses along each track (None: the raw
    per-frame poses). ``tolerance``: PCK@0.1 a compressed variant may lose against fp32.
    ``make_variants``: first create the run's missing ``pruned.pt`` and ``int8.pt`` with
    :func:`gaitdata.student.compression.compress` defaults (off: evaluation writes only its report).
    ``flip_test``: average each prediction with that of the mirrored crop (twice the inference).
    """
    lineage = check_evaluate_inputs(root, model_path, split=split, export=export, labels=labels, gt=gt)
    require("torch", "train")
    if make_variants:
        create_variants(Path(model_path), progress)
    inputs = resolve_inputs(root, model_path, split, export, image_root)
    refs = load_references(inputs, labels, gt)
    metrics = header_metrics(inputs, refs, flip_test, consistency, tolerance)
    metrics["lineage"] = lineage
    preds: dict[str, Persons] = {}
    raw: dict[str, Persons] = {}
    for name, path in inputs.variants:
        raw[name], preds[name], metrics["variants"][name] = evaluate_variant(
            inputs, refs, path, flip_test, consistency, batch_size
        )
    if refs.gt is not None:
        metrics["teacher_vs_gt"] = accuracy(refs.ref, refs.ref, refs.gt, inputs.schema)
    check_variants(metrics, tolerance)
    metrics["compress_checks"] = compress_checks(inputs.run_dir)
    angles = gait_section(inputs, refs, preds, raw, metrics, consistency)
    cost = cost_table(inputs, refs, teacher_weights, latency_runs) if latency else []
    metrics["cost"] = cost
    from gaitdata.student.report import write_report

    out_dir = Path(out) if out is not None else inputs.run_dir
    report, plots = write_report(out_dir, inputs.run_dir, metrics, cost, angles, inputs.schema)
    atomic_write_json(out_dir / "metrics.json", _jsonable(metrics))
    return EvalResult(inputs.run_dir, report, metrics, cost, metrics["angles"]["side_r"], tuple(plots))


def create_variants(model_path: Path, progress: bool = False) -> None:
    """The run's missing pruned.pt and int8.pt, made with the compression defaults."""
    from gaitdata.student.compression import compress

    run_dir, variants = find_variants(model_path)
    main = variants[0][1]
    if main.name not in ("best.pt", "last.pt"):
        return
    if not (run_dir / "pruned.pt").is_file():
        compress(main, "slim", progress=progress)
    if not (run_dir / "int8.pt").is_file():
        compress(main, "int8")


def find_variants(model_path: Path) -> tuple[Path, list[tuple[str, Path]]]:
    """The run directory and its checkpoints to evaluate (the given one first)."""
    from gaitdata.student.checkpoint import find_checkpoint

    if model_path.is_dir():
        run_dir = model_path
        main = find_checkpoint(run_dir)
    elif model_path.is_file():
        run_dir, main = model_path.parent, model_path
    else:
        raise FileNotFoundError(f"student model {model_path} not found; pass a run directory or a .pt checkpoint")
    found = [("fp32" if main.name in ("best.pt", "last.pt") else main.stem, main)]
    if main.name in ("best.pt", "last.pt"):
        for name, fname in VARIANT_FILES:
            p = run_dir / fname
            if p.is_file() and p != main and name != "fp32":
                found.append((name, p))
    return run_dir, found


def resolve_inputs(root, model_path, split: str, export, image_root) -> EvalInputs:
    """The run, its variants, the evaluation export and its frames, and the image root."""
    from gaitdata.dataset import DatasetRoot
    from gaitdata.student.checkpoint import load_checkpoint, schema_of
    from gaitdata.student.data import resolve_image_root

    droot = DatasetRoot(root)
    run_dir, variants = find_variants(Path(model_path))
    main_ckpt = load_checkpoint(variants[0][1])
    data_ref = main_ckpt.get("data") or {}
    if export is not None:
        coco_file = Path(export) if Path(export).suffix == ".json" else Path(export) / f"{split}.json"
    elif data_ref.get("export") and (Path(data_ref["export"]) / f"{split}.json").is_file():
        coco_file = Path(data_ref["export"]) / f"{split}.json"
    else:
        coco_file = droot.exports_dir / "coco" / f"{split}.json"
    if not coco_file.is_file():
        raise FileNotFoundError(f"evaluation export {coco_file} not found; export the split first (gaitdata export)")
    frames, coco = frames_from_coco(coco_file)
    if image_root is not None:
        img_root = Path(image_root)
    elif (coco.get("info") or {}).get("image_root") is not None:
        img_root = resolve_image_root(coco_file, coco, None)
    else:
        img_root = droot.path
    return EvalInputs(droot, run_dir, tuple(variants), main_ckpt, schema_of(main_ckpt), split, coco_file, frames,
                      coco, img_root, depth_frames(droot, frames, img_root))  # fmt: skip


def depth_frames(droot: Any, frames: pd.DataFrame, image_root: Path) -> DepthFrames | None:
    """The registered depth of the evaluated frames (the export's depth_file, else frames.parquet)."""
    scales: dict[str, float] = {}
    if droot.videos_path.is_file():
        v = droot.read_videos()
        scales = {str(a): float(b) for a, b in zip(v["video_id"], v["depth_scale"], strict=True) if pd.notna(b)}
    files = {(str(r.video_id), int(r.frame_index)): str(r.depth_file) for r in frames.itertuples(index=False)
             if isinstance(r.depth_file, str) and r.depth_file}  # fmt: skip
    if not files and droot.frames_path.is_file():
        fr = droot.read_frames(sorted(frames["video_id"].unique().tolist()))
        files = {(str(a), int(b)): str(c) for a, b, c in zip(fr["video_id"], fr["frame_index"], fr["depth_path"], strict=True)
                 if isinstance(c, str) and c}  # fmt: skip
    files = {k: f for k, f in files.items() if k[0] in scales}
    return DepthFrames(image_root, files, scales) if files else None


def load_references(inputs: EvalInputs, labels: str | None, gt: str | None) -> References:
    """The reference persons (a label set, else the export's annotations) and ground truth."""
    from gaitdata.labels import read_label_meta, read_labels

    k = inputs.schema.num_keypoints
    keys = inputs.frames[["video_id", "frame_index"]]

    def restrict(df: pd.DataFrame) -> pd.DataFrame:
        df = df.assign(video_id=df["video_id"].astype(str), frame_index=df["frame_index"].astype(int))
        return df.merge(keys, on=["video_id", "frame_index"], how="inner")

    meta: dict = {}
    if labels:
        ref = persons_from_labels(restrict(read_labels(inputs.droot, labels)), k)
        ref_name = labels
        with contextlib.suppress(FileNotFoundError, GaitdataError, ValueError):
            meta = read_label_meta(inputs.droot, labels)
    else:
        ref = persons_from_coco(inputs.coco, inputs.frames, k)
        ref_name = f"{inputs.coco_file.name} annotations"
        meta = (inputs.coco.get("info") or {}).get("label_meta") or {}
    if not len(ref):
        raise GaitdataError(
            f"no reference persons on the {inputs.split} frames of {inputs.coco_file}; label and export first"
        )
    gt_name = None
    if gt == "auto":
        gt_name = "ground_truth" if "ground_truth" in inputs.droot.label_sets() else None
    elif gt:
        gt_name = gt
    gtp = persons_from_labels(restrict(read_labels(inputs.droot, gt_name)), k) if gt_name else None
    return References(ref, ref_name, meta.get("teacher"), dict(meta.get("teacher_options") or {}), gtp, gt_name)


def header_metrics(inputs: EvalInputs, refs: References, flip_test: bool, consistency, tolerance: float) -> dict:
    return {
        "flip_test": flip_test,
        "consistency": consistency.to_dict() if consistency is not None else None,
        "tolerance": tolerance,
        "split": inputs.split,
        "export": str(inputs.coco_file),
        "reference": refs.ref_name,
        "teacher": refs.teacher,
        "ground_truth": refs.gt_name,
        "frames": int(len(inputs.frames)),
        "persons": int(len(refs.ref)),
        "variants": {},
    }


def accuracy(pred: Persons, ref: Persons, gt: Persons, schema: KeypointSchema) -> dict:
    """OKS AP of ``pred`` against ``gt`` and PCK / per-joint errors of the persons matched to it.

    ``pred`` is aligned one-to-one with ``ref`` (the reference persons whose boxes it ran on); each
    ground-truth person is matched to the reference person whose box overlaps it most.
    """
    ig, ir = match_boxes(gt, ref)
    return {**coco_ap(gt, pred, schema), **pck_table(pred.subset(ir), gt.subset(ig), schema)}


def evaluate_variant(inputs: EvalInputs, refs: References, path: Path, flip_test: bool,
                     consistency: ConsistencyConfig | None, batch_size: int) -> tuple[Persons, Persons, dict]:  # fmt: skip
    """Predictions (raw, consistent) and accuracy of one checkpoint; raises on a schema mismatch."""
    from gaitdata.student.checkpoint import load_checkpoint, model_from_checkpoint, schema_of
    from gaitdata.student.models import StudentArch, StudentNet, count_flops, count_parameters

    schema = inputs.schema
    ckpt = inputs.main_ckpt if path == inputs.variants[0][1] else load_checkpoint(path)
    if schema_of(ckpt).num_keypoints != schema.num_keypoints:
        raise GaitdataError(f"{path}: {schema_of(ckpt).num_keypoints} keypoints, the run has {schema.num_keypoints}")
    model = model_from_checkpoint(ckpt)
    arch = StudentArch.from_dict(ckpt["arch"])
    raw = predict_persons(model, refs.ref, inputs.image_root, inputs.frames, arch.input_size, batch_size,
                          flip_test=flip_test, schema=schema)  # fmt: skip
    p = make_consistent(raw, schema, consistency, inputs.depth)
    fp32 = StudentNet(arch).eval()
    m: dict[str, Any] = {
        "file": str(path),
        "kind": ckpt.get("kind", "fp32"),
        "macs": count_flops(fp32),
        "params": count_parameters(fp32),
        "vs_teacher": {**coco_ap(refs.ref, p, schema), **pck_table(p, refs.ref, schema)},
    }
    if refs.gt is not None:
        m["vs_gt"] = accuracy(p, refs.ref, refs.gt, schema)
    return raw, p, m


def check_variants(metrics: dict[str, Any], tolerance: float) -> None:
    """Each compressed variant against the main model on this split: PCK@0.1 drop (vs ground truth
    when present, else vs the teacher), MACs reduction, and whether the drop is within tolerance."""
    variants = metrics["variants"]
    if not variants:
        return
    main_name = next(iter(variants))
    main = variants[main_name]
    against = "vs_gt" if "vs_gt" in main else "vs_teacher"
    for name, m in variants.items():
        if name == main_name:
            continue
        drop = main[against]["PCK@0.1"] - m[against]["PCK@0.1"]
        m["check"] = {
            "against": "ground truth" if against == "vs_gt" else "teacher",
            "metric": "PCK@0.1",
            "reference_model": main_name,
            "reference": main[against]["PCK@0.1"],
            "value": m[against]["PCK@0.1"],
            "drop": drop,
            "tolerance": tolerance,
            "within_tolerance": bool(drop <= tolerance + 1e-12),
            "macs_reduction": 1.0 - m["macs"] / main["macs"] if main["macs"] else float("nan"),
        }


def compress_checks(run_dir: Path) -> dict[str, Any]:
    """The validation checks ``compress`` recorded for the run's variants (compress.json)."""
    p = run_dir / "compress.json"
    if not p.is_file():
        return {}
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError:
        return {}
    return {name: s["check"] for name, s in doc.items() if isinstance(s, dict) and s.get("check")}


def gait_section(inputs: EvalInputs, refs: References, preds: dict[str, Persons], raw: dict[str, Persons],
                 metrics: dict[str, Any], consistency: ConsistencyConfig | None = None) -> dict[str, Any]:  # fmt: skip
    """Angle agreement by view and gait-cycle events; fills metrics["angles"] and metrics["gait"] and
    returns the curves for the plots. With ``consistency``, the teacher's labels are also shown made
    consistent the same way (what the step alone is worth, on the teacher)."""
    schema = inputs.schema
    views = video_views(inputs.droot, refs.ref)
    side = [v for v, w in views.items() if is_side(w)]
    main = next(iter(preds))
    comparisons: dict[str, tuple[Persons, Persons]] = {"student_vs_teacher": (preds[main], refs.ref)}
    if refs.gt is not None:
        comparisons["student_vs_gt"] = (preds[main], refs.gt)
        comparisons["teacher_vs_gt"] = (refs.ref, refs.gt)
        comparisons["student_raw_vs_gt"] = (raw[main], refs.gt)
        if consistency is not None:
            comparisons["teacher_consistent_vs_gt"] = (make_consistent(refs.ref, schema, consistency, inputs.depth), refs.gt)
    else:
        comparisons["student_raw_vs_teacher"] = (raw[main], refs.ref)
    with_depth = {v for v, _ in (inputs.depth.files if inputs.depth is not None else {})}
    out: dict[str, Any] = {"views": views, "comparisons": {}, "side_r": {},
                           "depth": {v: v in with_depth for v in views}}  # fmt: skip
    curves: dict[str, Any] = {}
    for name, (a, b) in comparisons.items():
        ag = angle_agreement(a, b, schema)
        curves[name] = ag["curves"]
        by_view = {w: _angle_summary(ag["per_video"], [v for v in views if views[v] == w]) for w in sorted(set(views.values()))}
        out["comparisons"][name] = {"per_video": ag["per_video"], "by_view": by_view}
        out["side_r"][name] = mean_r(_angle_summary(ag["per_video"], side)) if side else float("nan")
    target = refs.gt if refs.gt is not None else refs.ref
    for name, p in preds.items():
        metrics["variants"][name]["side_angle_r"] = (
            mean_r(_angle_summary(angle_agreement(p, target, schema)["per_video"], side)) if side else float("nan")
        )
    metrics["angles"] = out
    fps = {}
    if inputs.droot.videos_path.is_file():
        v = inputs.droot.read_videos()
        fps = {str(a): float(b) for a, b in zip(v["video_id"], v["fps"], strict=True) if pd.notna(b)}
    tracks = {"student": preds[main], "teacher": refs.ref}
    if refs.gt is not None:
        tracks["ground truth"] = refs.gt
    metrics["gait"] = gait_cycles(tracks, views, fps, "ground truth" if refs.gt is not None else "teacher", schema)
    return {"curves": curves, "views": views}


def cost_table(inputs: EvalInputs, refs: References, teacher_weights: str | None, runs: int) -> list[dict[str, Any]]:
    """Cost rows: each student variant, the reference's teacher when it can be measured here, and
    FastPose-R50 as a labelled cost reference when it is not the teacher."""
    import torch

    from gaitdata.student.checkpoint import load_checkpoint, model_from_checkpoint
    from gaitdata.student.cost import fastpose_cost, mediapipe_cost, model_cost
    from gaitdata.student.models import StudentArch, StudentNet

    gpu = torch.cuda.is_available()
    rows = []
    for name, path in inputs.variants:
        ckpt = load_checkpoint(path)
        arch = StudentArch.from_dict(ckpt["arch"])
        model = model_from_checkpoint(ckpt)
        rows.append(model_cost(f"student {name}", model, StudentNet(arch).eval(), arch.input_size, path,
                               gpu=gpu, runs=runs))  # fmt: skip
    if refs.teacher == "mediapipe":
        row = mediapipe_cost(_sample_images(inputs, max(3, runs)), refs.teacher_options.get("mode", "video"))
        if row is not None:
            rows.append(row)
    fp = fastpose_cost(teacher_weights, gpu=gpu, runs=max(1, runs // 2), accuracy=refs.teacher == "alphapose")
    if fp is not None:
        fp["model"] = "teacher alphapose (FastPose-R50)" if refs.teacher == "alphapose" else "FastPose-R50 (cost reference)"
        rows.append(fp)
    return rows


def _sample_images(inputs: EvalInputs, n: int) -> list[np.ndarray]:
    import cv2

    files = inputs.frames["file_name"].tolist()
    pick = [files[i] for i in np.unique(np.linspace(0, len(files) - 1, min(n, len(files))).astype(int))]
    out = []
    for rel in pick:
        bgr = cv2.imread(str(inputs.image_root / rel), cv2.IMREAD_COLOR)
        if bgr is not None:
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return out


def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


__all__ = [
    "EvalResult", "Persons", "angle_agreement", "coco_ap", "evaluate", "gait_angles", "match_boxes", "pck_table",
    "persons_from_labels", "predict_persons",
]  # fmt: skip
