"""Box conversions, IoU and the one person-matching rule."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gaitdata.geometry import (
    box_area,
    box_iou,
    clip_xywh,
    clip_xyxy,
    intersection_matrix,
    iou_matrix,
    match_by_iou,
    match_greedy,
    xywh_to_xyxy,
    xyxy_to_xywh,
)


def test_conversions_round_trip() -> None:
    rng = np.random.default_rng(0)
    b = np.c_[rng.uniform(-50, 500, (20, 2)), rng.uniform(0, 200, (20, 2))]
    xyxy = xywh_to_xyxy(b)
    np.testing.assert_array_equal(xyxy[:, 2:], b[:, :2] + b[:, 2:])
    np.testing.assert_allclose(xyxy_to_xywh(xyxy), b, atol=1e-12)
    assert xywh_to_xyxy([1, 2, 3, 4]).tolist() == [[1, 2, 4, 6]]
    assert box_area([[0, 0, 3, 4], [5, 5, 0, 9]]).tolist() == [12, 0]


def test_boxes_are_cut_to_the_image() -> None:
    boxes = [[-10, 5, 30, 20], [600, 470, 100, 100], [700, 10, 5, 5], [10, 10, 20, 20]]
    np.testing.assert_array_equal(
        clip_xywh(boxes, 640, 480), [[0, 5, 20, 20], [600, 470, 40, 10], [640, 10, 0, 5], [10, 10, 20, 20]]
    )
    np.testing.assert_array_equal(clip_xyxy([[-5, -5, 700, 500]], 640, 480), [[0, 0, 640, 480]])


def test_iou_values_at_known_boxes() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10], [2, 2, 4, 4]])
    np.testing.assert_allclose(intersection_matrix(a, b), [[50, 0, 100, 16], [0, 0, 0, 0]])
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 0, 1, 16 / 100], [0, 0, 0, 0]])
    assert box_iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(1 / 3)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 4)


def test_iou_matches_a_brute_force_pixel_count() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 30, (6, 4)).astype(float)
    b = rng.integers(0, 30, (5, 4)).astype(float)
    grid = np.zeros((len(a) + len(b), 70, 70), bool)
    for n, (x, y, w, h) in enumerate(np.r_[a, b].astype(int)):
        grid[n, y : y + h, x : x + w] = True
    for i, j in itertools.product(range(len(a)), range(len(b))):
        inter = (grid[i] & grid[len(a) + j]).sum()
        union = (grid[i] | grid[len(a) + j]).sum()
        assert intersection_matrix(a[i], b[j])[0, 0] == inter
        assert iou_matrix(a, b)[i, j] == pytest.approx(inter / union if union else 0.0)


def test_matching_is_one_to_one_best_first() -> None:
    score = np.array([[0.9, 0.95], [0.2, 0.85]])
    assert match_greedy(score) == [(0, 1), (1, 0)]  # greedy, not the best total (0.9 + 0.85)
    assert match_greedy(score, score >= 0.5) == [(0, 1)]
    # ties: the tie-breaker first, then the lower row and column
    tie = np.ones((2, 2))
    assert match_greedy(tie) == [(0, 0), (1, 1)]
    assert match_greedy(tie, then_by=np.array([[0, 0], [0, 1]])) == [(1, 1), (0, 0)]
    assert match_greedy(np.array([[np.nan, 0.1]])) == [(0, 1)]
    assert match_greedy(np.zeros((0, 3))) == []
    with pytest.raises(ValueError, match="score matrix"):
        match_greedy(np.zeros(3))


def test_match_by_iou_never_reuses_a_person() -> None:
    # two predictions on one reference: only the better one is matched
    ref = np.array([[0, 0, 10, 20]])
    pred = np.array([[1, 0, 10, 20], [0, 0, 10, 20], [50, 50, 10, 20]])
    assert match_by_iou(ref, pred, 0.3) == [(0, 1)]
    rng = np.random.default_rng(2)
    for _ in range(20):
        a = np.c_[rng.uniform(0, 50, (7, 2)), rng.uniform(5, 40, (7, 2))]
        b = np.c_[rng.uniform(0, 50, (6, 2)), rng.uniform(5, 40, (6, 2))]
        pairs = match_by_iou(a, b, 0.1)
        assert len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs)
        assert all(iou_matrix(a, b)[i, j] >= 0.1 for i, j in pairs)
