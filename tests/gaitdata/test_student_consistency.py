"""Left/right consistency along tracks, gait events and cadence, on a 2-D side-view walker whose
truth is known exactly (stance foot fixed on the floor, swing foot passing it, the leg nearer the
camera imaged slightly larger)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gaitdata.schema import COCO17
from gaitdata.student.consistency import (
    ConsistencyConfig,
    apply_swaps,
    consistent_persons,
    consistent_track,
    limb_chains,
    side_view_facing,
    smooth_track,
)
from gaitdata.student.gait import cycle_summary, gait_angles, match_events, track_events

FPS = 30.0
LEFT = [COCO17.index(f"left_{n}") for n in ("hip", "knee", "ankle")]
RIGHT = [COCO17.index(f"right_{n}") for n in ("hip", "knee", "ankle")]


def _foot(t: float, cycle: float, phase0: float, speed: float, facing: int) -> tuple[float, float]:
    """Ankle (x, lift) of one foot: 60 % stance (fixed where the pelvis passes it at mid-stance),
    40 % swing to the next contact point, lifted on the way."""
    p = t / cycle + phase0
    k, frac = math.floor(p), p - math.floor(p)
    contact = facing * speed * cycle * (k + 0.3 - phase0)  # pelvis over the foot at mid-stance
    if frac < 0.6:
        return contact, 0.0
    s = (frac - 0.6) / 0.4
    step = facing * speed * cycle * (0.5 - 0.5 * math.cos(math.pi * s))
    return contact + step, math.sin(math.pi * s)


def side_walker(n: int = 90, facing: int = 1, cycle: float = 1.1, near_scale: float = 1.04, height: float = 250.0):
    """(n, 17, 3) keypoints of a side-view walker (confidence 1) and the heel-strike frames per foot."""
    u = height / 1.75
    speed = 1.2 * u  # px / s
    thigh, shank = 0.43 * u, 0.42 * u
    kp = np.zeros((n, 17, 3))
    kp[..., 2] = 1.0
    strikes = {"left": [], "right": []}
    near = "right" if facing > 0 else "left"
    for i in range(n):
        t = i / FPS
        px, py = 200 + facing * speed * t, 200.0
        for side, phase0 in (("right", 0.0), ("left", 0.5)):
            fx, lift = _foot(t, cycle, phase0, speed, facing)
            ank = np.array([200 + fx, py + 0.8 * u - 12 * lift])
            hip = np.array([px, py])
            d = np.linalg.norm(ank - hip)
            d = min(d, thigh + shank - 1e-6)
            a = math.acos((thigh**2 + d**2 - shank**2) / (2 * thigh * d))  # knee forward in the facing direction
            v = (ank - hip) / np.linalg.norm(ank - hip)
            rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            knee_dir = rot @ v if facing < 0 else rot.T @ v
            knee = hip + thigh * knee_dir
            s = near_scale if side == near else 1.0  # perspective: the camera-side leg looks larger
            idx = LEFT if side == "left" else RIGHT
            kp[i, idx[0], :2] = hip
            kp[i, idx[1], :2] = hip + s * (knee - hip)
            kp[i, idx[2], :2] = hip + s * (ank - hip)
        for side, phase0 in (("right", 0.0), ("left", 0.5)):
            p_prev, p_now = (i - 1) / FPS / cycle + phase0, t / cycle + phase0
            if i and math.floor(p_now) > math.floor(p_prev):
                strikes[side].append(i - (p_now - math.floor(p_now)) * cycle * FPS)
        sh = py - 0.52 * u
        for j in (5, 6):
            kp[i, j, :2] = (px + 0.01 * u * facing, sh)
            kp[i, j + 2, :2] = (px, sh + 0.29 * u)
            kp[i, j + 4, :2] = (px + 0.05 * u * facing, sh + 0.52 * u)
        head = np.array([px + 0.03 * u * facing, sh - 0.2 * u])
        kp[i, 0, :2] = head + (0.07 * u * facing, 0)
        kp[i, 1, :2] = kp[i, 2, :2] = head + (0.05 * u * facing, -0.03 * u)
        kp[i, 3, :2] = kp[i, 4, :2] = head + (-0.03 * u * facing, -0.01 * u)
    return kp, {k: np.array(v) for k, v in strikes.items()}


def _front_leg_rule(kp: np.ndarray, facing: int) -> np.ndarray:
    """The failure of a small model in side views: 'left' is whichever leg is ahead (right half the time)."""
    out = kp.copy()
    ahead_left = facing * (kp[:, LEFT[2], 0] - kp[:, RIGHT[2], 0]) > 0
    bad = ~ahead_left
    out[np.ix_(bad, LEFT + RIGHT)] = kp[np.ix_(bad, RIGHT + LEFT)]
    return out


def _swapped(a: np.ndarray, truth: np.ndarray) -> np.ndarray:
    direct = np.linalg.norm(a[:, LEFT + RIGHT, :2] - truth[:, LEFT + RIGHT, :2], axis=-1).sum(1)
    cross = np.linalg.norm(a[:, RIGHT + LEFT, :2] - truth[:, LEFT + RIGHT, :2], axis=-1).sum(1)
    apart = np.linalg.norm(truth[:, LEFT[2], :2] - truth[:, RIGHT[2], :2], axis=-1) > 10
    return (cross < direct) & apart


@pytest.mark.parametrize("facing", [1, -1])
def test_front_leg_labelling_is_undone_over_the_track(facing):
    truth, _ = side_walker(facing=facing)
    rng = np.random.default_rng(0)
    noisy = truth.copy()
    noisy[..., :2] += rng.normal(0, 1.0, truth[..., :2].shape)
    bad = _front_leg_rule(noisy, facing)
    frames = np.arange(len(truth))
    scale = np.full(len(truth), 250.0)
    assert _swapped(bad, truth).mean() > 0.3  # half the separated frames are swapped
    assert side_view_facing(bad, scale) == facing
    res = consistent_track(bad, frames, scale)
    assert _swapped(res.keypoints, truth).sum() <= 2
    assert res.swapped[:, 0].any() and res.keypoints.shape == truth.shape
    # the knee angle curve follows the truth again (r was low before)
    r = lambda a: np.corrcoef(gait_angles(a)["left_knee"], gait_angles(truth)["left_knee"])[0, 1]  # noqa: E731
    assert r(res.keypoints) > 0.95 and r(res.keypoints) > r(bad)


def test_short_flickers_are_fixed_and_a_clean_track_is_left_alone():
    truth, _ = side_walker(facing=-1)
    frames = np.arange(len(truth))
    scale = np.full(len(truth), 250.0)
    clean = consistent_track(truth, frames, scale, cfg=ConsistencyConfig(smooth_sigma=0.0))
    assert not clean.swapped.any() and np.array_equal(clean.keypoints, truth)
    flick = truth.copy()
    for a, b in ((10, 13), (40, 42), (70, 71)):
        rows = np.arange(a, b)
        flick[np.ix_(rows, LEFT + RIGHT)] = truth[np.ix_(rows, RIGHT + LEFT)]
    fixed = consistent_track(flick, frames, scale).keypoints
    assert _swapped(flick, truth).sum() >= 5 and _swapped(fixed, truth).sum() == 0


def test_front_view_tracks_get_no_side_votes_and_gaps_split_the_chain():
    truth, _ = side_walker()
    front = truth.copy()
    front[:, [5, 11], 0] += 30  # shoulders and hips a body-width apart: not a side view
    front[:, [6, 12], 0] -= 30
    scale = np.full(len(truth), 250.0)
    assert side_view_facing(front, scale) == 0
    # a track with a long gap is decided in independent pieces (no motion link across the gap)
    frames = np.r_[np.arange(40), np.arange(60, 110)]
    res = consistent_track(truth[: len(frames)], frames, scale[: len(frames)], cfg=ConsistencyConfig(max_gap=3))
    assert res.keypoints.shape == (90, 17, 3)
    with pytest.raises(Exception, match="strictly increasing"):
        consistent_track(truth[:3], np.array([0, 2, 1]), scale[:3])


def test_consistent_persons_groups_by_video_and_track_and_keeps_order():
    a, _ = side_walker(n=40, facing=1)
    b, _ = side_walker(n=40, facing=-1)
    bad = np.concatenate([_front_leg_rule(a, 1), _front_leg_rule(b, -1)])
    vids = np.array(["v1"] * 40 + ["v2"] * 40)
    frames = np.r_[np.arange(40), np.arange(40)]
    order = np.random.default_rng(1).permutation(80)
    fixed, flags = consistent_persons(vids[order], np.zeros(80, int), frames[order], bad[order], np.full(80, 250.0))
    back = np.empty_like(fixed)
    back[order] = fixed
    assert _swapped(back[:40], a).sum() <= 1 and _swapped(back[40:], b).sum() <= 1
    assert flags.shape == (80, len(limb_chains()))


def test_apply_swaps_and_smoothing():
    kp = np.random.default_rng(0).normal(size=(5, 17, 3))
    chain = limb_chains()[0]
    sw = np.array([False, True, False, False, True])
    out = apply_swaps(kp, sw, chain)
    assert np.array_equal(out[1, LEFT[1:]], kp[1, RIGHT[1:]]) and np.array_equal(out[0], kp[0])
    assert np.array_equal(out[1, LEFT[0]], kp[1, LEFT[0]])  # hips belong to the torso chain
    assert np.array_equal(apply_swaps(out, sw, chain), kp)
    line = np.zeros((20, 17, 3))
    line[..., 0] = np.arange(20)[:, None] * 3.0
    line[..., 2] = 1.0
    noisy = line.copy()
    noisy[10, 3, 0] += 9.0
    sm = smooth_track(noisy, np.arange(20), sigma=1.5)
    assert abs(sm[10, 3, 0] - line[10, 3, 0]) < 4.0 and np.allclose(sm[5:8, 0, 0], line[5:8, 0, 0])
    # a joint moving at constant speed stays put, at the ends of the track too (a local line, not a mean)
    assert np.allclose(smooth_track(line, np.arange(20), sigma=1.0), line)
    gappy = np.r_[np.arange(8), np.arange(12, 20)]
    assert np.allclose(smooth_track(line[gappy], gappy, sigma=1.0)[..., :2], line[gappy][..., :2])


def test_heel_strikes_step_time_and_cadence():
    truth, strikes = side_walker(n=120, facing=1, cycle=1.0)
    ev = track_events(truth, np.arange(len(truth)), 1, FPS)
    for side in ("left", "right"):
        m = match_events(strikes[side], getattr(ev, side), tol=2)
        assert m["missed"] == 0 and m["extra"] == 0 and m["mean_abs_error_frames"] < 1.0
    s = cycle_summary(ev)
    assert s["step_time_s"] == pytest.approx(0.5, abs=0.02)
    assert s["stride_time_s"] == pytest.approx(1.0, abs=0.02)
    assert s["cadence_steps_per_min"] == pytest.approx(120, abs=5)
    # labels swapped for half the cycle put strikes on the wrong foot: the per-foot match says so
    bad = track_events(_front_leg_rule(truth, 1), np.arange(len(truth)), 1, FPS)
    m = [match_events(strikes[s_], getattr(bad, s_), tol=2) for s_ in ("left", "right")]
    assert sum(x["missed"] + x["extra"] for x in m) > 0
    assert match_events(np.array([10.0, 40.0]), np.array([11.0, 70.0]), tol=3) == {
        "matched": 1, "mean_abs_error_frames": 1.0, "missed": 1, "extra": 1,
    }  # fmt: skip
