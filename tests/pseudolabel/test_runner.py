"""The labelling run: coverage of every frame, metadata, resume, top-down boxes, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _label_roots import blob_frames, make_root
from click.testing import CliRunner

import pseudolabel.runner as runner
from gaitdata.cli import cli
from gaitdata.errors import GaitdataError, MissingDependencyError, require
from gaitdata.labels import read_label_meta, read_labels
from pseudolabel.registry import list_teachers, register_teacher


def _walker(i: int) -> list[tuple[int, int, int, int]]:
    boxes = [(10 + 12 * i, 40, 40, 150)]
    if i % 3 == 0:
        boxes.append((260, 60, 30, 110))  # a bystander in every third frame
    return boxes


def _root(tmp_path, name: str = "r"):
    rgb, dep = blob_frames(10, _walker)
    rgb[7] = 90  # nobody in frame 7
    dep[7] = 3000
    rgb2, _ = blob_frames(6, lambda i: [(100, 30, 50, 180)])
    return make_root(
        tmp_path / name,
        {"s1_walk": (rgb, dep), "s2_walk": (rgb2, None)},
        statuses={"s1_walk": {4: "sampled_out", 9: "decode_error"}},
    )


def test_every_ok_frame_gets_rows_and_metadata(tmp_path) -> None:
    root = _root(tmp_path)
    s = runner.label(root.path, teacher="test_blob", progress=False)
    df = read_labels(root, "test_blob")
    frames = root.read_frames()
    ok = frames[frames.status == "ok"]
    assert set(zip(df.video_id, df.frame_index, strict=True)) == set(zip(ok.video_id, ok.frame_index, strict=True))
    s1 = df[df.video_id == "s1_walk"]
    assert 4 not in s1.frame_index.tolist() and 9 not in s1.frame_index.tolist()
    empty = s1[s1.frame_index == 7]
    assert len(empty) == 1 and not empty.has_person.iloc[0] and empty.person_index.iloc[0] == -1
    f0 = s1[s1.frame_index == 0]
    assert len(f0) == 2 and f0.is_subject.tolist() == [True, False]  # walker first (same score, left)
    assert s.n_frames == len(ok) and s.n_no_person == 1 and s.n_persons == len(df) - 1
    assert s.recordings[0].n_subject == 7 and 0 < s.mean_confidence < 1
    assert (df.teacher == "test_blob").all() and (df.weights_hash == "blob").all()
    meta = read_label_meta(root, "test_blob")
    assert meta["teacher"] == "test_blob" and meta["weights_hash"] == "blob"
    assert meta["vis_thresholds"] == [0.2, 0.5] and meta["postprocess"]["smooth"] is None
    assert meta["tool_version"] and meta["teacher_config"]["license"] == "Apache-2.0"
    assert meta["summary"]["frames_without_person"] == 1
    assert (runner.parts_dir(root, "test_blob") / "s1_walk.parquet").is_file()


def test_resume_after_a_crash_gives_the_same_table(tmp_path, monkeypatch) -> None:
    ref_root = _root(tmp_path, "ref")
    runner.label(ref_root.path, teacher="test_blob", progress=False)
    ref = read_labels(ref_root, "test_blob")

    root = _root(tmp_path, "crash")
    real = runner.collect_recording
    calls: list[str] = []

    def crash_on_second(root_, video, *a, **k):
        calls.append(str(video["video_id"]))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed between recordings
        return real(root_, video, *a, **k)

    monkeypatch.setattr(runner, "collect_recording", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        runner.label(root.path, teacher="test_blob", progress=False)
    parts = runner.parts_dir(root, "test_blob")
    assert sorted(p.name for p in parts.glob("*.parquet")) == ["s1_walk.parquet"]
    assert not root.label_path("test_blob").exists()  # nothing half-way

    monkeypatch.setattr(runner, "collect_recording", real)
    s = runner.label(root.path, teacher="test_blob", progress=False)
    assert [r.resumed for r in s.recordings] == [True, False]
    pd.testing.assert_frame_equal(read_labels(root, "test_blob"), ref)
    again = runner.label(root.path, teacher="test_blob", progress=False)  # all done: identical
    assert again.n_resumed == 2
    pd.testing.assert_frame_equal(read_labels(root, "test_blob"), ref)


def test_changed_settings_need_overwrite(tmp_path) -> None:
    root = _root(tmp_path)
    runner.label(root.path, teacher="test_blob", progress=False)
    with pytest.raises(GaitdataError, match="other settings.*postprocess"):
        runner.label(root.path, teacher="test_blob", progress=False, vis_thresholds=(0.3, 0.6))
    s = runner.label(root.path, teacher="test_blob", progress=False, vis_thresholds=(0.3, 0.6), overwrite=True)
    assert s.n_resumed == 0
    assert read_label_meta(root, "test_blob")["vis_thresholds"] == [0.3, 0.6]


def test_top_down_teacher_gets_depth_boxes(tmp_path) -> None:
    # the default proposals (depth and colour differencing) find people who move during the recording
    rgb, dep = blob_frames(6, lambda i: [(20 + 10 * i, 40, 40, 150), (280 - 12 * i, 60, 30, 110)])
    root = make_root(tmp_path / "r", {"v": (rgb, dep)})
    s = runner.label(root.path, teacher="test_boxed", label_set="boxed", progress=False)
    df = read_labels(root, "boxed")
    assert s.n_persons == 12 and (df.groupby("frame_index").size() == 2).all()
    walker = df[df.bbox_h > 140].sort_values("frame_index")
    assert np.allclose(walker.bbox_x + walker.bbox_w / 2, 40 + 10 * np.arange(6), atol=3)
    assert walker.is_subject.all()
    assert read_label_meta(root, "boxed")["boxes"]["proposer"] == "people"  # the default combines depth, motion, HOG
    # json boxes for the same teacher
    det = tmp_path / "det.json"
    det.write_text(json.dumps([{"image_id": f"frames/v/rgb/{i:06d}.jpg", "category_id": 1,
                                "bbox": [1, 2, 30, 60], "score": 0.9} for i in range(0, 6, 2)]))
    s2 = runner.label(root.path, teacher="test_boxed", label_set="boxed_json", boxes=f"json:{det}", progress=False)
    assert s2.n_persons == 3 and s2.n_no_person == 3
    with pytest.raises(GaitdataError, match="needs person boxes"):
        runner.label(root.path, teacher="test_boxed", label_set="x", boxes="none", progress=False)


def test_bad_input_writes_nothing(tmp_path) -> None:
    with pytest.raises(GaitdataError, match="not a gaitdata dataset root"):
        runner.label(tmp_path / "nothing", teacher="test_blob", progress=False)
    empty = make_root(tmp_path / "empty", {})
    with pytest.raises(GaitdataError, match="no extracted frames"):
        runner.label(empty.path, teacher="test_blob", progress=False)
    root = _root(tmp_path)
    (root.path / root.rgb_relpath("s2_walk", 3)).unlink()
    with pytest.raises(GaitdataError, match="missing on disk.*s2_walk/rgb/000003.jpg"):
        runner.label(root.path, teacher="test_blob", progress=False)
    assert not root.labels_dir.exists()

    root = _root(tmp_path, "r2")
    with pytest.raises(GaitdataError, match="unknown teacher 'nope'"):
        runner.label(root.path, teacher="nope", progress=False)
    if "test_needs_extra" not in list_teachers():
        register_teacher("test_needs_extra", lambda **_: require("gaitdata_absent_module", "teachers"))
    with pytest.raises(MissingDependencyError, match=r"pip install 'gaitdata\[teachers\]'"):
        runner.label(root.path, teacher="test_needs_extra", progress=False)
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        with pytest.raises(GaitdataError, match="CUDA is not available"):
            runner.label(root.path, teacher="test_blob", device="cuda", progress=False)
    with pytest.raises(GaitdataError, match="device must be"):
        runner.label(root.path, teacher="test_blob", device="tpu", progress=False)
    assert not root.labels_dir.exists()


def test_frame_iterator_keeps_order_with_threads(tmp_path) -> None:
    rgb, dep = blob_frames(9, lambda i: [(10 + 20 * i, 40, 20, 60)])
    root = make_root(tmp_path / "r", {"v": (rgb, dep)})
    frames = root.read_frames()
    got = list(runner.iter_frames(root, frames, want_depth=True, workers=3, prefetch=2))
    assert [g[0] for g in got] == list(range(9))
    for i, img, d in got:
        assert img.shape == (240, 320, 3) and d.dtype == np.uint16
        assert img[70, 10 + 20 * i + 10, 0] > 180 and img[70, 10 + 20 * i + 10, 2] < 80  # the red block of frame i (RGB order)


def test_cli_label_prints_a_summary(tmp_path) -> None:
    root = _root(tmp_path)
    res = CliRunner().invoke(cli, ["label", str(root.path), "--teacher", "test_blob", "--smooth"])
    assert res.exit_code == 0, res.output
    assert "s1_walk" in res.output and "total" in res.output and "wrote" in res.output
    assert read_label_meta(root, "test_blob")["postprocess"]["smooth"] == "one_euro"
