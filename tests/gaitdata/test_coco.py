import contextlib
import io
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import splits
from gaitdata.cli import cli as cli_main
from gaitdata.coco import EmptyPartWarning, count_entries, export_coco, import_coco
from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.labels import read_label_meta, read_labels, write_labels
from gaitdata.schema import COCO17
from gaitdata.testing.roots import toy_root


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = toy_root(
        tmp_path_factory.mktemp("coco") / "root", subjects=5, videos_per_subject=2, frames_per_video=6
    )
    splits.make_split(r, near_duplicates=False)
    return r


@pytest.fixture(scope="module")
def exported(root):
    return export_coco(root, "toy", "default")


def _load(path):
    return json.loads(path.read_text())


def _quiet(fn, *a, **k):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a, **k)


def _labels_by_key(root, name="toy"):
    lab = read_labels(root, name)
    return {(r.video_id, int(r.frame_index), int(r.person_index)): r for r in lab.itertuples(index=False)}


def test_one_file_per_part_in_the_documented_place(root, exported):
    assert set(exported) == {"train", "val", "test"}
    for part, path in exported.items():
        assert path == root.exports_dir / "coco" / f"{part}.json"
        d = _load(path)
        assert d["info"]["part"] == part and d["info"]["split"] == "default"
        assert count_entries(path) == (len(d["images"]), len(d["annotations"]))
    assert not list((root.exports_dir / "coco").glob("*.tmp"))


def test_pycocotools_loads_and_self_evaluation_gives_ap_1(exported):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    for path in exported.values():
        gt = _quiet(COCO, str(path))
        assert len(gt.getImgIds()) > 0 and len(gt.getAnnIds()) > 0
        dets = _load(path)["annotations"]  # the detection file: the annotations with their scores
        dt = _quiet(gt.loadRes, dets)
        ev = COCOeval(gt, dt, iouType="keypoints")
        _quiet(ev.evaluate)
        _quiet(ev.accumulate)
        _quiet(ev.summarize)
        assert ev.stats[0] == pytest.approx(1.0)


def test_image_fields(root, exported):
    import cv2

    frames = root.read_frames().set_index(["video_id", "frame_index"])
    videos = root.read_videos().set_index("video_id")
    sp = splits.load_split(root, "default")
    all_ok = frames[frames["status"] == "ok"].reset_index().sort_values(["video_id", "frame_index"])
    rank = {
        (v, int(f)): i + 1
        for i, (v, f) in enumerate(zip(all_ok["video_id"], all_ok["frame_index"], strict=True))
    }
    for part, path in exported.items():
        d = _load(path)
        assert d["info"]["image_root"] == "../.."
        image_root = path.parent / d["info"]["image_root"]
        for im in d["images"]:
            assert sp.part_of_video(im["video_id"]) == part
            fr = frames.loc[(im["video_id"], im["frame_index"])]
            assert im["file_name"] == fr["rgb_path"] and not im["file_name"].startswith("/")
            img = cv2.imread(str(image_root / im["file_name"]))
            assert img.shape[:2] == (im["height"], im["width"])
            assert im["depth_file"] == fr["depth_path"]
            assert im["subject"] == videos.loc[im["video_id"], "subject"]
            assert im["timestamp_ms"] == pytest.approx(fr["colour_ts_ms"])
            assert (
                im["id"] == rank[(im["video_id"], im["frame_index"])]
            )  # stable id from the root's frame order
        ids = [im["id"] for im in d["images"]]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_annotation_fields(root, exported):
    labels = _labels_by_key(root)
    for path in exported.values():
        d = _load(path)
        images = {im["id"]: im for im in d["images"]}
        ids = [a["id"] for a in d["annotations"]]
        assert ids == sorted(ids) and len(set(ids)) == len(ids) and min(ids) >= 1
        for a in d["annotations"]:
            im = images[a["image_id"]]
            row = labels[(im["video_id"], im["frame_index"], a["person_index"])]
            assert a["category_id"] == 1 and a["iscrowd"] == 0
            assert a["bbox"] == [row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h]
            assert a["area"] == pytest.approx(row.bbox_w * row.bbox_h)
            kp = np.asarray(a["keypoints"], dtype=float).reshape(17, 3)
            src = np.asarray(row.keypoints).reshape(17, 3)
            vis = np.asarray(row.visibility)
            assert kp[:, 2].tolist() == vis.tolist()
            assert np.allclose(kp[vis > 0, :2], src[vis > 0, :2])
            assert (kp[vis == 0] == 0).all()  # COCO: x = y = 0 where v = 0
            assert a["num_keypoints"] == int((vis > 0).sum())
            assert a["score"] == row.score
            assert a["keypoint_scores"] == src[:, 2].tolist()
            assert [j for j, _, _ in a["invisible_xy"]] == np.nonzero(vis == 0)[0].tolist()
            assert a["track_id"] == row.track_id and a["is_subject"] == bool(row.is_subject)
            assert a["qa_flags"] == list(row.qa_flags)
    assert _load(exported["train"])["info"]["teacher"] == "toy"


