"""Tiny synthetic pose data for the student's tests and benchmarks: drawn stick figures, a dataset
root with label sets, and a COCO keypoints export per split, all in a second.

The figures are 2-D walking stick figures with one colour per joint (so a very small network can
learn them in a few epochs). A "teacher" label set is the exact joints plus pixel noise, with a
per-joint confidence; a "ground_truth" label set holds the exact joints. The root also has its
``videos.parquet`` and ``frames.parquet``, so every stage (e.g. labelling with a trained student)
runs on it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.geometry import clip_xyxy, xyxy_to_xywh
from gaitdata.labels import LABEL_COLUMNS, encode_keypoints, write_labels
from gaitdata.schema import COCO17

_COLOURS = np.array(
    [[255, 255, 255], [255, 0, 0], [0, 255, 0], [255, 128, 0], [0, 128, 255], [255, 255, 0], [0, 255, 255],
     [255, 0, 255], [128, 0, 255], [128, 255, 0], [0, 255, 128], [255, 0, 128], [128, 128, 255],
     [200, 100, 50], [50, 100, 200], [100, 200, 50], [50, 200, 100]],
    dtype=np.uint8,
)  # fmt: skip


TINY_STUDENT = {"input_size": (64, 48), "width_mult": 0.25, "head_channels": (32,)}
"""Model arguments of a student small enough to train on the stick figures in seconds."""
NO_COLOUR_AUGMENTATION = {"color_jitter": 0.0, "channel_shuffle_prob": 0.0, "grayscale_prob": 0.0}
"""Training arguments that keep colours: the figures' joints are colour-coded."""
FIVE_VIDEO_SPLITS = ("train", "train", "train", "val", "test")


def figure_joints(cx: float, cy: float, height: float, phase: float, facing: int = 1) -> np.ndarray:
    """(17, 2) COCO-17 joints of a side-view walker: pelvis centre (cx, cy), ``height`` pixels tall."""
    u = height / 1.75
    hip_l = math.radians(25 * math.sin(phase))
    hip_r = math.radians(25 * math.sin(phase + math.pi))
    knee_l = math.radians(30 * max(0.0, math.sin(phase - 1.0)) + 5)
    knee_r = math.radians(30 * max(0.0, math.sin(phase + math.pi - 1.0)) + 5)
    j = np.zeros((17, 2))
    sh_y = cy - 0.52 * u
    j[5] = (cx + 0.04 * u * facing, sh_y)
    j[6] = (cx - 0.04 * u * facing, sh_y)
    j[11] = (cx + 0.03 * u * facing, cy)
    j[12] = (cx - 0.03 * u * facing, cy)
    for hip, knee, ank, a_h, a_k in ((11, 13, 15, hip_l, knee_l), (12, 14, 16, hip_r, knee_r)):
        # perspective: the leg on the camera side (the right one when facing image right) looks larger
        s = 1.04 if (hip == 12) == (facing > 0) else 1.0
        j[knee] = j[hip] + s * 0.43 * u * np.array([facing * math.sin(a_h), math.cos(a_h)])
        a = a_h - a_k
        j[ank] = j[knee] + s * 0.42 * u * np.array([facing * math.sin(a), math.cos(a)])
    for sh, el, wr, a in ((5, 7, 9, -hip_l), (6, 8, 10, -hip_r)):
        j[el] = j[sh] + 0.29 * u * np.array([facing * math.sin(a), math.cos(a)])
        j[wr] = j[el] + 0.25 * u * np.array([facing * math.sin(a + 0.4), math.cos(a + 0.4)])
    head = np.array([cx + 0.03 * u * facing, sh_y - 0.2 * u])
    j[0] = head + (0.06 * u * facing, 0.0)
    j[1] = head + (0.04 * u * facing, -0.03 * u)
    j[2] = head + (0.035 * u * facing, -0.035 * u)
    j[3] = head + (-0.02 * u * facing, -0.01 * u)
    j[4] = head + (-0.03 * u * facing, -0.015 * u)
    return j


def draw_figure(image: np.ndarray, joints: np.ndarray, radius: int = 3) -> None:
    for a, b in COCO17.skeleton:
        pa = tuple(int(round(v)) for v in joints[a])
        pb = tuple(int(round(v)) for v in joints[b])
        cv2.line(image, pa, pb, (90, 90, 90), 2, cv2.LINE_AA)
    for k, p in enumerate(joints):
        cv2.circle(
            image, (int(round(p[0])), int(round(p[1]))), radius, tuple(int(c) for c in _COLOURS[k]), -1
        )


