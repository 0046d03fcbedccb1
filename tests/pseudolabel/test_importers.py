"""AlphaPose's own results files imported as label sets and used as person boxes; label sets made on
another machine brought back."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _label_roots import BLOB_LAYOUT, blob_frames, make_root

from gaitdata.cli import main
from gaitdata.coco import export_coco
from gaitdata.errors import GaitdataError
from gaitdata.labels import read_label_meta, read_labels
from pseudolabel import runner
from pseudolabel.boxes import make_proposer
from pseudolabel.importers.alphapose import import_alphapose
from pseudolabel.importers.labelset import import_label_set
from pseudolabel.postprocess import visibility_from_confidence

N_FRAMES = 8
EMPTY = {"s01_walk": {2, 5}, "s02_walk": {6}}  # frames where AlphaPose finds nobody
PEOPLE = {"s01_walk": 1, "s02_walk": 3}  # persons per frame otherwise (s02: 2 on odd frames)


def _root(tmp_path: Path):
    a = blob_frames(N_FRAMES, lambda i: [(20 + 8 * i, 40, 40, 150)])
    b = blob_frames(N_FRAMES, lambda i: [(10, 30, 30, 120), (150, 40, 30, 110), (250, 60, 25, 90)])
    return make_root(tmp_path / "root", {"s01_walk": a, "s02_walk": (b[0], None)})


def _people(vid: str, i: int, rng: np.random.Generator) -> list[dict]:
    """Persons as AlphaPose's writer holds them: float32 keypoints/scores, proposal score, box, idx."""
    if i in EMPTY[vid]:
        return []
    n = PEOPLE[vid] if vid == "s01_walk" or i % 2 == 0 else 2
    out = []
    for p in range(n):
        x, y, w, h = (20 + 8 * i, 40, 40, 150) if vid == "s01_walk" else [(10, 30, 30, 120), (150, 40, 30, 110), (250, 60, 25, 90)][p]
        kp = np.zeros((17, 3), np.float32)
        kp[:, 0] = x + BLOB_LAYOUT[:, 0] * w + rng.normal(0, 1.5, 17)
        kp[:, 1] = y + BLOB_LAYOUT[:, 1] * h + rng.normal(0, 1.5, 17)
        kp[:, 2] = rng.uniform(0.05, 1.08, 17)  # heatmap peaks: a few above 1
        s = np.float32(rng.uniform(0.3, 1.0))  # the detector's box score
        c = kp[:, 2]
        score = np.float32(c.mean() + s + np.float32(1.25) * c.max())  # AlphaPose's proposal score
        out.append({"kp": kp, "s": float(s), "score": float(score), "box": [float(x) - 3.5, float(y) - 4.0, float(w) + 7.0, float(h) + 8.0]})
    return out


def write_results(path: Path, persons: dict[str, list[dict]], *, box: bool = True, ids: str = "name", track: bool = False) -> None:
    """``alphapose-results.json`` as AlphaPose's write_json produces it (json.dumps of a list)."""
    items = []
    for name, people in persons.items():
        for k, p in enumerate(people):
            image_id: str | int = name
            if ids == "eval":
                image_id = int(name.split(".")[0].split("_")[-1])
            elif ids == "video":
                image_id = f"{int(name.split('.')[0])}.jpg"
            kps = []
            for n in range(17):
                kps += [float(p["kp"][n, 0]), float(p["kp"][n, 1]), float(p["kp"][n, 2])]
            r = {"image_id": image_id, "category_id": 1, "keypoints": kps, "score": p["score"]}
            if box:
                r["box"] = p["box"]
            r["idx"] = k if track else [[float(k)]]
            items.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items))


