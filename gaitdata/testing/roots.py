"""Small synthetic dataset roots for tests and benchmarks of splits and exports.

No recording is rendered: the tables (videos, frames, a label set) are generated directly and
each written frame is a tiny noise JPEG (distinct perceptual hashes), so a root of a few hundred
frames builds in well under a second. Use :mod:`gaitdata.synth` for realistic recordings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.labels import encode_keypoints, write_labels
from gaitdata.schema import COCO17


@dataclass(frozen=True)
class ToyRootSpec:
    subjects: int = 4
    videos_per_subject: int = 2
    frames_per_video: int = 6
    width: int = 64
    height: int = 48
    views: tuple[str, ...] = ("front", "side")
    conditions: tuple[str, ...] = ("normal", "bag")
    images: bool = True  # write the RGB JPEGs (exports check they exist)
    depth: bool = False  # write 16-bit depth PNGs too (paths are always in frames.parquet)
    label_set: str | None = "toy"
    bystander_every: int = 4  # every n-th frame has a second (non-subject) person
    empty_every: int = 5  # every n-th frame has no person
    seed: int = 0
    unequal: bool = True  # vary the frame count per video so groups weigh differently


def build_toy_root(path: str | os.PathLike, spec: ToyRootSpec = ToyRootSpec()) -> DatasetRoot:
    """Create a dataset root with ``spec.subjects * spec.videos_per_subject`` ok videos and a label set."""
    import cv2

    rng = np.random.default_rng(spec.seed)
    root = DatasetRoot(path)
    root.init()
    vrows, frows, lrows = [], [], []
    k = COCO17.num_keypoints
    for si in range(spec.subjects):
        subject = f"s{si:02d}"
        for vi in range(spec.videos_per_subject):
            vid = f"{subject}_v{vi}"
            n = spec.frames_per_video + (((si * 7 + vi * 3) % 5) if spec.unequal else 0)
            view = spec.views[(si + vi) % len(spec.views)]
            cond = spec.conditions[vi % len(spec.conditions)]
            vrows.append({
                "video_id": vid, "source_path": f"/recordings/{vid}.bag", "source_rel": f"{vid}.bag",
                "kind": "bag", "fingerprint": f"toy-{vid}", "subject": subject, "session": "1", "view": view,
                "condition": cond, "status": "ok", "n_colour_frames": n, "n_depth_frames": n, "n_written": n,
                "n_depth_unpaired": 0, "fps": 30.0, "width": spec.width, "height": spec.height,
                "source_width": spec.width, "source_height": spec.height, "fx": 50.0, "fy": 50.0,
                "cx": spec.width / 2 - 0.5, "cy": spec.height / 2 - 0.5, "depth_scale": 0.001,
            })  # fmt: skip
            for fi in range(n):
                rgb = DatasetRoot.rgb_relpath(vid, fi)
                dep = DatasetRoot.depth_relpath(vid, fi)
                frows.append({
                    "video_id": vid, "frame_index": fi, "colour_frame_number": fi + 1, "depth_frame_number": fi + 1,
                    "colour_ts_ms": fi * 33.3, "depth_ts_ms": fi * 33.3 + 1.0, "dt_ms": 1.0,
                    "rgb_path": rgb, "depth_path": dep, "status": "ok",
                })  # fmt: skip
                if spec.images:
                    p = root.path / rgb
                    p.parent.mkdir(parents=True, exist_ok=True)
                    img = rng.integers(0, 256, (spec.height // 8, spec.width // 8, 3), dtype=np.uint8)
                    img = cv2.resize(img, (spec.width, spec.height), interpolation=cv2.INTER_NEAREST)
                    cv2.imwrite(str(p), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
                if spec.depth:
                    p = root.path / dep
                    p.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(p), rng.integers(500, 3000, (spec.height, spec.width), dtype=np.uint16))
                if spec.label_set is None:
                    continue
                persons = 0 if spec.empty_every and fi % spec.empty_every == spec.empty_every - 1 else 1
                if persons and spec.bystander_every and fi % spec.bystander_every == 1:
                    persons = 2
                if persons == 0:
                    lrows.append({"video_id": vid, "frame_index": fi, "person_index": -1, "has_person": False,
                                  "teacher": "toy", "weights_hash": "none", "qa_flags": []})  # fmt: skip
                for pi in range(persons):
                    x0 = rng.uniform(0, spec.width * 0.5)
                    y0 = rng.uniform(0, spec.height * 0.3)
                    w = rng.uniform(spec.width * 0.2, spec.width * 0.45)
                    h = rng.uniform(spec.height * 0.4, spec.height * 0.65)
                    xy = np.stack([rng.uniform(x0, x0 + w, k), rng.uniform(y0, y0 + h, k)], axis=1)
                    conf = rng.uniform(0.0, 1.0, k)
                    vis = np.where(conf > 0.5, 2, np.where(conf > 0.2, 1, 0)).astype(int)
                    kp = np.concatenate([xy, conf[:, None]], axis=1)
                    flags = ["low_confidence"] if conf.mean() < 0.4 else []
                    if pi == 1:
                        flags.append("bystander")
                    lrows.append({
                        "video_id": vid, "frame_index": fi, "person_index": pi, "has_person": True,
                        "bbox_x": x0, "bbox_y": y0, "bbox_w": w, "bbox_h": h,
                        "score": float(rng.uniform(0.3, 1.0)), "keypoints": encode_keypoints(kp), "visibility": vis.tolist(),
                        "num_visible": int((vis > 0).sum()), "track_id": pi + 1, "is_subject": pi == 0,
                        "teacher": "toy", "weights_hash": "none", "qa_flags": flags,
                    })  # fmt: skip
    root.write_videos(pd.DataFrame(vrows))
    root.write_frames(pd.DataFrame(frows))
    if spec.label_set is not None:
        write_labels(root, spec.label_set, pd.DataFrame(lrows), {"teacher": "toy", "thresholds": [0.2, 0.5]})
    return root


def toy_root(path: str | os.PathLike | Path, **kwargs: object) -> DatasetRoot:
    """``build_toy_root(path, ToyRootSpec(**kwargs))``."""
    return build_toy_root(path, ToyRootSpec(**kwargs))  # type: ignore[arg-type]