def test_categories_carry_names_and_the_1_indexed_skeleton(exported):
    (cat,) = _load(exported["train"])["categories"]
    assert cat["id"] == 1 and cat["name"] == "person"
    assert cat["keypoints"] == list(COCO17.keypoints)
    assert cat["skeleton"] == [[a + 1, b + 1] for a, b in COCO17.skeleton]
    assert min(min(e) for e in cat["skeleton"]) == 1 and max(max(e) for e in cat["skeleton"]) == 17


def test_annotation_ids_are_unique_across_parts_so_merged_parts_evaluate(root, exported, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    parts = [_load(p) for p in exported.values()]
    merged = {
        "info": {}, "categories": parts[0]["categories"],
        "images": [im for d in parts for im in d["images"]],
        "annotations": [a for d in parts for a in d["annotations"]],
    }  # fmt: skip
    ids = [a["id"] for a in merged["annotations"]]
    assert len(ids) == len(set(ids)) == len(read_labels(root, "toy").query("has_person"))
    path = tmp_path / "merged.json"
    path.write_text(json.dumps(merged))
    gt = _quiet(COCO, str(path))
    for a in merged["annotations"]:
        got = gt.loadAnns(a["id"])[0]
        assert got["image_id"] == a["image_id"] and got["keypoints"] == a["keypoints"]
    for im in merged["images"]:
        want = sorted(a["id"] for a in merged["annotations"] if a["image_id"] == im["id"])
        assert sorted(x["id"] for x in gt.loadAnns(gt.getAnnIds(imgIds=[im["id"]]))) == want
    dets = json.loads(path.read_text())["annotations"]  # loadRes renumbers the detections it is given
    ev = COCOeval(gt, _quiet(gt.loadRes, dets), iouType="keypoints")
    for step in (ev.evaluate, ev.accumulate, ev.summarize):
        _quiet(step)
    assert ev.stats[0] == pytest.approx(1.0)
    # stable: another export of one part, with a filter, gives each person the same id
    again = _load(export_coco(root, "toy", "default", out=tmp_path / "val", parts=["val"], min_score=0.5)["val"])
    by_person = {(a["image_id"], a["person_index"]): a["id"] for a in merged["annotations"]}
    assert again["annotations"] and all(by_person[a["image_id"], a["person_index"]] == a["id"] for a in again["annotations"])


def test_frames_without_a_person_are_images_without_annotations(root, exported):
    lab = read_labels(root, "toy")
    empty = {(r.video_id, int(r.frame_index)) for r in lab[~lab["has_person"].astype(bool)].itertuples()}
    assert empty
    seen = set()
    for path in exported.values():
        d = _load(path)
        annotated = {a["image_id"] for a in d["annotations"]}
        for im in d["images"]:
            if (im["video_id"], im["frame_index"]) in empty:
                assert im["id"] not in annotated
                seen.add((im["video_id"], im["frame_index"]))
    assert seen == empty


def test_export_is_deterministic(root, tmp_path):
    a = export_coco(root, "toy", "default", out=tmp_path / "a")
    b = export_coco(root, "toy", "default", out=tmp_path / "b")
    for part in a:
        assert a[part].read_bytes() == b[part].read_bytes()


def _persons(files):
    out = []
    for path in files.values():
        d = _load(path)
        images = {im["id"]: im for im in d["images"]}
        out += [(images[a["image_id"]], a) for a in d["annotations"]]
    return out


@pytest.mark.parametrize(
    "kwargs, keep",
    [
        ({"min_score": 0.6}, lambda r: r.score >= 0.6),
        ({"min_visible": 10}, lambda r: r.num_visible >= 10),
        ({"exclude_flags": ("bystander",)}, lambda r: "bystander" not in list(r.qa_flags)),
        ({"exclude_flags": ("low_confidence", "bystander")}, lambda r: not set(r.qa_flags)),
        ({"subject_only": True}, lambda r: bool(r.is_subject)),
    ],
)
def test_person_filters(root, tmp_path, kwargs, keep):
    files = export_coco(root, "toy", "default", out=tmp_path, **kwargs)
    lab = read_labels(root, "toy")
    lab = lab[lab["has_person"].astype(bool)]
    expected = {(r.video_id, int(r.frame_index), int(r.person_index)) for r in lab.itertuples() if keep(r)}
    got = {(im["video_id"], im["frame_index"], a["person_index"]) for im, a in _persons(files)}
    assert got == expected and 0 < len(got) < len(lab)
    info = _load(files["train"])["info"]["filters"]
    for k, v in kwargs.items():
        assert info[k] == (sorted(v) if isinstance(v, tuple) else v)
    # images whose persons were all filtered out are left out; no-person frames stay
    for path in files.values():
        d = _load(path)
        annotated = {a["image_id"] for a in d["annotations"]}
        keys = {
            (v, int(f))
            for v, f, hp in zip(lab["video_id"], lab["frame_index"], lab["has_person"], strict=True)
        }
        for im in d["images"]:
            if (im["video_id"], im["frame_index"]) in keys:
                assert im["id"] in annotated


def test_exclude_frames_hook(root, tmp_path):
    sp = splits.load_split(root, "default")
    vid = sp.videos("train")[0]
    excluded = {(vid, 0), (vid, 1)}
    files = export_coco(root, "toy", "default", out=tmp_path, exclude_frames=excluded)
    keys = {(im["video_id"], im["frame_index"]) for p in files.values() for im in _load(p)["images"]}
    assert not keys & excluded and (vid, 2) in keys
    assert _load(files["train"])["info"]["filters"]["excluded_frames"] == 2


def test_export_import_export_is_lossless(root, exported, tmp_path):
    first = {k: p.read_bytes() for k, p in exported.items()}
    import_coco(list(exported.values()), root, "roundtrip")
    again = export_coco(root, "roundtrip", "default", out=exported["train"].parent)
    for part, path in again.items():  # the same file, but for the label set named in info.lineage
        a, b = json.loads(first[part]), _load(path)
        assert a["info"].pop("lineage")["label_set"]["name"] == "toy"
        assert b["info"].pop("lineage")["label_set"]["name"] == "roundtrip"
        assert a == b
        head_a, _, body_a = first[part].partition(b"\n")
        head_b, _, body_b = path.read_bytes().partition(b"\n")
        assert body_a == body_b  # images and annotations byte for byte
    export_coco(root, "toy", "default", out=exported["train"].parent)  # restore the module's export
    a = read_labels(root, "toy")
    b = read_labels(root, "roundtrip")
    pd.testing.assert_frame_equal(a, b)
    meta = read_label_meta(root, "roundtrip")
    assert meta["imported_from"] and meta["teacher"] == "toy"
    with pytest.raises(GaitdataError, match="already exists"):
        import_coco(list(exported.values()), root, "roundtrip")


def test_import_a_plain_coco_file_matched_by_file_name(root, exported, tmp_path):
    d = _load(exported["val"])
    for im in d["images"]:
        for k in ("video_id", "frame_index", "subject", "depth_file", "timestamp_ms"):
            im.pop(k)
    for a in d["annotations"]:
        for k in (
            "keypoint_scores",
            "invisible_xy",
            "person_index",
            "track_id",
            "is_subject",
            "qa_flags",
            "score",
        ):
            a.pop(k)
    d["info"] = {}
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(d))
    import_coco(plain, root, "plain", teacher="human")
    lab = read_labels(root, "plain")
    persons = lab[lab["has_person"].astype(bool)]
    assert len(persons) == len(d["annotations"])
    assert set(lab["teacher"]) == {"human"} and (persons["score"] == 1.0).all()
    kp = np.stack([np.asarray(k).reshape(17, 3) for k in persons["keypoints"]])
    vis = np.stack([np.asarray(v) for v in persons["visibility"]])
    assert ((kp[:, :, 2] == 1.0) == (vis > 0)).all()
    assert len(lab.drop_duplicates(["video_id", "frame_index"])) == len(d["images"])


