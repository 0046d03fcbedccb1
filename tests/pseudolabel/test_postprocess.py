"""Post-processing: visibility, tracks, subject selection, smoothing and QA flags on hand-made data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _label_roots import BLOB_LAYOUT

from gaitdata.dataset import conform
from gaitdata.labels import LABEL_COLUMNS
from pseudolabel.postprocess import (
    PostprocessConfig,
    assign_tracks,
    depth_features,
    one_euro,
    postprocess_recording,
    qa_flags,
    visibility_from_confidence,
)


def person(x: float, y: float, w: float = 60, h: float = 180, conf: float = 0.9) -> np.ndarray:
    kp = np.zeros((17, 3))
    kp[:, 0] = x + BLOB_LAYOUT[:, 0] * w
    kp[:, 1] = y + BLOB_LAYOUT[:, 1] * h
    kp[:, 2] = conf
    return kp


def rows(video: str, poses: dict[int, list[np.ndarray]], n_frames: int) -> pd.DataFrame:
    out = []
    for f in range(n_frames):
        ps = poses.get(f, [])
        if not ps:
            out.append({"video_id": video, "frame_index": f, "person_index": -1, "has_person": False})
        for k, kp in enumerate(ps):
            x0, y0 = kp[:, 0].min(), kp[:, 1].min()
            out.append(
                {
                    "video_id": video, "frame_index": f, "person_index": k, "has_person": True,
                    "bbox_x": x0, "bbox_y": y0, "bbox_w": np.ptp(kp[:, 0]), "bbox_h": np.ptp(kp[:, 1]),
                    "score": float(kp[:, 2].mean()), "keypoints": kp.reshape(-1).tolist(), "qa_flags": [],
                }
            )  # fmt: skip
    return conform(pd.DataFrame(out), LABEL_COLUMNS, "test")


def test_visibility_thresholds() -> None:
    conf = np.array([0.0, 0.19, 0.2, 0.49, 0.5, 1.0, np.nan])
    assert visibility_from_confidence(conf, (0.2, 0.5)).tolist() == [0, 0, 1, 1, 2, 2, 0]
    assert visibility_from_confidence(conf, (0.0, 0.0)).tolist() == [2, 2, 2, 2, 2, 2, 2]
    with pytest.raises(ValueError, match="vis_thresholds"):
        PostprocessConfig(vis_thresholds=(0.6, 0.5))


def test_tracks_survive_short_gaps_and_separate_people() -> None:
    fi = np.array([0, 0, 1, 1, 2, 5, 5, 20])
    boxes = np.array(
        [[10, 10, 50, 150], [200, 10, 50, 150], [14, 10, 50, 150], [200, 12, 50, 150],
         [18, 10, 50, 150], [30, 10, 50, 150], [201, 10, 50, 150], [30, 10, 50, 150]], float
    )  # fmt: skip
    t = assign_tracks(fi, boxes, PostprocessConfig(track_max_gap=5))
    assert t.tolist() == [0, 1, 0, 1, 0, 0, 1, 2]  # frame 20 is past the gap: a new track


def test_subject_is_the_walker_not_the_larger_standing_bystander() -> None:
    n = 30
    poses = {f: [person(20 + 8 * f, 40, 60, 170), person(500, 20, 70, 200)] for f in range(n)}
    for f in range(0, n, 2):  # the walker's ankles swing
        poses[f][0][15, 0] += 15
        poses[f][0][16, 0] -= 15
    out = postprocess_recording(rows("v", poses, n), n_frames=n, image_height=480)
    walker = out[out["bbox_x"] < 450]
    stander = out[out["bbox_x"] >= 450]
    assert walker["is_subject"].all() and not stander["is_subject"].any()
    assert walker["track_id"].nunique() == 1 and stander["track_id"].nunique() == 1


def test_subject_prefers_the_person_inside_the_depth_band() -> None:
    n = 10
    poses = {f: [person(20 + 8 * f, 40), person(300 - 8 * f, 40)] for f in range(n)}
    df = rows("v", poses, n)
    depth = np.where(df["bbox_x"] < 200, 12.0, 3.0)  # the first walker is 12 m away
    cfg = PostprocessConfig(depth_band_m=(0.5, 6.0))
    out = postprocess_recording(df, n_frames=n, image_height=480, depth_m=depth, cfg=cfg)
    assert out.loc[out["bbox_x"] >= 200, "is_subject"].sum() > 0
    chosen = out[out["is_subject"].fillna(False)]
    assert (np.asarray(depth)[chosen.index] == 3.0).all()


def test_no_person_rows_and_visibility_columns() -> None:
    kp = person(10, 10, conf=0.3)
    kp[0, 2] = 0.05
    out = postprocess_recording(rows("v", {0: [kp], 2: [person(12, 10)]}, 3), n_frames=3)
    assert out["has_person"].tolist() == [True, False, True]
    r0 = out.iloc[0]
    assert r0["visibility"][0] == 0 and r0["visibility"][1] == 1 and r0["num_visible"] == 16
    assert out.iloc[2]["num_visible"] == 17 and set(out.iloc[2]["visibility"]) == {2}
    empty = out.iloc[1]
    assert pd.isna(empty["track_id"]) and pd.isna(empty["is_subject"]) and empty["visibility"] is None
    assert list(empty["qa_flags"]) == []


def walk_sequence(n: int = 12) -> list[np.ndarray]:
    return [person(100 + 6 * f, 50 + (f % 2)) for f in range(n)]


def _flags(seq: list[np.ndarray], cfg: PostprocessConfig = PostprocessConfig()) -> list[list[str]]:
    kp = np.stack(seq)
    return qa_flags(np.arange(len(seq)), kp, np.full(len(seq), 180.0), np.zeros(len(seq), int), cfg=cfg)


def test_clean_walk_has_no_flags() -> None:
    assert all(f == [] for f in _flags(walk_sequence()))


def test_a_single_swapped_frame_is_flagged_alone() -> None:
    seq = walk_sequence()
    perm = np.arange(17)
    for a, b in ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)):
        perm[a], perm[b] = b, a
    seq[6] = seq[6][perm]
    flags = _flags(seq)
    assert [i for i, f in enumerate(flags) if "lr_swap" in f] == [6]


def test_a_stretched_bone_is_flagged() -> None:
    seq = walk_sequence()
    seq[4] = seq[4].copy()
    seq[4][15, 1] += 60  # left ankle pulled 60 px down: the left shank doubles
    flags = _flags(seq)
    assert "bone:left_knee-left_ankle" in flags[4]
    assert all("bone:left_knee-left_ankle" not in f for i, f in enumerate(flags) if i != 4)
    assert "jitter:left_ankle" in flags[4]


def test_background_joint_flag_from_depth() -> None:
    depth = np.full((240, 320), 3000, np.uint16)
    depth[40:220, 100:160] = 1500  # the person
    background = np.full((240, 320), 3000, np.uint16)
    kp = person(100, 40, 60, 180)
    kp[9, :2] = (250, 100)  # left wrist placed on the wall
    dm, on_bg = depth_features(kp, depth, background, 0.001)
    assert dm == pytest.approx(1.5, abs=0.01)
    assert on_bg == [9]
    flags = qa_flags(np.array([0]), kp[None], np.array([180.0]), np.array([0]), background_joints=[on_bg])
    assert flags == [["background:left_wrist"]]
    assert depth_features(kp, None, None, 0.001) == (pytest.approx(np.nan, nan_ok=True), [])


def test_one_euro_smooths_noise_and_follows_motion() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(120) / 30.0
    clean = np.stack([100 + 60 * t, np.full_like(t, 50.0)], axis=1)
    noisy = clean + rng.normal(0, 2.0, clean.shape)
    out = one_euro(t, noisy, min_cutoff=1.0, beta=0.05)
    err_in = np.abs(noisy - clean)[30:].mean(axis=0)
    err_out = np.abs(out - clean)[30:].mean(axis=0)
    assert err_out[1] < 0.6 * err_in[1]  # a still coordinate: noise removed
    assert err_out[0] < 3.0  # a 60 px/s ramp: followed without a large lag


def test_smoothing_is_recorded_and_changes_only_coordinates() -> None:
    rng = np.random.default_rng(1)
    seq = {f: [person(100 + 3 * f, 50) + np.r_[rng.normal(0, 2, (17, 2)).T, np.zeros((1, 17))].T] for f in range(20)}
    raw = rows("v", seq, 20)
    cfg = PostprocessConfig(smooth="one_euro")
    out = postprocess_recording(raw, n_frames=20, cfg=cfg)
    a = np.stack([np.reshape(k, (17, 3)) for k in raw["keypoints"]])
    b = np.stack([np.reshape(k, (17, 3)) for k in out["keypoints"]])
    assert np.allclose(a[..., 2], b[..., 2]) and not np.allclose(a[1:, :, :2], b[1:, :, :2])
    assert cfg.to_dict()["smooth"] == "one_euro"
    with pytest.raises(ValueError, match="smooth"):
        PostprocessConfig(smooth="kalman")
