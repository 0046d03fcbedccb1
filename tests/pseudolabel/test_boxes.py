"""Person-box proposals: depth background model, AlphaPose detection JSON, label sets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _label_roots import blob_frames, make_root

from gaitdata.errors import GaitdataError
from pseudolabel.boxes import (
    DepthProposer,
    JsonProposer,
    LabelSetProposer,
    background_depth,
    background_positions,
    depth_boxes,
    make_proposer,
    parse_detection_json,
    recording_background,
)


def test_background_positions_are_the_frames_the_recording_background_reads(tmp_path) -> None:
    import pandas as pd

    frames = pd.DataFrame({"frame_index": np.arange(200), "depth_path": [None if i % 4 == 1 else f"d/{i}.png" for i in range(200)]})
    pos = background_positions(frames)
    with_depth = [i for i in range(200) if i % 4 != 1]
    assert len(pos) == 60 and pos <= set(with_depth) and {with_depth[0], with_depth[-1]} <= pos
    assert background_positions(frames.iloc[:7]) == {0, 2, 3, 4, 6}  # fewer than 60 with depth: all of them
    assert background_positions(frames.assign(depth_path=None)) == set()
    # the runner's running maximum over those frames is the recording's background
    rgbs, depths = blob_frames(30, lambda i: [(10 + 8 * i, 40, 20, 60)])
    root = make_root(tmp_path / "r", {"v": (rgbs, depths)})
    fr = root.read_frames()
    picked = [depths[i] for i in sorted(background_positions(fr, n_frames=7))]
    assert len(picked) == 7
    assert np.array_equal(np.maximum.reduce(picked), recording_background(root, fr, n_frames=7))


def test_background_ignores_holes_and_people() -> None:
    a = np.full((4, 4), 3000, np.uint16)
    b = a.copy()
    b[1, 1] = 1200  # a person passes
    c = a.copy()
    c[2, 2] = 0  # a depth hole
    assert (background_depth([a, b, c], "max") == 3000).all()
    med = background_depth([a, b, c, b], "median")
    assert med[2, 2] == 3000 and med[1, 1] == 2100  # median of 3000, 1200, 3000, 1200
    assert background_depth([np.zeros((2, 2), np.uint16)], "median").max() == 0
    with pytest.raises(ValueError):
        background_depth([a], "mean")


def test_depth_boxes_find_each_person_largest_first() -> None:
    bg = np.full((240, 320), 4000, np.uint16)
    d = bg.copy()
    d[40:220, 50:110] = 1800  # walker 60x180
    d[100:180, 250:280] = 2500  # smaller bystander
    d[5:8, 5:8] = 1000  # speck: ignored
    d[0:240, 300:320] = 3950  # within the noise margin of the wall: not foreground
    boxes = depth_boxes(d, bg, 0.001)
    assert boxes.shape == (2, 5)
    x, y, w, h, s = boxes[0]
    assert x <= 50 and x + w >= 110 and y <= 40 and y + h >= 220 and w < 75 and h < 195
    assert boxes[1, 0] <= 250 and boxes[1, 0] + boxes[1, 2] >= 280
    assert s > boxes[1, 4]


def test_depth_proposer_per_recording(tmp_path) -> None:
    rgb, dep = blob_frames(8, lambda i: [(10 + 20 * i, 40, 40, 150)])
    root = make_root(tmp_path / "r", {"s1_walk": (rgb, dep)})
    prop = DepthProposer()
    prop.begin(root, root.read_videos().iloc[0], root.read_frames())
    assert prop.background is not None and int(prop.background.max()) == 3000
    boxes = prop.propose(3, rgb[3], dep[3])
    assert len(boxes) == 1
    assert boxes[0, 0] == pytest.approx(70, abs=6) and boxes[0, 3] == pytest.approx(150, abs=12)
    assert prop.propose(3, rgb[3], None).shape == (0, 5)


def _two_video_root(tmp_path):
    rgb, dep = blob_frames(3, lambda i: [(10, 40, 40, 150)])
    return make_root(tmp_path / "r", {"a": (rgb, dep), "b": (rgb, None)})


def test_alphapose_json_image_ids(tmp_path) -> None:
    root = _two_video_root(tmp_path)
    items = [
        {"image_id": "frames/a/rgb/000001.jpg", "category_id": 1, "bbox": [1, 2, 30, 60], "score": 0.5},
        {"image_id": "frames/a/rgb/000001.jpg", "category_id": 1, "bbox": [5, 5, 40, 90], "score": 0.9},
        {"image_id": "/elsewhere/b/rgb/000002.jpg", "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.7},
        {"image_id": "b/000000.jpg", "category_id": 1, "bbox": [3, 3, 10, 10], "score": 0.6},
        {"image_id": "frames/a/rgb/000000.jpg", "category_id": 3, "bbox": [0, 0, 5, 5], "score": 1.0},
    ]
    f = tmp_path / "det.json"
    f.write_text(json.dumps(items))
    boxes = parse_detection_json(f, root)
    assert sorted(boxes) == [("a", 1), ("b", 0), ("b", 2)]
    assert boxes[("a", 1)][:, 4].tolist() == [0.9, 0.5]  # best first
    prop = make_proposer(f"json:{f}")
    assert isinstance(prop, JsonProposer)
    prop.begin(root, root.read_videos().iloc[0], root.read_frames())
    assert prop.propose(1, None, None)[0, :4].tolist() == [5, 5, 40, 90]
    assert prop.propose(0, None, None).shape == (0, 5)  # the non-person detection is ignored


def test_alphapose_json_errors(tmp_path) -> None:
    root = _two_video_root(tmp_path)
    f = tmp_path / "det.json"
    f.write_text(json.dumps([{"image_id": 4, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]))
    with pytest.raises(GaitdataError, match="match(es)? no extracted frame"):  # ints are ambiguous with 2 videos
        parse_detection_json(f, root)
    f.write_text("{not json")
    with pytest.raises(GaitdataError, match="not valid JSON"):
        parse_detection_json(f, root)
    with pytest.raises(FileNotFoundError):
        parse_detection_json(tmp_path / "missing.json", root)
    # a single recording: bare frame numbers and integer ids are unambiguous
    rgb, dep = blob_frames(3, lambda i: [(10, 40, 40, 150)])
    one = make_root(tmp_path / "one", {"only": (rgb, dep)})
    f.write_text(json.dumps([{"image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1},
                             {"image_id": "000001.jpg", "category_id": 1, "bbox": [0, 0, 2, 2], "score": 1}]))
    assert sorted(parse_detection_json(f, one)) == [("only", 1), ("only", 2)]


def test_label_set_proposer_and_unknown_spec(tmp_path) -> None:
    from pseudolabel.runner import label

    rgb, dep = blob_frames(4, lambda i: [(10, 40, 40, 150), (200, 50, 30, 100)])
    root = make_root(tmp_path / "r", {"v": (rgb, dep)})
    label(root.path, teacher="test_blob", progress=False)
    prop = make_proposer("labels:test_blob")
    assert isinstance(prop, LabelSetProposer)
    prop.begin(root, root.read_videos().iloc[0], root.read_frames())
    b = prop.propose(2, None, None)
    assert b.shape == (2, 5) and sorted(b[:, 0].tolist()) == [10, 200]
    with pytest.raises(GaitdataError, match="unknown box source"):
        make_proposer("yolo")