def test_copy_and_link_images(root, tmp_path):
    for mode in ("copy", "link"):
        files = export_coco(root, "toy", "default", out=tmp_path / mode, images=mode, parts=["test"])
        assert set(files) == {"test"}
        d = _load(files["test"])
        assert d["info"]["image_root"] == "images"
        for im in d["images"]:
            p = files["test"].parent / "images" / im["file_name"]
            assert p.is_file() and p.is_symlink() == (mode == "link")
            assert p.read_bytes() == (root.path / im["file_name"]).read_bytes()


def test_whole_root_without_a_split(root, tmp_path):
    files = export_coco(root, "toy", None, out=tmp_path)
    assert set(files) == {"all"}
    n = sum(len(_load(p)["images"]) for p in export_coco(root, "toy", "default", out=tmp_path / "s").values())
    assert len(_load(files["all"])["images"]) == n


def _no_partial(out):
    return not out.exists() or not [p for p in out.iterdir() if p.suffix in (".json", ".tmp")]


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("toy", "nosuch"), {}, "split 'nosuch' not found"),
        (("nosuch", "default"), {}, "label set 'nosuch' not found"),
        (("toy", "default"), {"parts": ["holdout"]}, "no part"),
        (("toy", "default"), {"min_score": 1.5}, "min-score"),
        (("toy", "default"), {"min_visible": 18}, "passes the filters"),
        (("toy", "default"), {"images": "move"}, "images must be"),
    ],
)
def test_bad_input_leaves_no_file(root, tmp_path, args, kwargs, match):
    out = tmp_path / "out"
    with pytest.raises(GaitdataError, match=match):
        export_coco(root, *args, out=out, **kwargs)
    assert _no_partial(out)


