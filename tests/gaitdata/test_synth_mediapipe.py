"""Acceptance: the offline BlazePose teacher finds the synthetic walker and lands near the ground truth.

Measured on this renderer (mediapipe 0.10.14, model_complexity=1, static images, 640x480, PCK of the
rendered silhouette box height), 4 subjects x 6 directions x 30 frames: detection 720/720 frames;
PCK@0.1 side walks 0.94-0.98 (mean error 4-8 px), toward/away 0.975-1.00 (4-6 px), oblique 0.99-1.00.
The thresholds below leave a margin for the model's known side-view far-leg collapses.
"""

from __future__ import annotations

import numpy as np
import pytest

from gaitdata.synth import WalkSpec, render_walk

# COCO-17 from the 33 BlazePose landmarks (person's left = COCO left)
BLAZE_TO_COCO = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]


def _blazepose_scores(rec) -> tuple[float, float, float]:
    import mediapipe as mp

    h, w = rec.colour.shape[1:3]
    found, ok, total, errs = 0, 0, 0, []
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        for img, gt, box in zip(rec.colour, rec.keypoints_2d, rec.meta["bboxes"], strict=True):
            res = pose.process(img)
            if res.pose_landmarks is None:
                continue
            found += 1
            lm = res.pose_landmarks.landmark
            pred = np.array([[lm[i].x * w, lm[i].y * h] for i in BLAZE_TO_COCO])
            vis = gt[:, 2] > 0
            box_h = box[3]  # height of the rendered silhouette's box
            d = np.linalg.norm(pred - gt[:, :2], axis=1)[vis]
            ok += int((d <= 0.1 * box_h).sum())
            total += int(vis.sum())
            errs += d.tolist()
    return found / len(rec.colour), ok / max(total, 1), float(np.mean(errs)) if errs else float("inf")


@pytest.mark.mediapipe
@pytest.mark.timeout(120)
def test_blazepose_finds_the_walker_near_the_ground_truth():
    side = render_walk(WalkSpec(direction="left_to_right", n_frames=30, seed=0, with_depth=False))
    det, pck, err = _blazepose_scores(side)
    print(f"side: detection {det:.2f}, PCK@0.1 {pck:.3f}, mean error {err:.1f} px")
    assert det >= 0.9
    assert pck >= 0.88
    assert err <= 12.0
    front = render_walk(WalkSpec(direction="toward", n_frames=12, fps=12.0, seed=1, with_depth=False))
    det, pck, err = _blazepose_scores(front)
    print(f"toward: detection {det:.2f}, PCK@0.1 {pck:.3f}, mean error {err:.1f} px")
    assert det >= 0.9
    assert pck >= 0.9
    assert err <= 10.0
