"""Evaluate a student against the teacher on held-out videos, and both against ground truth.

``gaitdata evaluate ROOT --model RUN --split test [--labels TEACHER_SET] [--gt ground_truth]``

- The frames: the COCO export of the split (``<export>/<split>.json``; the export the model was
  trained from unless ``export`` is given). The reference: the label set ``labels`` on those frames
  (else the export's own annotations, which are the teacher's labels).
- The student runs on the reference's person boxes (top-down, as it would behind the same proposer).
- Accuracy vs the teacher: OKS AP (pycocotools COCOeval, iouType keypoints, the schema's sigmas,
  area = box area), PCK at 0.05 / 0.1 / 0.2 of the box's longer side, per-joint errors.
- Gait: hip and knee flexion (180 deg minus the shoulder-hip-knee / hip-knee-ankle angle) and the
  shank's inclination from vertical (COCO-17 has no foot points for a true ankle angle), per
  recording, for the subject; correlation and RMSE of the student's curves against the teacher's.
- With a ground-truth label set (synthetic data): student AND teacher against it (the student's
  prediction for the teacher person whose box overlaps the ground-truth box most).
- Cost, measured in the same run: CPU latency per crop (batch 1, and GPU when present) for the
  student fp32, pruned and int8 variants found in the run directory and the FastPose-R50 teacher
  (random weights when no checkpoint is given; latency and FLOPs do not depend on them),
  parameters, multiply-accumulates, file size.

Writes ``<run>/report.md``, ``<run>/metrics.json`` and PNG plots under ``<run>/report/``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gaitdata.errors import GaitdataError, require
from gaitdata.io import atomic_write_json
from gaitdata.schema import COCO17, KeypointSchema
from gaitdata.staleness import check_evaluate_inputs

PCK_ALPHAS = (0.05, 0.1, 0.2)
VARIANT_FILES = (
    ("fp32", "best.pt"),
    ("pruned", "pruned.pt"),
    ("int8", "int8.pt"),
    ("pruned_int8", "pruned_int8.pt"),
)


@dataclass(frozen=True)
class EvalResult:
    run_dir: Path
    report: Path
    metrics: dict[str, Any]  # per variant: {"vs_teacher": {...}, "vs_gt": {...}}; plus "teacher_vs_gt"
    cost: list[dict[str, Any]]  # one row per model: name, params, macs, size_bytes, cpu_ms, gpu_ms
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

    def __len__(self) -> int:
        return len(self.video_id)

    def subset(self, idx: np.ndarray) -> Persons:
        return Persons(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def persons_from_labels(df: pd.DataFrame, k: int) -> Persons:
    from gaitdata.labels import keypoints_array, visibility_array

    df = df[df["has_person"].fillna(False).astype(bool)].reset_index(drop=True)
    subj = df["is_subject"]
    if subj.isna().all():  # no subject selection: the highest-scoring person of each frame
        top = df.groupby(["video_id", "frame_index"])["score"].transform("max")
        subj = df["score"] == top
    return Persons(
        video_id=df["video_id"].astype(str).to_numpy(),
        frame_index=df["frame_index"].astype(int).to_numpy(),
        bbox=df[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(np.float64),
        kp=keypoints_array(df, k).astype(np.float64),
        vis=visibility_array(df, k).astype(np.int64),
        score=df["score"].fillna(1.0).to_numpy(np.float64),
        is_subject=subj.fillna(False).astype(bool).to_numpy(),
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
        rows.append(
            {
                "image_id": int(im["id"]),
                "video_id": str(vid),
                "frame_index": int(fi),
                "file_name": im["file_name"],
            }
        )
    return pd.DataFrame(rows, columns=["image_id", "video_id", "frame_index", "file_name"]), data


def persons_from_coco(data: dict, frames: pd.DataFrame, k: int) -> Persons:
    by_id = frames.set_index("image_id")
    rows = []
    for ann in data.get("annotations", []):
        kp = np.asarray(ann["keypoints"], np.float64).reshape(k, 3)
        conf = np.asarray(ann.get("keypoint_scores") or (kp[:, 2] > 0).astype(float), np.float64)
        im = by_id.loc[int(ann["image_id"])]
        rows.append(
            (
                im["video_id"],
                int(im["frame_index"]),
                ann["bbox"],
                np.c_[kp[:, :2], conf],
                kp[:, 2],
                float(ann.get("score", 1.0)),
                ann.get("is_subject"),
            )
        )
    if not rows:
        return Persons(
            np.array([], str),
            np.array([], int),
            np.zeros((0, 4)),
            np.zeros((0, k, 3)),
            np.zeros((0, k), int),
            np.zeros(0),
            np.zeros(0, bool),
        )
    df = pd.DataFrame(rows, columns=["v", "f", "b", "kp", "vis", "s", "subj"])
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
    return Persons(ref.video_id, ref.frame_index, ref.bbox, out_kp, vis, score, ref.is_subject)


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
    """For each person of ``a``, the index of the same-frame person of ``b`` with the best box IoU
    (>= ``min_iou``); returns (indices into a, indices into b)."""
    ia, ib = [], []
    groups: dict[tuple[str, int], list[int]] = {}
    for j in range(len(b)):
        groups.setdefault((b.video_id[j], int(b.frame_index[j])), []).append(j)
    for i in range(len(a)):
        cand = groups.get((a.video_id[i], int(a.frame_index[i])), [])
        best, best_iou = -1, min_iou
        for j in cand:
            iou = _iou(a.bbox[i], b.bbox[j])
            if iou >= best_iou:
                best, best_iou = j, iou
        if best >= 0:
            ia.append(i)
            ib.append(best)
    return np.asarray(ia, int), np.asarray(ib, int)


def _iou(p: np.ndarray, q: np.ndarray) -> float:
    x1, y1 = max(p[0], q[0]), max(p[1], q[1])
    x2, y2 = min(p[0] + p[2], q[0] + q[2]), min(p[1] + p[3], q[1] + q[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = p[2] * p[3] + q[2] * q[3] - inter
    return float(inter / union) if union > 0 else 0.0


# ------------------------------------------------------------------------------------------------
# gait angles


def gait_angles(kp: np.ndarray, schema: KeypointSchema = COCO17) -> dict[str, np.ndarray]:
    """(T, K, 2+) -> per angle name (T,) degrees: hip/knee flexion and shank inclination, left/right."""
    from gaitdata.metrics import joint_angle

    ix = schema.index
    out = {}
    for side in ("left", "right"):
        sh, hip, knee, ank = (kp[:, ix(f"{side}_{n}"), :2] for n in ("shoulder", "hip", "knee", "ankle"))
        out[f"{side}_hip"] = 180.0 - joint_angle(sh, hip, knee)
        out[f"{side}_knee"] = 180.0 - joint_angle(hip, knee, ank)
        out[f"{side}_shank"] = joint_angle(knee + np.array([0.0, 1.0]), knee, ank)  # vs image vertical (down)
    return out


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


def angle_agreement(a: Persons, b: Persons, schema: KeypointSchema = COCO17) -> dict[str, Any]:
    """Per video and angle: Pearson r and RMSE of ``a``'s curve against ``b``'s (common frames)."""
    ta, tb = subject_track(a), subject_track(b)
    per_video: dict[str, dict[str, dict[str, float]]] = {}
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
            r = (
                float(np.corrcoef(x[ok], y[ok])[0, 1])
                if ok.sum() > 2 and x[ok].std() > 0 and y[ok].std() > 0
                else float("nan")
            )
            per_video[vid][name] = {
                "r": r,
                "rmse": float(np.sqrt(np.mean((x[ok] - y[ok]) ** 2))) if ok.any() else float("nan"),
            }
    summary = {}
    names = sorted({n for v in per_video.values() for n in v})
    for n in names:
        rs = [per_video[v][n]["r"] for v in per_video if n in per_video[v]]
        es = [per_video[v][n]["rmse"] for v in per_video if n in per_video[v]]
        summary[n] = {"r": _nanmean(rs), "rmse": _nanmean(es)}
    return {"per_video": per_video, "summary": summary, "curves": curves}


def _nanmean(x: list[float]) -> float:
    a = np.asarray(x, float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


# ------------------------------------------------------------------------------------------------
# cost


def measure_latency(model, input_size, device=None, warmup: int = 3, runs: int = 10, batch: int = 1) -> float:
    """Median milliseconds per forward pass of ``batch`` crops."""
    import torch

    device = device or torch.device("cpu")
    x = torch.randn(batch, 3, *input_size, device=device)
    times = []
    with torch.no_grad():
        for i in range(warmup + runs):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def model_cost(
    name: str, model, fp32_model, input_size, path: Path | None, *, gpu: bool, runs: int = 10
) -> dict[str, Any]:
    import torch

    from gaitdata.student.models import count_flops, count_parameters

    row = {
        "model": name,
        "params": count_parameters(fp32_model),
        "macs": count_flops(fp32_model, tuple(input_size)),
        "size_bytes": path.stat().st_size if path is not None and path.is_file() else None,
        "input": f"{input_size[0]}x{input_size[1]}",
        "cpu_ms": measure_latency(model, input_size, warmup=min(3, runs), runs=runs),
        "gpu_ms": None,
    }
    if gpu and not name.endswith("int8"):
        dev = torch.device("cuda")
        m = fp32_model.to(dev)
        row["gpu_ms"] = measure_latency(m, input_size, dev, warmup=min(3, runs), runs=runs)
        fp32_model.to("cpu")
    return row


def teacher_cost(teacher_weights: str | None, *, gpu: bool, runs: int = 5) -> dict[str, Any] | None:
    try:
        from pseudolabel.models.fastpose import build_fastpose_r50
    except ImportError:
        return None
    import torch

    torch.manual_seed(0)
    t = build_fastpose_r50().eval()
    path = Path(teacher_weights) if teacher_weights else None
    if path is not None:
        from pseudolabel.checkpoints import load_checkpoint

        load_checkpoint(path, t, expected="AlphaPose fast_res50_256x192.pth")
    row = model_cost("teacher FastPose-R50", t, t, (256, 192), path, gpu=gpu, runs=runs)
    if path is None:
        row["size_bytes"] = sum(p.numel() * 4 for p in t.state_dict().values() if p.is_floating_point())
        row["note"] = "random weights (fp32 size computed)"
    return row


# ------------------------------------------------------------------------------------------------
# the evaluation


def _variants(model_path: Path) -> tuple[Path, list[tuple[str, Path]]]:
    from gaitdata.student.checkpoint import find_checkpoint

    if model_path.is_dir():
        run_dir = model_path
        main = find_checkpoint(run_dir)
    elif model_path.is_file():
        run_dir, main = model_path.parent, model_path
    else:
        raise FileNotFoundError(
            f"student model {model_path} not found; pass a run directory or a .pt checkpoint"
        )
    found = [("fp32" if main.name in ("best.pt", "last.pt") else main.stem, main)]
    for name, fname in VARIANT_FILES:
        p = run_dir / fname
        if p.is_file() and p != main and name != "fp32":
            found.append((name, p))
    return run_dir, found


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
    make_variants: bool = True,
    flip_test: bool = False,
    batch_size: int = 64,
    progress: bool = False,
) -> EvalResult:
    """Evaluate a student run (all its variants) on the held-out ``split``; writes the report.

    ``labels``: the teacher label set used as reference (default: the export's annotations).
    ``gt``: a ground-truth label set; ``"auto"`` uses ``ground_truth`` when the root has it, None skips.
    ``export``: a COCO export folder or file (default: the export the model was trained from, else
    ``<root>/exports/coco``). ``out``: where the report goes (default: the run directory).
    ``make_variants`` (default): first create the missing compressed variants of the run (``pruned.pt`` by
    slimming with two fine-tuning epochs, ``int8.pt``) so that the cost table is complete.
    ``flip_test``: average each prediction with that of the mirrored crop (twice the inference).
    """
    lineage = check_evaluate_inputs(root, model_path, split=split, export=export, labels=labels, gt=gt)
    torch = require("torch", "train")
    from gaitdata.dataset import DatasetRoot
    from gaitdata.labels import read_labels
    from gaitdata.student.checkpoint import load_checkpoint, model_from_checkpoint, schema_of
    from gaitdata.student.data import resolve_image_root
    from gaitdata.student.models import StudentArch, StudentNet

    droot = DatasetRoot(root)
    run_dir, variants = _variants(Path(model_path))
    if make_variants and variants[0][1].name in ("best.pt", "last.pt"):
        from gaitdata.student.compression import compress

        if not (run_dir / "pruned.pt").is_file():
            compress(variants[0][1], "slim", finetune_epochs=2, progress=progress)
        if not (run_dir / "int8.pt").is_file():
            compress(variants[0][1], "int8")
        run_dir, variants = _variants(Path(model_path))
    main_ckpt = load_checkpoint(variants[0][1])
    schema = schema_of(main_ckpt)
    k = schema.num_keypoints
    data_ref = main_ckpt.get("data") or {}
    if export is not None:
        coco_file = Path(export) if Path(export).suffix == ".json" else Path(export) / f"{split}.json"
    elif data_ref.get("export") and (Path(data_ref["export"]) / f"{split}.json").is_file():
        coco_file = Path(data_ref["export"]) / f"{split}.json"
    else:
        coco_file = droot.exports_dir / "coco" / f"{split}.json"
    if not coco_file.is_file():
        raise FileNotFoundError(
            f"evaluation export {coco_file} not found; export the split first (gaitdata export)"
        )
    frames, coco = frames_from_coco(coco_file)
    if image_root is not None:
        img_root = Path(image_root)
    elif (coco.get("info") or {}).get("image_root") is not None:
        img_root = resolve_image_root(coco_file, coco, None)
    else:
        img_root = droot.path
    keys = frames[["video_id", "frame_index"]]

    def restrict(df: pd.DataFrame) -> pd.DataFrame:
        df = df.assign(video_id=df["video_id"].astype(str), frame_index=df["frame_index"].astype(int))
        return df.merge(keys, on=["video_id", "frame_index"], how="inner")

    if labels:
        ref = persons_from_labels(restrict(read_labels(droot, labels)), k)
        ref_name = labels
    else:
        ref = persons_from_coco(coco, frames, k)
        ref_name = f"{coco_file.name} annotations"
    if not len(ref):
        raise GaitdataError(
            f"no reference persons on the {split} frames of {coco_file}; label and export first"
        )
    gt_name = None
    if gt == "auto":
        gt_name = "ground_truth" if "ground_truth" in droot.label_sets() else None
    elif gt:
        gt_name = gt
    gtp = persons_from_labels(restrict(read_labels(droot, gt_name)), k) if gt_name else None

    metrics: dict[str, Any] = {
        "flip_test": flip_test,
        "split": split,
        "export": str(coco_file),
        "reference": ref_name,
        "ground_truth": gt_name,
        "frames": int(len(frames)),
        "persons": int(len(ref)),
        "variants": {},
        "lineage": lineage,
    }
    preds: dict[str, Persons] = {}
    cost: list[dict[str, Any]] = []
    gpu = torch.cuda.is_available()
    for name, path in variants:
        ckpt = main_ckpt if path == variants[0][1] else load_checkpoint(path)
        if schema_of(ckpt).num_keypoints != k:
            raise GaitdataError(f"{path}: {schema_of(ckpt).num_keypoints} keypoints, the run has {k}")
        model = model_from_checkpoint(ckpt)
        arch = StudentArch.from_dict(ckpt["arch"])
        p = predict_persons(
            model, ref, img_root, frames, arch.input_size, batch_size, flip_test=flip_test, schema=schema
        )
        preds[name] = p
        m: dict[str, Any] = {
            "file": str(path),
            "vs_teacher": {**coco_ap(ref, p, schema), **pck_table(p, ref, schema)},
        }
        if gtp is not None:
            ig, ir = match_boxes(gtp, ref)
            g = gtp.subset(ig)
            m["vs_gt"] = {**coco_ap(gtp, p, schema), **pck_table(p.subset(ir), g, schema)}
        m["angles_vs_teacher"] = {n: v for n, v in angle_agreement(p, ref, schema)["summary"].items()}
        metrics["variants"][name] = m
        if latency:
            fp32 = StudentNet(arch).eval()
            cost.append(
                model_cost(f"student {name}", model, fp32, arch.input_size, path, gpu=gpu, runs=latency_runs)
            )
    if gtp is not None:
        ig, ir = match_boxes(gtp, ref)
        metrics["teacher_vs_gt"] = {
            **coco_ap(gtp, ref, schema),
            **pck_table(ref.subset(ir), gtp.subset(ig), schema),
        }
    if latency:
        tc = teacher_cost(teacher_weights, gpu=gpu, runs=max(1, latency_runs // 2))
        if tc is not None:
            cost.append(tc)
    angles = angle_agreement(preds[variants[0][0]], ref, schema)
    angles_gt = angle_agreement(preds[variants[0][0]], gtp, schema) if gtp is not None else None
    angles_teacher_gt = angle_agreement(ref, gtp, schema) if gtp is not None else None
    metrics["angles"] = {"student_vs_teacher": angles["per_video"]}
    if angles_gt is not None:
        metrics["angles"]["student_vs_gt"] = angles_gt["summary"]
        metrics["angles"]["teacher_vs_gt"] = angles_teacher_gt["summary"]
    metrics["cost"] = cost

    out_dir = Path(out) if out is not None else run_dir
    from gaitdata.student.report import write_report

    report, plots = write_report(out_dir, run_dir, metrics, cost, angles, angles_gt, schema)
    atomic_write_json(out_dir / "metrics.json", _jsonable(metrics))
    return EvalResult(
        run_dir=run_dir,
        report=report,
        metrics=metrics,
        cost=cost,
        angles=angles["summary"],
        plots=tuple(plots),
    )


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


__all__ = ["EvalResult", "angle_agreement", "coco_ap", "evaluate", "gait_angles", "pck_table"]
