"""Two-teacher agreement: OKS/distances between label sets, merge with a 'disagree' flag, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gaitdata.dataset import DatasetRoot
from gaitdata.geometry import iou_matrix
from gaitdata.labels import read_label_meta, read_labels, write_labels
from gaitdata.schema import COCO17, KeypointSchema
from pseudolabel.agreement import (
    DISAGREE_FLAG,
    NOT_COMPARED_FLAG,
    agreement_path,
    compare_label_sets,
    greedy_match,
    merge_label_sets,
)

K = 17
BOX_W, BOX_H = 80.0, 200.0


def _row(
    vid: str, fi: int, pi: int, kp: np.ndarray | None, vis: np.ndarray | None, box=None, score=0.9
) -> dict:
    if kp is None:
        return {"video_id": vid, "frame_index": fi, "person_index": -1, "has_person": False, "keypoints": [],
                "visibility": [], "num_visible": 0, "teacher": "t", "qa_flags": []}  # fmt: skip
    x, y, w, h = box
    return {
        "video_id": vid, "frame_index": fi, "person_index": pi, "has_person": True,
        "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h, "score": score,
        "keypoints": [float(v) for v in kp.reshape(-1)], "visibility": [int(v) for v in vis],
        "num_visible": int((vis > 0).sum()), "track_id": pi, "is_subject": pi == 0, "teacher": "t",
        "weights_hash": "h", "qa_flags": [],
    }  # fmt: skip


def make_set(seed: int = 0) -> pd.DataFrame:
    """2 videos x 6 frames; frame 4 of each video holds two persons, frame 5 nobody."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in ("vidA", "vidB"):
        for fi in range(6):
            if fi == 5:
                rows.append(_row(v, fi, -1, None, None))
                continue
            for pi in range(2 if fi == 4 else 1):
                x0, y0 = 50.0 + 200 * pi + fi, 40.0
                kp = np.zeros((K, 3))
                kp[:, 0] = x0 + rng.uniform(5, BOX_W - 5, K)
                kp[:, 1] = y0 + rng.uniform(5, BOX_H - 5, K)
                kp[:, 2] = rng.uniform(0.5, 1.0, K)
                vis = np.full(K, 2)
                vis[[3, 4]] = 0  # ears not visible
                rows.append(_row(v, fi, pi, kp, vis, (x0, y0, BOX_W, BOX_H)))
    return pd.DataFrame(rows)


def shifted(df: pd.DataFrame, dx: float, dy: float, where=None) -> pd.DataFrame:
    out = df.copy()
    kps = []
    for i, kp in enumerate(out["keypoints"]):
        kp = np.asarray(kp, np.float64).reshape(-1, 3) if len(kp) else kp
        if len(kp) and (where is None or where(out.iloc[i])):
            kp = kp.copy()
            kp[:, 0] += dx
            kp[:, 1] += dy
        kps.append([float(v) for v in np.asarray(kp).reshape(-1)])
    out["keypoints"] = kps
    return out


def expected_oks(d: float, area: float, visible: np.ndarray) -> float:
    s = np.asarray(COCO17.sigmas)[visible]
    return float(np.mean(np.exp(-(d**2) / (2 * area * (2 * s) ** 2))))


@pytest.fixture
def root(tmp_path):
    DatasetRoot(tmp_path).init(COCO17)
    base = make_set()
    write_labels(tmp_path, "a", base, {"teacher": "mediapipe"})
    return tmp_path, base


def test_self_agreement_is_perfect(root) -> None:
    path, base = root
    write_labels(path, "b", base, {"teacher": "centernet"})
    t = compare_label_sets(path, "a", "b")
    assert (t["status"] == "matched").all() and len(t) == 2 * (4 + 2)
    np.testing.assert_allclose(t["oks"], 1.0)
    np.testing.assert_allclose(t["mean_dist_px"], 0.0)
    assert (t["num_compared"] == 15).all()
    assert (t["person_index_a"] == t["person_index_b"]).all()
    on_disk = pd.read_parquet(agreement_path(path, "a", "b"))
    assert len(on_disk) == len(t) and list(on_disk.columns) == list(t.columns)
    s = json.loads(agreement_path(path, "a", "b").with_suffix(".json").read_text())
    assert s["mean_oks"] == pytest.approx(1.0) and s["fraction_below_threshold"] == 0.0
    assert s["frames_compared"] == 12 and s["persons_only_a"] == s["persons_only_b"] == 0


