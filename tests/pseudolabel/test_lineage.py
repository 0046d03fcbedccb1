"""Lineage: labels, splits, exports and models know what they were made from, and say when it changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from _label_roots import blob_frames, make_root
from click.testing import CliRunner

import splits
from gaitdata.cli import cli
from gaitdata.coco import export_coco
from gaitdata.dataset import DatasetRoot
from gaitdata.labels import read_label_meta, read_labels
from gaitdata.staleness import STALE, UNKNOWN, LineageChecker, StaleInputError, check_root
from pseudolabel import runner

REPO = Path(__file__).resolve().parents[2]


def _invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _image_recordings(src: Path, n: int = 6) -> None:
    """Two image-folder recordings of a red 'person' walking right, 320x240."""
    for s in ("s1", "s2"):
        rgb, _ = blob_frames(n, lambda i: [(150 + 10 * i, 40, 60, 150)], size=(240, 320))
        folder = src / s / "walk"
        folder.mkdir(parents=True, exist_ok=True)
        for i, im in enumerate(rgb):
            cv2.imwrite(str(folder / f"{i:06d}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))


def _max_x(root, name: str = "test_blob") -> float:
    df = read_labels(root, name)
    return max(float(np.max(np.asarray(k)[0::3])) for k in df["keypoints"] if k is not None)


def test_reextract_with_resize_makes_labels_split_and_export_stale(tmp_path):
    src, root = tmp_path / "src", tmp_path / "root"
    _image_recordings(src)
    assert _invoke("extract", src, "--out", root, "-q", "--workers", "1").exit_code == 0
    assert _invoke("label", root, "--teacher", "test_blob", "-q").exit_code == 0
    assert _max_x(root) > 200  # joints of the 320-px frames
    splits.make_split(root, by="video", fractions=(0.5, 0.5), near_duplicates=False)
    files = export_coco(root, "test_blob", "default")
    res = _invoke("validate", root)
    assert res.exit_code == 0 and "valid" in res.output

    # the same source and options again: the same frames, nothing is stale
    assert _invoke("extract", src, "--out", root, "-q", "--workers", "1", "--overwrite").exit_code == 0
    assert _invoke("validate", root).exit_code == 0

    assert _invoke("extract", src, "--out", root, "-q", "--workers", "1", "--overwrite", "--resize", "160x-1").exit_code == 0
    res = _invoke("validate", root)
    assert res.exit_code == 1
    out = res.output
    assert "stale: label set 'test_blob' is stale: frames of 2 recording(s) changed" in out
    assert f"refresh: gaitdata label {DatasetRoot(root).path} --teacher test_blob --label-set test_blob" in out
    assert "stale: split 'default' is stale" in out and "stale: export 'exports/coco/train.json'" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("stale:")]
    assert [ln.split()[1] for ln in lines] == ["label", "split", "export", "export"]  # upstream first

    with pytest.raises(StaleInputError, match=r"export refused: label set 'test_blob' is stale .*gaitdata label"):
        export_coco(root, "test_blob", "default")
    assert json.loads(files["train"].read_text())["info"]["lineage"]["label_set"]["name"] == "test_blob"

    s = runner.label(root, teacher="test_blob", progress=False)  # the rerun relabels the changed recordings
    assert sorted(s.relabelled) == ["s1__walk", "s2__walk"] and s.n_resumed == 0
    assert _max_x(root) <= 160
    assert runner.label(root, teacher="test_blob", progress=False).n_resumed == 2  # nothing changed since

    states = {(x.kind, x.name): x for x in check_root(root)}
    assert states["label set", "test_blob"].state == "fresh"
    assert states["split", "default"].stale  # its recordings' frames changed: make it again
    assert _invoke("split", root, "--by", "video", "--fractions", "0.5,0.5", "--no-near-duplicates").exit_code == 0
    assert states["export", "exports/coco/test.json"].stale
    export_coco(root, "test_blob", "default")
    res = _invoke("validate", root)
    assert res.exit_code == 0, res.output


@pytest.fixture
def trained(tmp_path):
    """A labelled root with a split weighted by the labels, an export and a one-epoch model."""
    pytest.importorskip("torch")
    from gaitdata.student.trainer import train

    vids = {}
    for k in range(4):
        rgb, dep = blob_frames(6, lambda i, k=k: [(40 + 8 * i + 10 * k, 30, 50, 160)], size=(240, 320))
        vids[f"s{k}_walk"] = (rgb, dep)
    root = make_root(tmp_path / "r", vids)
    runner.label(root, teacher="test_blob", progress=False)
    splits.make_split(root, by="video", labels="test_blob", fractions=(0.5, 0.25, 0.25), near_duplicates=False)
    export_coco(root, "test_blob", "default")
    tiny = {"input_size": (64, 48), "width_mult": 0.25, "head_channels": (32,)}
    run = train(root.path, model="fastpose_res10_w025", epochs=1, out=root.path / "models" / "tiny",
                batch_size=8, model_kwargs=tiny, flip_prob=0.0)  # fmt: skip
    return root, run


def test_relabel_makes_split_export_and_model_stale_and_they_are_refused(trained):
    root, run = trained
    cfg = json.loads((run / "config.json").read_text())
    assert set(cfg["lineage"]["files"]) == {"train.json", "val.json"}
    assert all(s.state == "fresh" for s in check_root(root))

    runner.label(root, teacher="test_blob", progress=False, vis_thresholds=(0.5, 0.9), overwrite=True)
    states = {(s.kind, s.name): s for s in check_root(root)}
    assert states["label set", "test_blob"].state == "fresh"
    split = states["split", "default"]
    assert split.stale and "label set 'test_blob' changed since the split was made" in split.changes
    train_state = states["export", "exports/coco/train.json"]
    assert train_state.stale and train_state.cause() is split
    model = states["model", "models/tiny"]
    assert model.stale and model.changes == () and model.cause() is split

    with pytest.raises(StaleInputError, match=r"^export refused: split 'default' is stale .*gaitdata split .*--labels test_blob"):
        export_coco(root, "test_blob", "default")
    from gaitdata.student.evaluation import evaluate
    from gaitdata.student.trainer import train

    with pytest.raises(StaleInputError, match=r"^train refused: split 'default' is stale"):
        train(root.path, model="fastpose_res10_w025", epochs=1, out=run, overwrite=True)
    with pytest.raises(StaleInputError, match=r"^evaluate refused: split 'default' is stale"):
        evaluate(root.path, run, latency=False, make_variants=False)
    res = _invoke("validate", root.path)
    stale = [ln for ln in res.output.splitlines() if ln.startswith("stale:")]
    assert res.exit_code == 1 and len(stale) == 5  # the split, train/val/test.json, the model

    # refresh in order: the split, the export; the model then says its export files changed
    splits.make_split(root, by="video", labels="test_blob", fractions=(0.5, 0.25, 0.25), near_duplicates=False)
    export_coco(root, "test_blob", "default")
    model = LineageChecker(root).model(run)
    assert model.stale and any("train.json was written again since training" in c for c in model.changes)
    assert "--overwrite" in model.refresh
    with pytest.raises(StaleInputError, match="evaluate refused: model 'models/tiny' is stale"):
        evaluate(root.path, run, latency=False, make_variants=False)
    with pytest.raises(StaleInputError, match="other export files.*--overwrite"):
        train(root.path, model="fastpose_res10_w025", epochs=1, out=run)  # continuing it would mix datasets


def test_a_killed_label_run_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    rgb, dep = blob_frames(4, lambda i: [(40 + 5 * i, 30, 50, 160)])
    root = make_root(tmp_path / "r", {"a_walk": (rgb, dep), "b_walk": (rgb, dep)})
    clean = make_root(tmp_path / "clean", {"a_walk": (rgb, dep), "b_walk": (rgb, dep)})
    runner.label(clean, teacher="test_blob", progress=False)
    parts = runner.parts_dir(root, "test_blob")
    # the child stalls inside the atomic rename of its first part, so it is killed with the
    # temporary file on disk, as a kill -9 at that moment would leave it
    child = (
        "import os, time, _label_roots\n"
        "real = os.replace\n"
        "def stall(src, dst, *a, **k):\n"
        "    if str(dst).endswith('_walk.parquet'):\n"
        "        time.sleep(120)\n"
        "    return real(src, dst, *a, **k)\n"
        "os.replace = stall\n"
        "from gaitdata.cli import main\n"
        f"main(['label', {str(root.path)!r}, '--teacher', 'test_blob', '-q'])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "pseudolabel"), str(REPO)])}
    proc = subprocess.Popen([sys.executable, "-c", child], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None and not list(parts.glob(".*.tmp")):
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    left = list(parts.glob(".*.tmp"))
    assert len(left) == 1 and not list(parts.glob("*.parquet"))

    s = runner.label(root, teacher="test_blob", progress=False)
    assert s.n_resumed == 0
    assert not list(parts.glob("*.tmp")) and not list(root.labels_dir.iterdir())[0].name.endswith(".tmp")
    pd.testing.assert_frame_equal(read_labels(root, "test_blob"), read_labels(clean, "test_blob"))


def test_artefacts_without_lineage_are_unknown_not_fatal(tmp_path):
    rgb, dep = blob_frames(4, lambda i: [(40, 30, 50, 160)])
    root = make_root(tmp_path / "r", {"a_walk": (rgb, dep), "b_walk": (rgb, dep)})
    runner.label(root, teacher="test_blob", progress=False)
    splits.make_split(root, by="video", fractions=(0.5, 0.5), near_duplicates=False)
    export_coco(root, "test_blob", "default")
    # as written by an earlier gaitdata: no lineage anywhere
    import pyarrow.parquet as pq

    from gaitdata.labels import META_KEY

    path = root.label_path("test_blob")
    table = pq.read_table(path)
    meta = read_label_meta(root, "test_blob")
    del meta["lineage"]
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}), path)
    sp = root.splits_dir / "default.json"
    d = json.loads(sp.read_text())
    del d["inputs"]["lineage"]
    sp.write_text(json.dumps(d))
    for f in (root.exports_dir / "coco").glob("*.json"):
        d = json.loads(f.read_text())
        del d["info"]["lineage"]
        f.write_text(json.dumps(d))

    states = check_root(root)
    assert len(states) == 4 and all(s.state == UNKNOWN for s in states)
    res = _invoke("validate", root.path)
    assert res.exit_code == 0 and res.output.count("unknown lineage") == 4
    assert "label set 'test_blob': unknown lineage" in res.output
    export_coco(root, "test_blob", "default", out=tmp_path / "again")  # unknown is not refused
    assert not [s for s in check_root(root) if s.state == STALE]


def test_frame_fingerprint_follows_exactly_what_the_frames_were_made_from():
    from gaitdata.lineage import frame_fingerprints

    frames = pd.DataFrame({
        "video_id": ["a"] * 3 + ["b"] * 2, "frame_index": [0, 1, 2, 0, 1],
        "status": ["ok", "sampled_out", "ok", "ok", "ok"],
        "rgb_path": ["a/0.jpg", None, "a/2.jpg", "b/0.jpg", "b/1.jpg"], "depth_path": [None] * 5,
        "colour_ts_ms": [0.0, 33.3, 66.7, 0.0, 33.3], "depth_ts_ms": [np.nan] * 5,
    }).astype({"frame_index": "Int64", "status": "string", "rgb_path": "string", "depth_path": "string"})  # fmt: skip
    videos = pd.DataFrame({"video_id": ["a", "b"], "fingerprint": ["10-x", "20-y"], "options": ['{"resize": null}'] * 2})
    fp = frame_fingerprints(videos, frames)
    assert fp == frame_fingerprints(videos, frames.iloc[::-1])  # row order of the table does not matter
    assert frame_fingerprints(videos, frames, ["b"]) == {"b": fp["b"]}
    for col, value in (("status", "decode_error"), ("colour_ts_ms", 33.4), ("rgb_path", "a/1.jpg")):
        changed = frames.copy()
        changed.loc[1, col] = value
        new = frame_fingerprints(videos, changed)
        assert new["a"] != fp["a"] and new["b"] == fp["b"], col
    resized = videos.assign(options=['{"resize": [160, -1]}', '{"resize": null}'])
    assert frame_fingerprints(resized, frames)["a"] != fp["a"]
    other_source = videos.assign(fingerprint=["10-x", "21-z"])
    assert frame_fingerprints(other_source, frames)["b"] != fp["b"]


def test_a_label_set_from_another_copy_keeps_the_frames_it_was_made_from(tmp_path):
    import shutil

    from pseudolabel.importers.labelset import import_label_set

    rgb, dep = blob_frames(4, lambda i: [(40 + 5 * i, 30, 50, 160)])
    root = make_root(tmp_path / "r", {"a_walk": (rgb, dep), "b_walk": (rgb, dep)})
    same, other = tmp_path / "same", tmp_path / "other"
    shutil.copytree(root.path, same)
    shutil.copytree(root.path, other)
    o = DatasetRoot(other)  # extracted there with other options: the same frame keys, other frames
    o.write_videos(o.read_videos().assign(options=['{"resize": [160, -1]}', None]))
    for src, name in ((same, "same"), (other, "other")):
        runner.label(src, teacher="test_blob", label_set=name, progress=False)
        import_label_set(Path(src) / "labels" / f"{name}.parquet", root.path)
    checker = LineageChecker(root)
    assert checker.label_set("same").state == "fresh"
    st = checker.label_set("other")
    assert st.stale and st.changes == ("frames of 1 recording(s) changed since it was labelled (a_walk)",)
    assert st.refresh.startswith("gaitdata import labels ") and st.refresh.endswith("--label-set other --overwrite")