def test_split_part_without_labelled_frames_and_missing_images(tmp_path):
    r = toy_root(tmp_path / "r", subjects=3, videos_per_subject=1, frames_per_video=4)
    splits.make_split(r, fractions=(0.34, 0.33, 0.33), near_duplicates=False)
    sp = splits.load_split(r, "default")
    lab = read_labels(r, "toy")
    part = lab[~lab["video_id"].isin(sp.videos("test"))]
    write_labels(r, "partial", part, {})
    out = tmp_path / "out"
    with pytest.warns(EmptyPartWarning, match="part 'test'.*label set 'partial'.*no labelled frame"):
        files = export_coco(r, "partial", "default", out=tmp_path / "partial")
    assert set(files) == {"train", "val", "test"} and count_entries(files["test"]) == (0, 0)
    assert count_entries(files["train"])[1] > 0
    res = CliRunner().invoke(cli_main, ["export", "coco", str(r.path), "--labels", "partial", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0 and "warning: part 'test' of split 'default'" in res.output
    assert "test: 0 images, 0 person annotations" in res.output
    gone = r.path / DatasetRoot.rgb_relpath(sp.videos("val")[0], 1)
    gone.unlink()
    with pytest.raises(GaitdataError, match="1 image file.*missing.*000001.jpg"):
        export_coco(r, "toy", "default", out=out)
    assert _no_partial(out)
    assert set(export_coco(r, "toy", "default", out=out, check_images=False)) == {"train", "val", "test"}


def test_export_and_import_cli(root, tmp_path):
    from gaitdata.cli import cli

    out = tmp_path / "cli"
    excl = tmp_path / "excl.csv"
    excl.write_text("video_id,frame_index\ns00_v0,0\n")
    res = CliRunner().invoke(cli, ["export", "coco", str(root.path), "--labels", "toy", "--out", str(out),
                                   "--min-score", "0.2", "--exclude-flag", "bystander", "--exclude-frames", str(excl)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "person annotations" in res.output and (out / "train.json").is_file()
    d = _load(out / "train.json")
    assert all("bystander" not in a["qa_flags"] for a in d["annotations"])
    res = CliRunner().invoke(cli, ["import", "coco", *map(str, sorted(out.glob("*.json"))), "--root", str(root.path),
                                   "--label-set", "cli_import"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "cli_import" in root.label_sets()
    res = CliRunner().invoke(cli, ["export", "coco", str(root.path), "--labels", "toy", "--split", "none",
                                   "--out", str(tmp_path / "all")])  # fmt: skip
    assert res.exit_code == 0 and (tmp_path / "all" / "all.json").is_file()
    shutil.rmtree(out)


def test_import_refuses_files_that_do_not_match_the_root(root, exported, tmp_path):
    d = _load(exported["test"])
    bad = json.loads(json.dumps(d))
    bad["images"][0]["frame_index"] = 9999
    (tmp_path / "frame.json").write_text(json.dumps(bad))
    with pytest.raises(GaitdataError, match="not a written frame"):
        import_coco(tmp_path / "frame.json", root, "bad1")
    bad = json.loads(json.dumps(d))
    bad["categories"][0]["keypoints"] = bad["categories"][0]["keypoints"][::-1]
    (tmp_path / "names.json").write_text(json.dumps(bad))
    with pytest.raises(GaitdataError, match="do not match the root's schema"):
        import_coco(tmp_path / "names.json", root, "bad2")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(GaitdataError, match="not valid JSON"):
        import_coco(tmp_path / "broken.json", root, "bad3")
    with pytest.raises(FileNotFoundError):
        import_coco(tmp_path / "missing.json", root, "bad4")
    assert not {"bad1", "bad2", "bad3", "bad4"} & set(root.label_sets())


def test_export_refuses_labels_of_unknown_frames(tmp_path):
    r = toy_root(tmp_path / "r", subjects=2, videos_per_subject=1, frames_per_video=4, images=False)
    lab = read_labels(r, "toy")
    extra = lab.iloc[[0]].assign(frame_index=500)
    write_labels(r, "stray", pd.concat([lab, extra]), {})
    with pytest.raises(GaitdataError, match="not written frames.*#500"):
        export_coco(r, "stray", None, out=tmp_path / "out", check_images=False)
    assert _no_partial(tmp_path / "out")


def test_a_killed_exports_temporary_files_are_removed_by_the_next(root, tmp_path):
    import socket
    import subprocess

    out = tmp_path / "exp"
    out.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    left = out / f".train.json.{host}-{dead.pid}-abc123.tmp"  # what kill -9 mid-export leaves
    running = out / f".val.json.{host}-{os.getpid()}-def456.tmp"  # another export, still running
    elsewhere = out / f".val.json.otherhost-{dead.pid}-ghi789.tmp"  # an export on another machine
    for p in (left, running, elsewhere):
        p.write_text("{")
    export_coco(root, "toy", None, out=out)
    assert not left.exists() and running.exists() and elsewhere.exists()
    assert (out / "all.json").is_file() and not any(p.name.startswith(".all.json") for p in out.iterdir())
