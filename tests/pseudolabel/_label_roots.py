"""Small dataset roots for the labelling tests, written directly through DatasetRoot.

Also registers ``test_blob``, a tiny deterministic teacher for the runner's mechanics: every red
rectangle in an image is one person whose 17 joints sit at fixed places inside the rectangle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.records import Pose
from pseudolabel.registry import TeacherConfig, list_teachers, register_teacher

# joint positions as fractions (u, v) of a person box, roughly a standing person
BLOB_LAYOUT = np.array(
    [
        (0.50, 0.06), (0.55, 0.04), (0.45, 0.04), (0.60, 0.06), (0.40, 0.06),
        (0.70, 0.20), (0.30, 0.20), (0.75, 0.35), (0.25, 0.35), (0.78, 0.48), (0.22, 0.48),
        (0.62, 0.52), (0.38, 0.52), (0.62, 0.74), (0.38, 0.74), (0.62, 0.95), (0.38, 0.95),
    ]
)  # fmt: skip


class BlobTeacher:
    cfg = TeacherConfig(
        name="test_blob", input_size=None, mean=None, std=None, channel_order="RGB", top_down=False,
        source="tests", license="Apache-2.0",
    )  # fmt: skip
    weights_hash = "blob"

    def __init__(self, **_: object) -> None:
        self.calls = 0

    def predict(self, images: Sequence[np.ndarray], boxes=None) -> list[list[Pose]]:
        out = []
        for img in images:
            self.calls += 1
            red = ((img[..., 0] > 180) & (img[..., 1] < 80) & (img[..., 2] < 80)).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(red)
            poses = []
            for i in range(1, n):
                x, y, w, h, area = (int(v) for v in stats[i])
                if area < 50:
                    continue
                kp = np.zeros((17, 3), np.float32)
                kp[:, 0] = x + BLOB_LAYOUT[:, 0] * w
                kp[:, 1] = y + BLOB_LAYOUT[:, 1] * h
                kp[:, 2] = np.linspace(0.1, 0.95, 17)
                poses.append(Pose(bbox=(x, y, w, h), score=0.9, keypoints=kp))
            out.append(poses)
        return out

    def reset(self) -> None:
        pass


if "test_blob" not in list_teachers():
    register_teacher("test_blob", BlobTeacher)


def blob_frames(n: int, boxes_per_frame, size=(240, 320), depth_mm=(3000, 1500)):
    """Frames with red rectangles; ``boxes_per_frame(i) -> [(x, y, w, h), ...]``; depth for each."""
    h, w = size
    rgbs, depths = [], []
    for i in range(n):
        img = np.full((h, w, 3), 90, np.uint8)
        dep = np.full((h, w), depth_mm[0], np.uint16)
        for x, y, bw, bh in boxes_per_frame(i):
            img[y : y + bh, x : x + bw] = (220, 30, 30)
            dep[y : y + bh, x : x + bw] = depth_mm[1]
        rgbs.append(img)
        depths.append(dep)
    return np.stack(rgbs), np.stack(depths)


def make_root(
    path: Path,
    recordings: dict[str, tuple[np.ndarray, np.ndarray | None]],
    fps: float = 30.0,
    statuses: dict[str, dict[int, str]] | None = None,
) -> DatasetRoot:
    """Write a dataset root: ``recordings`` maps video_id -> (RGB frames (N, H, W, 3), depth (N, H, W) or None)."""
    root = DatasetRoot(path)
    root.init()
    vrows, frows = [], []
    for vid, (rgb, depth) in recordings.items():
        n, h, w = rgb.shape[:3]
        st = (statuses or {}).get(vid, {})
        for i in range(n):
            status = st.get(i, "ok")
            rgb_rel = root.rgb_relpath(vid, i) if status == "ok" else None
            dep_rel = root.depth_relpath(vid, i) if (status == "ok" and depth is not None) else None
            if rgb_rel:
                p = root.abspath(rgb_rel)
                p.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(p), cv2.cvtColor(rgb[i], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            if dep_rel:
                p = root.abspath(dep_rel)
                p.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(p), depth[i])
            frows.append(
                {
                    "video_id": vid, "frame_index": i, "colour_frame_number": i, "colour_ts_ms": i * 1000 / fps,
                    "rgb_path": rgb_rel, "depth_path": dep_rel, "status": status,
                }
            )  # fmt: skip
        vrows.append(
            {
                "video_id": vid, "source_path": f"/recordings/{vid}.bag", "source_rel": f"{vid}.bag",
                "kind": "bag" if depth is not None else "video", "status": "ok", "n_colour_frames": n,
                "n_depth_frames": n if depth is not None else 0,
                "n_written": sum(1 for i in range(n) if st.get(i, "ok") == "ok"),
                "fps": fps, "width": w, "height": h, "fx": 300.0, "fy": 300.0, "cx": w / 2, "cy": h / 2,
                "depth_scale": 0.0010000000474974513 if depth is not None else None, "subject": vid.split("_")[0],
            }
        )  # fmt: skip
    root.write_videos(pd.DataFrame(vrows))
    root.write_frames(pd.DataFrame(frows))
    return root


class BoxedTeacher(BlobTeacher):
    """A top-down teacher: one pose per given box, joints laid out inside it."""

    cfg = TeacherConfig(
        name="test_boxed", input_size=(256, 192), mean=None, std=None, channel_order="RGB", top_down=True,
        source="tests", license="Apache-2.0",
    )  # fmt: skip
    weights_hash = "boxed"

    def predict(self, images: Sequence[np.ndarray], boxes=None) -> list[list[Pose]]:
        if boxes is None:
            raise ValueError("test_boxed needs boxes")
        out = []
        for b in boxes:
            poses = []
            for x, y, w, h in np.asarray(b, float).reshape(len(b), -1)[:, :4] if len(b) else []:
                kp = np.zeros((17, 3), np.float32)
                kp[:, 0] = x + BLOB_LAYOUT[:, 0] * w
                kp[:, 1] = y + BLOB_LAYOUT[:, 1] * h
                kp[:, 2] = 0.8
                poses.append(Pose(bbox=(x, y, w, h), score=0.8, keypoints=kp))
            out.append(poses)
        return out


if "test_boxed" not in list_teachers():
    register_teacher("test_boxed", BoxedTeacher)


def root_from_synth(path: Path, recordings: dict) -> DatasetRoot:
    """A root from :class:`gaitdata.synth.SynthRecording` objects (colour + registered depth)."""
    return make_root(
        path,
        {vid: (rec.colour, rec.depth_registered if rec.has_depth else None) for vid, rec in recordings.items()},
        fps=next(iter(recordings.values())).fps if recordings else 30.0,
    )