def stick_figure_root(
    path: str | Path,
    n_videos: int = 4,
    n_frames: int = 12,
    image_size: tuple[int, int] = (120, 160),
    seed: int = 0,
    splits: tuple[str, ...] = ("train", "train", "val", "test"),
    teacher_noise_px: float = 1.0,
) -> Path:
    """A small dataset root with frames, label sets ``teacher`` and ``ground_truth``, and
    ``exports/coco/<split>.json`` from the teacher labels (video ``i`` goes to ``splits[i % len]``)."""
    root = DatasetRoot(path)
    root.init(COCO17, provenance={"source": "gaitdata.testing.figures"})
    rng = np.random.default_rng(seed)
    h, w = image_size
    teacher_rows, gt_rows = [], []
    video_rows, frame_rows = [], []
    coco: dict[str, dict] = {}
    for v in range(n_videos):
        vid = f"toy{v:02d}"
        split = splits[v % len(splits)]
        c = coco.setdefault(split, {"images": [], "annotations": []})
        facing = 1 if v % 2 == 0 else -1
        height = h * rng.uniform(0.6, 0.75)
        x0 = rng.uniform(0.3, 0.4) * w if facing > 0 else rng.uniform(0.6, 0.7) * w
        bg = rng.integers(20, 60, size=3)
        phase0 = rng.uniform(0, 2 * math.pi)
        video_rows.append({
            "video_id": vid, "source_path": f"/toy/{vid}", "source_rel": vid, "kind": "images", "status": "ok",
            "n_colour_frames": n_frames, "n_depth_frames": 0, "n_written": n_frames, "fps": 10.0, "width": w,
            "height": h, "subject": vid, "view": "side",
        })  # fmt: skip
        for f in range(n_frames):
            phase = phase0 + 2 * math.pi * f / 16.0 + rng.uniform(0, 0.05)  # 16 frames per gait cycle
            cx = x0 + facing * f * w * 0.02
            cy = h * 0.5 + rng.uniform(-3, 3)
            joints = figure_joints(cx, cy, height, phase, facing)
            img = np.empty((h, w, 3), np.uint8)
            img[:] = bg
            img = np.clip(img.astype(np.int16) + rng.integers(-8, 9, size=img.shape), 0, 255).astype(np.uint8)
            draw_figure(img, joints)
            rel = DatasetRoot.rgb_relpath(vid, f)
            out = root.abspath(rel)
            out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            frame_rows.append({"video_id": vid, "frame_index": f, "colour_frame_number": f, "colour_ts_ms": f * 100.0,
                               "rgb_path": rel, "depth_path": None, "status": "ok"})  # fmt: skip
            x1, y1 = joints.min(0) - 6
            x2, y2 = joints.max(0) + 6
            bbox = xyxy_to_xywh(clip_xyxy([x1, y1, x2, y2], w, h))[0].tolist()
            vis = [2] * 17
            noisy = joints + rng.normal(0, teacher_noise_px, joints.shape)
            conf = rng.uniform(0.6, 1.0, 17)
            for rows, pts, cf, name in (
                (teacher_rows, noisy, conf, "teacher"),
                (gt_rows, joints, np.ones(17), "ground_truth"),
            ):
                kp = encode_keypoints(np.concatenate([pts, cf[:, None]], 1))
                rows.append({
                    "video_id": vid, "frame_index": f, "person_index": 0, "has_person": True,
                    "bbox_x": bbox[0], "bbox_y": bbox[1], "bbox_w": bbox[2], "bbox_h": bbox[3], "score": 0.95,
                    "keypoints": kp, "visibility": vis, "num_visible": 17, "track_id": 0, "is_subject": True,
                    "teacher": name, "weights_hash": None, "qa_flags": [],
                })  # fmt: skip
            image_id = len(c["images"]) + 1 + 10000 * v
            c["images"].append(
                {"id": image_id, "file_name": rel, "width": w, "height": h, "video_id": vid, "frame_index": f}
            )
            c["annotations"].append({
                "id": image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "bbox": bbox, "area": bbox[2] * bbox[3], "num_keypoints": 17, "score": 0.95,
                "keypoints": np.concatenate([noisy, np.full((17, 1), 2.0)], 1).reshape(-1).tolist(),
                "keypoint_scores": conf.tolist(),
            })  # fmt: skip
    root.write_videos(pd.DataFrame(video_rows))
    root.write_frames(pd.DataFrame(frame_rows))
    write_labels(
        root, "teacher", pd.DataFrame(teacher_rows, columns=list(LABEL_COLUMNS)), {"teacher": "teacher"}
    )
    write_labels(
        root, "ground_truth", pd.DataFrame(gt_rows, columns=list(LABEL_COLUMNS)), {"teacher": "ground_truth"}
    )
    cat = {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(COCO17.keypoints),
        "skeleton": COCO17.skeleton_1based(),
    }
    exp = root.exports_dir / "coco"
    exp.mkdir(parents=True, exist_ok=True)
    for split, c in coco.items():
        (exp / f"{split}.json").write_text(
            json.dumps({"images": c["images"], "annotations": c["annotations"], "categories": [cat]})
        )
    return root.path


def trained_tiny_student(path: str | Path, epochs: int = 8, **train_kwargs: Any) -> tuple[Path, Path]:
    """A five-video stick-figure root and a tiny student trained on it for ``epochs`` (seconds on
    one CPU thread): ``(root, run_dir)``. ``train_kwargs`` override the training settings."""
    from gaitdata import student

    root = stick_figure_root(path, n_videos=5, n_frames=12, splits=FIVE_VIDEO_SPLITS)
    settings = {"batch_size": 8, "flip_prob": 0.0, "lr": 3e-3, "model_kwargs": TINY_STUDENT, **NO_COLOUR_AUGMENTATION}
    run_dir = student.train(root, model="fastpose_res10_w025", epochs=epochs, out=root / "models" / "tiny",
                            **{**settings, **train_kwargs})  # fmt: skip
    return root, Path(run_dir)