def test_fixed_offset_drops_oks_as_expected(root) -> None:
    path, base = root
    write_labels(path, "b", shifted(base, 3.0, 4.0), {"teacher": "centernet"})  # 5 px everywhere
    t = compare_label_sets(path, "a", "b", threshold=0.9)
    vis = np.ones(K, bool)
    vis[[3, 4]] = False
    want = expected_oks(5.0, BOX_W * BOX_H, vis)
    assert 0.5 < want < 0.99
    np.testing.assert_allclose(t["oks"], want, rtol=1e-6)
    np.testing.assert_allclose(t["mean_dist_px"], 5.0, rtol=1e-6)
    d = np.stack(t["joint_dist_px"].to_list())
    assert np.isnan(d[:, [3, 4]]).all()
    np.testing.assert_allclose(d[:, vis], 5.0, rtol=1e-5)
    s = t.attrs["summary"]
    assert s["per_joint_median_dist_px"]["nose"] == pytest.approx(5.0)
    assert s["per_joint_median_dist_px"]["left_ear"] is None
    assert s["fraction_below_threshold"] == (1.0 if want < 0.9 else 0.0)
    # larger offsets -> lower OKS, monotonically
    write_labels(path, "c", shifted(base, 6.0, 8.0), {"teacher": "centernet"})
    t2 = compare_label_sets(path, "a", "c")
    np.testing.assert_allclose(t2["oks"], expected_oks(10.0, BOX_W * BOX_H, vis), rtol=1e-6)
    assert (t2["oks"] < t["oks"]).all()


def test_matching_is_by_pose_not_order(root) -> None:
    path, base = root
    b = base.copy()
    two = (b["frame_index"] == 4) & b["has_person"]
    b.loc[two, "person_index"] = 1 - b.loc[two, "person_index"]  # swap the indices of the two persons
    write_labels(path, "b", b, {})
    t = compare_label_sets(path, "a", "b")
    m = t[t["frame_index"] == 4]
    assert len(m) == 4 and (m["person_index_a"] == 1 - m["person_index_b"]).all()
    np.testing.assert_allclose(m["oks"], 1.0)


def test_unmatched_persons_are_listed(root) -> None:
    path, base = root
    b = base[~((base["video_id"] == "vidA") & (base["frame_index"] == 4) & (base["person_index"] == 1))]
    b = b.copy()
    # a person in B where A has nobody
    extra = _row(
        "vidB", 5, 0, np.asarray(base["keypoints"][0]).reshape(K, 3), np.full(K, 2), (50, 40, BOX_W, BOX_H)
    )
    b = pd.concat([b[~((b["video_id"] == "vidB") & (b["frame_index"] == 5))], pd.DataFrame([extra])])
    write_labels(path, "b", b, {})
    t = compare_label_sets(path, "a", "b")
    only_a = t[t["status"] == "only_a"]
    only_b = t[t["status"] == "only_b"]
    assert list(zip(only_a["video_id"], only_a["frame_index"], only_a["person_index_a"], strict=True)) == [
        ("vidA", 4, 1)
    ]
    assert list(zip(only_b["video_id"], only_b["frame_index"], only_b["person_index_b"], strict=True)) == [
        ("vidB", 5, 0)
    ]
    assert only_a["oks"].isna().all() and only_a["person_index_b"].isna().all()


def test_merge_keeps_agreeing_frames_and_flags_the_rest(root) -> None:
    path, base = root
    bad = lambda r: r["video_id"] == "vidA" and r["frame_index"] == 2  # noqa: E731
    b = shifted(base, 40.0, 0.0, where=bad)  # far off: OKS ~ 0 (kept apart by box IoU = 1)
    b = b[~((b["video_id"] == "vidB") & (b["frame_index"] == 4) & (b["person_index"] == 1))]  # only_a
    b = b[~((b["video_id"] == "vidB") & (b["frame_index"] == 0))]  # frame absent from B
    write_labels(path, "b", b, {"teacher": "centernet"})
    ms = merge_label_sets(path, "a", "b", "agreed", threshold=0.8)
    assert (ms.frames, ms.frames_disagree, ms.frames_not_compared, ms.frames_agree) == (12, 2, 1, 9)
    m = read_labels(path, "agreed")
    assert len(m) == len(base)  # disagreeing frames kept, flagged
    for _, r in m.iterrows():
        key = (r["video_id"], int(r["frame_index"]))
        flags = set(r["qa_flags"])
        if key in {("vidA", 2), ("vidB", 4)}:
            assert flags == {DISAGREE_FLAG}, key
        elif key == ("vidB", 0):
            assert flags == {NOT_COMPARED_FLAG}
        else:
            assert not flags, key
    for ka, km in zip(base["keypoints"], m["keypoints"], strict=True):  # A's poses, unchanged
        np.testing.assert_allclose(np.asarray(km), np.asarray(ka))
    meta = read_label_meta(path, "agreed")
    assert meta["merge"]["threshold"] == 0.8 and meta["merge"]["sources"] == ["a", "b"]
    # dropping instead of flagging
    ms2 = merge_label_sets(path, "a", "b", "strict", threshold=0.8, keep_disagreeing=False)
    s = read_labels(path, "strict")
    assert ms2.rows == len(s) == len(base) - 1 - 2  # vidA frame 2 (1 row), vidB frame 4 (2 rows)
    assert not any(DISAGREE_FLAG in f for f in s["qa_flags"])


