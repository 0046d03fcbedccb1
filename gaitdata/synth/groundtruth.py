"""Ground-truth sidecars (``<recording path>.gt.npz``) and the synthetic ground truth as a label set.

A sidecar holds, per COLOUR frame of the recording: ``keypoints_2d`` (N, 17, 3: x, y in colour
pixels, COCO convention, and v in 0/1/2), ``joints_3d`` (N, 17, 3 metres, colour camera),
``colour_frame_numbers``, ``colour_ts_ms``, ``subject`` and ``meta`` (JSON; arrays such as the
silhouette boxes ``bboxes`` and the bystander's keypoints are stored beside it). Extraction ignores
``*.gt.npz`` files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot, written_frames
from gaitdata.errors import GaitdataError
from gaitdata.geometry import clip_xyxy, xyxy_to_xywh
from gaitdata.io import atomic_open, json_default
from gaitdata.labels import LABEL_COLUMNS, encode_keypoints, write_labels
from gaitdata.synth.recording import SynthRecording

SIDECAR_SUFFIX = ".gt.npz"
TEACHER = "ground_truth"
_META_ARRAY = "meta__"


def sidecar_path(recording_path: str | os.PathLike) -> Path:
    """``<recording path>.gt.npz`` (for a pair: beside the colour file; for an image folder: beside the folder)."""
    p = Path(recording_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)




def save_ground_truth(rec: SynthRecording, recording_path: str | os.PathLike, *, depth: bool = False) -> Path:
    """Write the sidecar of ``rec`` next to ``recording_path`` (atomically); ``depth`` adds depth_registered."""
    if rec.keypoints_2d is None or rec.joints_3d is None:
        raise ValueError(
            f"{rec.name}: the recording carries no ground truth (keypoints_2d/joints_3d are None)"
        )
    arrays: dict[str, np.ndarray] = {
        "keypoints_2d": np.asarray(rec.keypoints_2d, np.float64),
        "joints_3d": np.asarray(rec.joints_3d, np.float64),
        "colour_frame_numbers": np.asarray(rec.colour_frame_numbers, np.int64),
        "colour_ts_ms": np.asarray(rec.colour_ts_ms, np.float64),
        "subject": np.asarray(rec.subject),
        "width": np.asarray(rec.colour.shape[2]),
        "height": np.asarray(rec.colour.shape[1]),
    }
    meta = {}
    for k, v in rec.meta.items():
        if isinstance(v, np.ndarray):
            arrays[_META_ARRAY + k] = v
        else:
            meta[k] = v
    meta["name"] = rec.name
    meta["fps"] = rec.fps
    meta["colour_intrinsics"] = rec.colour_intrinsics.to_dict()
    arrays["meta"] = np.asarray(json.dumps(meta, default=json_default))
    if depth and rec.depth_registered is not None:
        arrays["depth_registered"] = rec.depth_registered
    out = sidecar_path(recording_path)
    with atomic_open(out, "wb") as f:
        np.savez_compressed(f, **arrays)
    return out


def load_ground_truth(recording_path: str | os.PathLike) -> dict:
    """Read the sidecar of a recording (or the sidecar file itself): a dict of arrays, ``subject`` and ``meta``."""
    p = Path(recording_path)
    path = p if p.name.endswith(SIDECAR_SUFFIX) else sidecar_path(p)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no ground-truth sidecar; write it with gaitdata.synth.save_ground_truth"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise GaitdataError(
            f"{path}: unreadable ground-truth sidecar ({exc}); regenerate it with `gaitdata synth`"
        ) from exc
    meta = json.loads(str(data.pop("meta")))
    for k in [k for k in data if k.startswith(_META_ARRAY)]:
        meta[k[len(_META_ARRAY) :]] = data.pop(k)
    out = dict(data)
    out["subject"] = str(data["subject"])
    out["width"] = int(data["width"])
    out["height"] = int(data["height"])
    out["meta"] = meta
    return out


def _box_from_keypoints(kp: np.ndarray, width: int, height: int) -> tuple[float, float, float, float] | None:
    """A COCO-like person box around the labelled joints (joints are centres: pad for head, feet, limbs)."""
    v = kp[:, 2] > 0
    if not v.any():
        return None
    x0, y0 = kp[v, 0].min(), kp[v, 1].min()
    x1, y1 = kp[v, 0].max(), kp[v, 1].max()
    h = max(y1 - y0, 1.0)
    pad_x, top, bottom = 0.12 * h, 0.22 * h, 0.08 * h
    x, y, w, h = xyxy_to_xywh(clip_xyxy([x0 - pad_x, y0 - top, x1 + pad_x, y1 + bottom], width, height))[0].tolist()
    return x, y, w, h


def _match(frames: pd.DataFrame, gt_numbers: np.ndarray) -> np.ndarray:
    """Row of the ground truth for each frame (-1: none): by frame number, else by position."""
    lookup = {int(n): i for i, n in enumerate(gt_numbers)}
    nums = frames["colour_frame_number"]
    by_number = np.array([lookup.get(int(n), -1) if pd.notna(n) else -1 for n in nums], dtype=np.int64)
    if (by_number >= 0).all():
        return by_number
    idx = frames["frame_index"].to_numpy(dtype=np.int64)
    if idx.max(initial=-1) < len(gt_numbers):  # containers without frame numbers count from 0
        return idx
    return by_number


def _rows(
    video_id: str, frame_index: int, people: list[tuple[np.ndarray, tuple | None, bool]], sx: float, sy: float,
    width: int, height: int,
) -> list[dict]:  # fmt: skip
    rows = []
    for walker, (kp, box, is_subject) in enumerate(people):  # one track per walker: subject 0, others 1, 2, ...
        kp = np.asarray(kp, np.float64).copy()
        v = kp[:, 2].astype(np.int64)
        if not (v > 0).any():
            continue
        kp[:, 0] *= sx
        kp[:, 1] *= sy
        kp[v == 0, :2] = 0.0
        if box is not None and box[2] > 0 and box[3] > 0:
            bx = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        else:
            bx = _box_from_keypoints(np.column_stack([kp[:, :2], v]), width, height)
        conf = (v > 0).astype(np.float64)
        rows.append({
            "video_id": video_id, "frame_index": frame_index, "person_index": len(rows), "has_person": True,
            "bbox_x": bx[0], "bbox_y": bx[1], "bbox_w": bx[2], "bbox_h": bx[3], "score": 1.0,
            "keypoints": encode_keypoints(np.column_stack([kp[:, :2], conf])), "visibility": v.tolist(),
            "num_visible": int((v > 0).sum()), "track_id": walker, "is_subject": is_subject,
            "teacher": TEACHER, "weights_hash": None, "qa_flags": [],
        })  # fmt: skip
    if not rows:
        rows.append({
            "video_id": video_id, "frame_index": frame_index, "person_index": -1, "has_person": False,
            "bbox_x": None, "bbox_y": None, "bbox_w": None, "bbox_h": None, "score": None, "keypoints": [],
            "visibility": [], "num_visible": 0, "track_id": None, "is_subject": False, "teacher": TEACHER,
            "weights_hash": None, "qa_flags": [],
        })  # fmt: skip
    return rows


def ground_truth_labels(
    root: DatasetRoot | str | os.PathLike, include_bystanders: bool = True
) -> pd.DataFrame:
    """The synthetic ground truth of every extracted recording that has a sidecar, as LABEL_COLUMNS rows.

    Frames are matched through ``videos.parquet`` ``source_path`` (sidecar beside it) and
    ``frames.parquet`` ``colour_frame_number`` (by position for containers without frame numbers);
    keypoints are scaled to the stored frame size. Only written frames (status ``ok``) get rows;
    frames where the walker is out of view get the explicit no-person row.
    """
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    videos = root.read_videos()
    frames = root.read_frames()
    out: list[dict] = []
    found = 0
    for _, v in videos.iterrows():
        if v["status"] != "ok" or pd.isna(v["source_path"]):
            continue
        side = sidecar_path(v["source_path"])
        if not side.is_file():
            continue
        gt = load_ground_truth(side)
        found += 1
        fr = written_frames(frames)
        fr = fr[fr["video_id"] == v["video_id"]]
        if fr.empty:
            continue
        rows = _match(fr, gt["colour_frame_numbers"])
        sw = v["source_width"] if pd.notna(v["source_width"]) else gt["width"]
        sh = v["source_height"] if pd.notna(v["source_height"]) else gt["height"]
        W = int(v["width"]) if pd.notna(v["width"]) else int(sw)
        H = int(v["height"]) if pd.notna(v["height"]) else int(sh)
        sx, sy = W / float(sw), H / float(sh)
        kps = gt["keypoints_2d"]
        boxes = gt["meta"].get("bboxes")
        # every other walker (the bystander, far walkers); older sidecars hold the bystander alone
        by_kp = gt["meta"].get("others_keypoints_2d")
        by_box = gt["meta"].get("others_bboxes")
        if by_kp is None and gt["meta"].get("bystander_keypoints_2d") is not None:
            by_kp = np.asarray(gt["meta"]["bystander_keypoints_2d"])[:, None]
            by_box = gt["meta"].get("bystander_bboxes")
            by_box = None if by_box is None else np.asarray(by_box)[:, None]
        for fi, r in zip(fr["frame_index"].to_numpy(), rows, strict=True):
            people: list[tuple[np.ndarray, tuple | None, bool]] = []
            if 0 <= r < len(kps):
                people.append((kps[r], None if boxes is None else tuple(boxes[r]), True))
                if include_bystanders and by_kp is not None:
                    for k in range(np.asarray(by_kp).shape[1]):
                        bb = None if by_box is None else tuple(np.asarray(by_box)[r, k])
                        people.append((np.asarray(by_kp)[r, k], bb, False))
            out += _rows(str(v["video_id"]), int(fi), people, sx, sy, W, H)
    if not found:
        raise GaitdataError(
            f"{root.path}: no recording has a ground-truth sidecar (*{SIDECAR_SUFFIX} beside its source); "
            "only recordings made by `gaitdata synth` carry ground truth"
        )
    df = pd.DataFrame(out, columns=list(LABEL_COLUMNS))
    return df


def write_ground_truth_labels(root: DatasetRoot | str | os.PathLike, name: str = TEACHER) -> Path:
    """Store :func:`ground_truth_labels` as the label set ``name`` (default ``ground_truth``)."""
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    df = ground_truth_labels(root)
    meta = {
        "teacher": TEACHER,
        "weights_hash": None,
        "source": f"synthetic ground-truth sidecars (*{SIDECAR_SUFFIX})",
        "visibility": "rendered z-buffer: 2 seen, 1 hidden behind a body part, 0 outside the image",
        "confidence": "1 for joints with v > 0, else 0",
        "n_rows": len(df),
        "n_videos": int(df["video_id"].nunique()) if len(df) else 0,
    }
    return write_labels(root, name, df, meta)