def _results_folder(tmp_path: Path, seed: int = 0) -> tuple[Path, dict]:
    rng = np.random.default_rng(seed)
    truth = {vid: {f"{i:06d}.jpg": _people(vid, i, rng) for i in range(N_FRAMES)} for vid in PEOPLE}
    out = tmp_path / "ap_out"
    for vid, persons in truth.items():  # AlphaPose run with --outdir ap_out/<video_id>
        write_results(out / vid / "alphapose-results.json", {k: v for k, v in persons.items() if v})
    return out, truth


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    """The command line in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        main(args)
        rc = 0
    except SystemExit as exc:
        rc = int(exc.code or 0)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# ---- the label set ------------------------------------------------------------------------------
def test_results_folder_imports_exactly(tmp_path) -> None:
    root = _root(tmp_path)
    out, truth = _results_folder(tmp_path)
    s = import_alphapose(out, root.path, "ap")
    df = read_labels(root, "ap")
    # every frame of both recordings has rows: persons, or one explicit no-person row
    assert len(df.drop_duplicates(["video_id", "frame_index"])) == 2 * N_FRAMES
    n_persons = sum(len(p) for persons in truth.values() for p in persons.values())
    assert s.n_persons == n_persons == int(df["has_person"].sum())
    assert len(df) == n_persons + sum(len(e) for e in EMPTY.values())
    empty = df[~df["has_person"].astype(bool)]
    assert {(v, int(f)) for v, f in zip(empty.video_id, empty.frame_index, strict=True)} == {
        (v, f) for v, fs in EMPTY.items() for f in fs
    }
    assert (empty.person_index == -1).all()
    for vid, persons in truth.items():
        for name, people in persons.items():
            rows = df[(df.video_id == vid) & (df.frame_index == int(name[:6])) & df.has_person.astype(bool)]
            assert len(rows) == len(people)
            got = {tuple(np.asarray(k).reshape(17, 3)[:, 0]): (k, v, r) for k, v, r in
                   zip(rows.keypoints, rows.visibility, rows.itertuples(), strict=True)}
            for p in people:
                kp, vis, row = got[tuple(float(x) for x in p["kp"][:, 0])]
                kp = np.asarray(kp).reshape(17, 3)
                assert (kp[:, :2] == p["kp"][:, :2].astype(np.float64)).all()  # exactly as written
                conf = np.clip(p["kp"][:, 2].astype(np.float64), 0, 1)
                assert (kp[:, 2] == conf).all()
                assert (np.asarray(vis) == visibility_from_confidence(conf, (0.2, 0.5))).all()
                assert row.raw_score == p["score"] and row.raw_score > 1
                assert row.score == pytest.approx(conf.mean() * p["s"], abs=1e-5)
                assert (row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h) == tuple(p["box"])
            scores = rows.sort_values("person_index").score.to_numpy()
            assert (np.diff(scores) <= 0).all()  # person 0 is the best
    meta = read_label_meta(root, "ap")
    files = meta["source"]["files"]
    assert [f["recording"] for f in files] == ["s01_walk", "s02_walk"]
    for f in files:
        assert f["sha256"] == hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest()
        assert f["variant"] == "results" and f["layout"] == "COCO-17" and f["score_method"] == "detector"
    assert meta["source"]["confidences_clipped"] > 0 and meta["source"]["max_raw_confidence"] > 1
    assert meta["vis_thresholds"] == [0.2, 0.5] and meta["postprocess"]["vis_thresholds"] == [0.2, 0.5]


def test_same_contract_as_a_labelling_run(tmp_path) -> None:
    root = _root(tmp_path)
    out, _ = _results_folder(tmp_path)
    import_alphapose(out, root.path, "ap", vis_thresholds=(0.3, 0.6))
    runner.label(root.path, teacher="test_blob", progress=False)
    ours, theirs = read_labels(root, "ap"), read_labels(root, "test_blob")
    assert list(ours.columns) == list(theirs.columns)
    assert set(read_label_meta(root, "test_blob")) <= set(read_label_meta(root, "ap"))
    person = ours[ours.has_person.astype(bool)]
    assert person.track_id.notna().all() and person.is_subject.notna().all()
    assert person.is_subject.any() and (person.num_visible == [int(np.sum(np.asarray(v) > 0)) for v in person.visibility]).all()
    conf = np.stack([np.asarray(k).reshape(17, 3)[:, 2] for k in person.keypoints])
    vis = np.stack([np.asarray(v) for v in person.visibility])
    assert (vis == visibility_from_confidence(conf, (0.3, 0.6))).all()
    # the toolkit's later stages take it: a COCO export with the no-person frames as bare images
    files = export_coco(root, "ap", None, out=tmp_path / "coco")
    d = json.loads(files["all"].read_text())
    assert len(d["images"]) == 2 * N_FRAMES and len(d["annotations"]) == len(person)
    # a rerun needs --overwrite; with it the table is the same
    with pytest.raises(GaitdataError, match="already exists"):
        import_alphapose(out, root.path, "ap")
    before = read_labels(root, "ap")
    import_alphapose(out, root.path, "ap", vis_thresholds=(0.3, 0.6), overwrite=True)
    pd.testing.assert_frame_equal(before, read_labels(root, "ap"))


def test_single_files_and_image_id_variants(tmp_path) -> None:
    root = _root(tmp_path)
    rng = np.random.default_rng(3)
    persons = {f"{i:06d}.jpg": _people("s01_walk", i, rng) for i in range(N_FRAMES)}
    written = {k: v for k, v in persons.items() if v}
    n = sum(len(v) for v in written.values())
    # bare names + --video; <video_id>.json in a folder; --eval integers; --video mode "<k>.jpg"; no box
    write_results(tmp_path / "one.json", written)
    s = import_alphapose(tmp_path / "one.json", root.path, "a", video="s01_walk")
    assert s.n_frames == N_FRAMES and s.n_persons == n
    with pytest.raises(GaitdataError, match=rf"{len(written)} of {len(written)} image ids match no extracted frame .*pass --video"):
        import_alphapose(tmp_path / "one.json", root.path, "b")  # two recordings: bare names are ambiguous
    write_results(tmp_path / "flat" / "s01_walk.json", written, ids="eval", track=True)
    import_alphapose(tmp_path / "flat", root.path, "b")
    write_results(tmp_path / "vid" / "s01_walk" / "alphapose-results.json", written, ids="video", box=False)
    import_alphapose(tmp_path / "vid" / "s01_walk" / "alphapose-results.json", root.path, "c")
    a, b, c = (read_labels(root, x) for x in "abc")
    for other in (b, c):
        assert (other.frame_index.to_numpy() == a.frame_index.to_numpy()).all()
        assert all(np.array_equal(x, y) for x, y in zip(a.keypoints.dropna(), other.keypoints.dropna(), strict=True))
    assert read_label_meta(root, "b")["source"]["files"][0]["tracking_ids"]
    assert read_label_meta(root, "b")["source"]["files"][0]["image_ids"] == "integers"
    # without a box: the extent of the confident joints
    row = c[c.has_person.astype(bool)].iloc[0]
    kp = np.asarray(row.keypoints).reshape(17, 3)
    good = kp[:, 2] >= 0.2
    assert row.bbox_x == kp[good, 0].min() and row.bbox_w == pytest.approx(kp[good, 0].max() - kp[good, 0].min())
    # root-relative paths name their recording themselves
    rel = {f"frames/s01_walk/rgb/{k}": v for k, v in written.items()}
    write_results(tmp_path / "rel.json", rel)
    assert import_alphapose(tmp_path / "rel.json", root.path, "d").n_persons == n


def test_halpe_results_with_body17_and_scores_that_do_not_decompose(tmp_path) -> None:
    root = _root(tmp_path)
    rng = np.random.default_rng(5)
    items = []
    for i in range(0, N_FRAMES, 2):
        kp = np.concatenate([np.column_stack([rng.uniform(0, 300, 26), rng.uniform(0, 200, 26), rng.uniform(0, 1, 26)])])
        items.append({"image_id": f"{i:06d}.jpg", "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 5.0,
                      "box": [1.0, 2.0, 30.0, 40.0], "idx": [[0.0]]})
    f = tmp_path / "s02_walk" / "alphapose-results.json"
    f.parent.mkdir()
    f.write_text(json.dumps(items))
    with pytest.raises(GaitdataError, match=r"26 keypoints \(Halpe-26\).*--body17"):
        import_alphapose(f, root.path, "h")
    s = import_alphapose(f, root.path, "h", body17=True)
    df = read_labels(root, "h")
    got = np.stack([np.asarray(k).reshape(17, 3) for k in df[df.has_person.astype(bool)].keypoints])
    want = np.stack([np.asarray(it["keypoints"]).reshape(26, 3)[:17] for it in items])
    assert (got[..., :2] == want[..., :2]).all() and s.n_frames == N_FRAMES
    assert s.files[0]["score_method"] == "scaled"  # 5.0 is not mean + box score + 1.25 max
    assert (df[df.has_person.astype(bool)].score == 1.0).all()


# ---- bad files: one line through the CLI --------------------------------------------------------
def _bad_files(tmp_path: Path) -> dict[str, tuple[object, str]]:
    kp = [10.0, 20.0, 0.9] * 17
    ok = {"image_id": "000001.jpg", "category_id": 1, "keypoints": kp, "score": 2.5, "box": [0, 0, 9, 9]}
    return {
        "object": ({"results": [ok]}, "expected AlphaPose results, a JSON list"),
        "cmu": ({"000001.jpg": {"version": "AlphaPose v0.3", "bodies": [{"joints": kp + [1, 2, 1]}]}},
                r"'--format cmu' output \(CMU-Pose layout"),
        "open": ({"version": 0.1, "people": [{"pose_keypoints_2d": kp + [1, 2, 1]}]}, r"'--format open' output \(OpenPose"),
        "coco": ({"images": [], "annotations": []}, "is a COCO dataset file.*gaitdata import coco"),
        "halpe136": ([{**ok, "keypoints": [1.0, 2.0, 0.5] * 136}], r"136 keypoints \(Halpe-136 full body\).*--body17"),
        "wholebody": ([{**ok, "keypoints": [1.0, 2.0, 0.5] * 133}], r"133 keypoints \(COCO-WholeBody-133\)"),
        "mpii": ([{**ok, "keypoints": [1.0, 2.0, 0.5] * 16}], r"16 keypoints \(MPII-16\).*COCO-17 model"),
        "names": ([ok, {**ok, "image_id": "frame_0001.png"}, {**ok, "image_id": "other.jpg"}],
                  r"2 of 3 image ids match no extracted frame of recording s01_walk \(e\.g\. 'frame_0001\.png', 'other\.jpg'\)"),
        "detections": ([{"image_id": "000001.jpg", "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9}],
                       "detection file.*--boxes json:"),
        "triples": ([{**ok, "keypoints": kp[:-1]}], "x, y, c triples, got 50 values"),
        "box": ([{**ok, "box": [1, 2, 3]}], r"box must be \[x, y, w, h\]"),
        "json": ("[{not json", "not valid JSON"),
    }


def test_bad_files_give_one_line_through_the_cli(tmp_path, capsys) -> None:
    root = _root(tmp_path)
    for name, (content, message) in _bad_files(tmp_path).items():
        f = tmp_path / "bad" / name / "s01_walk" / "alphapose-results.json"
        f.parent.mkdir(parents=True)
        f.write_text(content if isinstance(content, str) else json.dumps(content))
        rc, out, err = _cli(["import", "alphapose", str(f), "--root", str(root.path)], capsys)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert str(f) in lines[0] and re.search(message, lines[0]), (name, lines[0])
    # a folder whose entries name no recording; a recording folder without results
    (tmp_path / "strays" / "nobody").mkdir(parents=True)
    (tmp_path / "strays" / "nobody" / "alphapose-results.json").write_text("[]")
    (tmp_path / "strays" / "s01_walk.json").write_text("[]")
    rc, _, err = _cli(["import", "alphapose", str(tmp_path / "strays"), "--root", str(root.path)], capsys)
    assert rc == 2 and "1 result(s) name no recording" in err and "'nobody/'" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "unfinished" / "s01_walk").mkdir(parents=True)
    rc, _, err = _cli(["import", "alphapose", str(tmp_path / "unfinished"), "--root", str(root.path)], capsys)
    assert rc == 2 and "did AlphaPose finish" in err
    assert root.label_sets() == []  # nothing was written


def test_cli_import_prints_a_summary(tmp_path, capsys) -> None:
    root = _root(tmp_path)
    out, _ = _results_folder(tmp_path)
    rc, stdout, err = _cli(["import", "alphapose", str(out), "--root", str(root.path), "--label-set", "ap"], capsys)
    assert rc == 0 and "s01_walk" in stdout and "score: detector" in stdout and err == ""
    assert read_labels(root, "ap")["video_id"].nunique() == 2


# ---- --boxes json: -----------------------------------------------------------------------------
def test_boxes_from_alphapose_results(tmp_path) -> None:
    root = _root(tmp_path)
    out, truth = _results_folder(tmp_path)
    runner.label(root.path, teacher="test_boxed", label_set="boxed", boxes=f"json:{out}", progress=False)
    df = read_labels(root, "boxed")
    for vid, persons in truth.items():
        for name, people in persons.items():
            rows = df[(df.video_id == vid) & (df.frame_index == int(name[:6])) & df.has_person.astype(bool)]
            assert sorted(rows.bbox_x) == sorted(p["box"][0] for p in people)
    prop = make_proposer(f"json:{out}")
    prop.prepare(root)
    prop.begin(root, root.read_videos().set_index("video_id", drop=False).loc["s02_walk"], root.read_frames())
    boxes = prop.propose(0, None, None)  # x, y, w, h and the detector score recovered from AlphaPose's
    want = sorted(truth["s02_walk"]["000000.jpg"], key=lambda p: -p["s"])
    assert np.allclose(boxes, [[*p["box"], p["s"]] for p in want], atol=1e-6)
    meta = read_label_meta(root, "boxed")["boxes"]
    assert meta["proposer"] == "json" and meta["sha256"]
    # one file with bare names: its recording comes from --video
    shutil.copy(out / "s02_walk" / "alphapose-results.json", tmp_path / "copy.json")
    with pytest.raises(GaitdataError, match="pass --video VIDEO_ID"):
        runner.label(root.path, teacher="test_boxed", label_set="x", boxes=f"json:{tmp_path / 'copy.json'}", progress=False)
    assert "x" not in root.label_sets() and not runner.parts_dir(root, "x").exists()
    s = runner.label(root.path, teacher="test_boxed", label_set="s02", boxes=f"json:{tmp_path / 'copy.json'}",
                     videos=["s02_walk"], progress=False)  # fmt: skip
    assert s.n_persons == sum(len(p) for p in truth["s02_walk"].values())
    # a detection file (bbox) in the same folder layout works too
    det = tmp_path / "det" / "s01_walk.json"
    det.parent.mkdir()
    det.write_text(json.dumps([{"image_id": "000003.jpg", "category_id": 1, "bbox": [5, 6, 20, 30], "score": 0.7}]))
    s = runner.label(root.path, teacher="test_boxed", label_set="det", boxes=f"json:{det.parent}", progress=False)
    assert s.n_persons == 1 and s.n_no_person == 2 * N_FRAMES - 1


# ---- a label set made on another machine --------------------------------------------------------
def test_label_set_from_another_machine_imports_and_merges(tmp_path, capsys) -> None:
    root = _root(tmp_path)
    gpu = tmp_path / "gpu_root"
    shutil.copytree(root.path, gpu)  # the same frames, another machine
    runner.label(gpu, teacher="test_blob", label_set="remote", progress=False)
    runner.label(root.path, teacher="test_blob", label_set="local", progress=False)
    rc, out, err = _cli(["import", "labels", str(gpu / "labels" / "remote.parquet"), "--root", str(root.path)], capsys)
    assert rc == 0 and "label set remote" in out, err
    pd.testing.assert_frame_equal(read_labels(root, "remote"), read_labels(gpu, "remote"))
    meta = read_label_meta(root, "remote")
    assert meta["teacher"] == "test_blob" and meta["copied_from"]["sha256"]
    rc, out, err = _cli(["compare-labels", str(root.path), "local", "remote", "--merge", "agreed"], capsys)
    assert rc == 0 and "frames agree" in out
    merged = read_labels(root, "agreed")
    assert len(merged.drop_duplicates(["video_id", "frame_index"])) == 2 * N_FRAMES
    assert not any(f is not None and "disagree" in list(f) for f in merged.qa_flags)  # the same teacher on the same frames
    with pytest.raises(GaitdataError, match="already exists"):
        import_label_set(gpu / "labels" / "remote.parquet", root.path)
    # made over another extraction: refused with one line
    other = tmp_path / "other"
    a = blob_frames(N_FRAMES + 2, lambda i: [(20, 40, 40, 150)])
    make_root(other, {"s01_walk": a})
    runner.label(other, teacher="test_blob", label_set="longer", progress=False)
    rc, _, err = _cli(["import", "labels", str(other / "labels" / "longer.parquet"), "--root", str(root.path)], capsys)
    assert rc == 2 and "2 labelled frame(s) are not written frames" in err and len(err.strip().splitlines()) == 1
    short = tmp_path / "short"
    make_root(short, {"s01_walk": blob_frames(N_FRAMES - 3, lambda i: [(20, 40, 40, 150)])})
    runner.label(short, teacher="test_blob", label_set="short", progress=False)
    with pytest.raises(GaitdataError, match=r"covers 5 of 8 written frames of s01_walk"):
        import_label_set(short / "labels" / "short.parquet", root.path)