def test_merge_keeps_a_keypoints_or_averages(root) -> None:
    path, base = root
    write_labels(path, "b", shifted(base, 0.5, -0.5), {"teacher": "centernet"})
    merge_label_sets(path, "a", "b", "from_a", threshold=0.5)
    m = read_labels(path, "from_a")
    for ka, km in zip(base["keypoints"], m["keypoints"], strict=True):
        np.testing.assert_allclose(np.asarray(km), np.asarray(ka))
    merge_label_sets(path, "a", "b", "avg", threshold=0.5, keypoints="average")
    m = read_labels(path, "avg")
    person = m["has_person"].to_numpy(bool)
    ka = np.stack([np.asarray(k).reshape(K, 3) for k in base["keypoints"][person]])
    km = np.stack([np.asarray(k).reshape(K, 3) for k in m["keypoints"][person]])
    vis = np.ones(K, bool)
    vis[[3, 4]] = False
    np.testing.assert_allclose(km[:, vis, 0], ka[:, vis, 0] + 0.25, rtol=1e-6)  # equal confidences: midpoint
    np.testing.assert_allclose(km[:, vis, 1], ka[:, vis, 1] - 0.25, rtol=1e-6)
    np.testing.assert_allclose(km[:, ~vis], ka[:, ~vis])  # invisible on both sides: A unchanged
    assert set(m["teacher"][person]) == {"mediapipe+centernet"}


def test_bad_input(root) -> None:
    from gaitdata.errors import GaitdataError

    path, base = root
    with pytest.raises(GaitdataError, match="not found"):
        compare_label_sets(path, "a", "missing")
    write_labels(path, "b", base, {})
    with pytest.raises(GaitdataError, match="new name"):
        merge_label_sets(path, "a", "b", "a")
    with pytest.raises(ValueError, match="threshold"):
        merge_label_sets(path, "a", "b", "m", threshold=1.5)
    other = base.assign(video_id=base["video_id"] + "_elsewhere")
    write_labels(path, "c", other, {})
    with pytest.raises(GaitdataError, match="share no frame"):
        compare_label_sets(path, "a", "c")


def test_pure_helpers() -> None:
    iou = iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 10, 10], [20, 20, 5, 5]]))
    np.testing.assert_allclose(iou, [[50 / 150, 0.0]])
    oks = np.array([[0.9, 0.95], [0.2, 0.85]])
    assert greedy_match(oks, np.zeros_like(oks)) == [(0, 1), (1, 0)]
    assert greedy_match(np.array([[0.05]]), np.array([[0.0]])) == []


def test_cli(root) -> None:
    from gaitdata.cli import main

    path, base = root
    write_labels(path, "b", shifted(base, 3.0, 4.0), {})
    main(["compare-labels", str(path), "a", "b", "--merge", "ab", "--threshold", "0.99", "--quiet"])
    assert agreement_path(path, "a", "b").is_file()
    m = read_labels(path, "ab")
    assert all(DISAGREE_FLAG in f for f in m["qa_flags"][m["has_person"].to_numpy(bool)])
    assert read_label_meta(path, "ab")["merge"]["threshold"] == 0.99


def test_frame_agreement_and_pck(root) -> None:
    from pseudolabel.agreement import frame_agreement

    path, base = root
    bad = lambda r: r["video_id"] == "vidA" and r["frame_index"] == 1  # noqa: E731
    write_labels(path, "b", shifted(base, 25.0, 0.0, where=bad), {})  # 25 px > 0.1 x 200 px box height
    t = compare_label_sets(path, "a", "b")
    pck = t.set_index(["video_id", "frame_index"])["pck_0.1"]
    assert pck.loc[("vidA", 1)] == 0.0 and (pck.drop(("vidA", 1)) == 1.0).all()
    fa = frame_agreement(t, 0.8)
    assert len(fa) == 2 * 5  # frames without anybody on both sides are left out
    assert set(fa[~fa["agree"]].frame_index) == {1} and set(fa[~fa["agree"]].video_id) == {"vidA"}
    assert (fa["matched"] == np.where(fa["frame_index"] == 4, 2, 1)).all()


def test_agreement_reads_the_keypoint_count_and_sigmas_from_the_root(tmp_path) -> None:
    five = KeypointSchema("five", ("a", "b", "c", "d", "e"), ((0, 1),), ((1, 2),), (0.05, 0.05, 0.1, 0.1, 0.1))
    DatasetRoot(tmp_path).init(five)
    kp = np.c_[np.linspace(60, 100, 5), np.linspace(50, 220, 5), np.full(5, 0.9)]
    box = (50.0, 40.0, BOX_W, BOX_H)
    a = pd.DataFrame([_row("v", fi, 0, kp, np.full(5, 2), box) for fi in range(3)])
    write_labels(tmp_path, "a", a, {})
    write_labels(tmp_path, "b", shifted(a, 3.0, 4.0), {})  # 5 px on every joint
    t = compare_label_sets(tmp_path, "a", "b", write=False)
    assert (t["status"] == "matched").all() and len(t) == 3
    np.testing.assert_allclose(np.stack(t["joint_dist_px"].to_numpy()), 5.0)
    area = BOX_W * BOX_H
    expected = np.mean(np.exp(-25.0 / (2 * area * (2 * np.asarray(five.sigmas)) ** 2)))
    np.testing.assert_allclose(t["oks"], expected)
    assert set(t.attrs["summary"]["per_joint_median_dist_px"]) == set(five.keypoints)
