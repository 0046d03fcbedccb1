"""The BlazePose -> COCO-17 mapping, boxes, scores and crops (pure functions, no model run)."""

from __future__ import annotations

import numpy as np
import pytest

from gaitdata.schema import COCO17
from pseudolabel.teachers.mediapipe import (
    BLAZEPOSE_TO_COCO,
    MEDIAPIPE_CONFIG,
    OFF_IMAGE_CONFIDENCE,
    box_from_landmarks,
    crop_square,
    crop_window,
    landmarks_to_coco,
    person_score,
)

# BlazePose landmark names (its documented order) for the entries the mapping uses
BLAZEPOSE_NAMES = {
    0: "nose", 2: "left_eye", 5: "right_eye", 7: "left_ear", 8: "right_ear", 11: "left_shoulder",
    12: "right_shoulder", 13: "left_elbow", 14: "right_elbow", 15: "left_wrist", 16: "right_wrist",
    23: "left_hip", 24: "right_hip", 25: "left_knee", 26: "right_knee", 27: "left_ankle", 28: "right_ankle",
}  # fmt: skip


def test_mapping_matches_coco_names() -> None:
    assert BLAZEPOSE_TO_COCO == (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
    assert tuple(BLAZEPOSE_NAMES[i] for i in BLAZEPOSE_TO_COCO) == COCO17.keypoints


def test_landmarks_to_pixels_and_off_image_confidence() -> None:
    lm = np.zeros((33, 4))
    lm[:, 0] = np.linspace(0.1, 0.9, 33)
    lm[:, 1] = 0.5
    lm[:, 3] = 0.9
    lm[27, 0] = 1.2  # left ankle beyond the right border
    lm[28, 1] = -0.1  # right ankle above the top
    lm[0, 3] = 1.3  # visibility outside [0, 1] is clipped
    kp = landmarks_to_coco(lm, 320, 240)
    assert kp.shape == (17, 3) and kp.dtype == np.float32
    assert kp[1, 0] == pytest.approx(lm[2, 0] * 320) and kp[1, 1] == pytest.approx(120)
    assert kp[0, 2] == 1.0
    assert kp[15, 2] == pytest.approx(OFF_IMAGE_CONFIDENCE) and kp[16, 2] == pytest.approx(OFF_IMAGE_CONFIDENCE)
    assert kp[14, 2] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="33, 4"):
        landmarks_to_coco(np.zeros((17, 4)), 320, 240)


def test_box_is_padded_and_clipped() -> None:
    lm = np.zeros((33, 4))
    lm[:, 0] = np.r_[0.4, 0.6, np.full(31, 0.5)]
    lm[:, 1] = np.r_[np.full(32, 0.5), 0.2]
    lm[32, 1], lm[31, 1] = 0.9, 0.2  # extent y 0.2 .. 0.9 of 200 px = 140 px
    x, y, w, h = box_from_landmarks(lm, 200, 200)
    assert y == pytest.approx(40 - 0.10 * 140) and y + h == pytest.approx(180 + 0.02 * 140)
    assert x == pytest.approx(80 - 0.05 * 140) and x + w == pytest.approx(120 + 0.05 * 140)
    lm[:, 1] = np.linspace(-0.5, 1.5, 33)
    x, y, w, h = box_from_landmarks(lm, 200, 200)
    assert y == 0 and y + h == 200


def test_person_score_is_mean_torso_visibility() -> None:
    lm = np.zeros((33, 4))
    lm[[11, 12, 23, 24], 3] = [1.0, 0.5, 0.5, 0.0]
    lm[0, 3] = 1.0
    assert person_score(lm) == pytest.approx(0.5)


def test_crop_square_pads_outside_the_image() -> None:
    img = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    x0, y0, side = crop_window((20, 5, 8, 12), 30, 20, context=1.5)
    assert side == 18 and (x0, y0) == (15, 2)
    c = crop_square(img, x0, y0, side)
    assert c.shape == (18, 18, 3)
    assert (c[:, 15:] == 0).all()  # beyond the right border: black
    assert (c[0, 0] == img[2, 15]).all() and (c[17, 14] == img[19, 29]).all()


def test_config_is_complete() -> None:
    cfg = MEDIAPIPE_CONFIG
    assert cfg.name == "mediapipe" and cfg.license == "Apache-2.0" and not cfg.top_down
    assert cfg.schema is COCO17 and "0.10.14" in cfg.source and cfg.channel_order == "RGB"
