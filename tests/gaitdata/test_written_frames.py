"""Frames written without depth (status ``no_depth``) go through every stage like ``ok`` frames."""

from __future__ import annotations

import json

import _cli_driver  # noqa: F401  (registers the test_fixed teacher)
import numpy as np
import pandas as pd
import pytest

import splits
from gaitdata.coco import export_coco
from gaitdata.containers import write
from gaitdata.dataset import DatasetRoot, written_frames
from gaitdata.extract import ExtractOptions, extract
from gaitdata.imagenames import FrameMap
from gaitdata.labels import read_labels
from gaitdata.testing.recordings import plane_recording
from pseudolabel.runner import label

N = 6


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """``apart``: colour and depth 10 s apart (every frame ``no_depth``); ``both``: ordinary RGB-D."""
    src = tmp_path_factory.mktemp("in")
    write(plane_recording(n=N, offset_ms=10_000.0), src / "apart.bag", "bag")
    write(plane_recording(n=N, seed=1), src / "both.bag", "bag")
    root = tmp_path_factory.mktemp("root")
    assert extract([src], root, ExtractOptions(workers=1, reader="python"), progress=False).ok
    return DatasetRoot(root)


def test_written_frames_are_ok_and_no_depth(root) -> None:
    frames = root.read_frames()
    status = frames.groupby("video_id")["status"].agg(lambda s: sorted(set(s)))
    assert status.to_dict() == {"apart": ["no_depth"], "both": ["ok"]}
    w = written_frames(frames)
    assert len(w) == 2 * N and w["depth_path"].isna().sum() == N
    mixed = frames.assign(status=["sampled_out", *frames["status"].iloc[1:]])  # a frame not written is left out
    assert len(written_frames(mixed)) == 2 * N - 1
    assert sorted(FrameMap(root).videos) == ["apart", "both"]


@pytest.mark.parametrize("boxes", ["auto", "depth"])
def test_frames_without_depth_are_labelled_split_and_exported(root, boxes, tmp_path) -> None:
    name = f"fixed_{boxes}"
    s = label(root.path, teacher="test_fixed", label_set=name, boxes=boxes, progress=False)
    assert {r.video_id: r.n_frames for r in s.recordings} == {"apart": N, "both": N}
    lab = read_labels(root, name)
    per_video = lab[lab["has_person"]].groupby("video_id")["frame_index"].nunique().to_dict()
    assert per_video == {"apart": N, "both": N}  # one person in every frame, depth or not
    apart = lab[lab["video_id"] == "apart"]
    assert apart["keypoints"].map(lambda k: np.isfinite(np.asarray(k, float)).all()).all()

    sp = splits.make_split(root.path, by="video", fractions=(0.5, 0.5), name=name, labels=name)
    assert {p: sp.counts[p]["frames"] for p in sp.part_names} == {
        sp.part_of_video("apart"): N, sp.part_of_video("both"): N}  # fmt: skip
    assert {p: sp.counts[p]["labelled_persons"] for p in sp.part_names} == {p: N for p in sp.part_names}

    out = export_coco(root.path, name, name, out=tmp_path / "coco")
    images = {}
    for part, path in out.items():
        d = json.loads(path.read_text())
        images[part] = pd.DataFrame(d["images"])
        assert len(d["annotations"]) == N
    part = sp.part_of_video("apart")
    assert sorted(images[part]["video_id"]) == ["apart"] * N
    assert all((root.path / f).is_file() for f in images[part]["file_name"])
