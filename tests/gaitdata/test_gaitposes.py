import json
import os
import pickle
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import splits
from gaitdata.errors import GaitdataError
from gaitdata.gaitposes import export_gait_poses, load_gait_poses
from gaitdata.labels import read_labels
from gaitdata.schema import COCO17
from gaitdata.testing.roots import toy_root


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return toy_root(tmp_path_factory.mktemp("gait") / "root", subjects=3, videos_per_subject=2, frames_per_video=6,
                    images=False)  # fmt: skip


def test_one_array_per_recording_grouped_by_subject(root, tmp_path):
    index = export_gait_poses(root, "toy", tmp_path / "g")
    df = pd.read_csv(index)
    videos = root.read_videos()
    assert sorted(df["video_id"]) == sorted(videos["video_id"])
    lab = read_labels(root, "toy")
    frames = root.read_frames().set_index(["video_id", "frame_index"])
    for row in df.itertuples():
        assert row.path == f"{row.subject}/{row.video_id}.npz"
        z = load_gait_poses(tmp_path / "g" / row.path)
        sub = lab[lab["video_id"] == row.video_id]
        fidx = sorted(sub["frame_index"].unique())
        t = len(fidx)
        assert z["keypoints"].shape == (t, 17, 3) and z["keypoints"].dtype == np.float32
        assert z["frame_index"].tolist() == fidx and row.frames == t
        assert z["joint_names"].tolist() == list(COCO17.keypoints)
        assert str(z["subject"]) == row.subject and str(z["video_id"]) == row.video_id
        assert np.allclose(z["timestamp_ms"], [frames.loc[(row.video_id, f), "colour_ts_ms"] for f in fidx])
        for i, f in enumerate(fidx):
            fr = sub[sub["frame_index"] == f]
            subj = fr[fr["is_subject"].fillna(False).astype(bool)]
            if len(subj):
                want = np.asarray(subj.iloc[0]["keypoints"], dtype=np.float32).reshape(17, 3)
                assert z["has_pose"][i] and np.array_equal(
                    z["keypoints"][i], want
                )  # the subject, not a bystander
            else:
                assert not z["has_pose"][i] and (z["keypoints"][i] == 0).all()
        assert row.frames_with_pose == int(z["has_pose"].sum()) < t


def test_split_part_and_errors(root, tmp_path):
    sp = splits.make_split(root, fractions=(0.34, 0.33, 0.33), near_duplicates=False)
    df = pd.read_csv(export_gait_poses(root, "toy", tmp_path / "t", split_name="default", split_part="test"))
    assert sorted(df["video_id"]) == sorted(sp.videos("test"))
    with pytest.raises(GaitdataError, match="label set 'nope' not found"):
        export_gait_poses(root, "nope", tmp_path / "x")
    with pytest.raises(GaitdataError, match="no part 'holdout'"):
        export_gait_poses(root, "toy", tmp_path / "x", split_name="default", split_part="holdout")


def test_gait_poses_cli(root, tmp_path):
    from gaitdata.cli import cli

    res = CliRunner().invoke(
        cli, ["export", "gait-poses", str(root.path), "--labels", "toy", "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    assert "6 recordings of 3 subjects" in res.output and (tmp_path / "index.csv").is_file()


def test_opengait_layout(root, tmp_path):
    index = export_gait_poses(root, "toy", tmp_path / "og", layout="opengait")
    df = pd.read_csv(index)
    videos = root.read_videos().set_index("video_id")
    lab = read_labels(root, "toy")
    assert len(df) == len(videos) and df["path"].is_unique
    for row in df.itertuples():
        v = videos.loc[row.video_id]
        assert row.path.startswith(f"{v['subject']}/{v['condition']}-{v['session']}")
        assert row.path.endswith(f"/{v['view']}/{v['view']}.pkl")
        with open(tmp_path / "og" / row.path, "rb") as fh:
            arr = pickle.load(fh)
        sub = lab[(lab["video_id"] == row.video_id) & lab["has_person"].astype(bool)]
        assert arr.shape == (sub["frame_index"].nunique(), 17, 3) and arr.dtype == np.float32
        fmap = pd.read_csv(tmp_path / "og" / "_frames" / f"{row.video_id}.csv")
        assert fmap["frame_index"].tolist() == sorted(sub["frame_index"].unique())
    with pytest.raises(GaitdataError, match="layout must be"):
        export_gait_poses(root, "toy", tmp_path / "x", layout="pkl")


# ------------------------------------------------------------------------------------------------
# gait-recognition toolkits: OpenGait / FastPoseGait trees, GaitGraph CSV, CASIA-B names
# ------------------------------------------------------------------------------------------------
def _opengait_sequences(dataset_root, partition_file, training):
    """OpenGait's DataSet parser as documented: partition ids kept only when a directory of that
    name exists, then id/type/view walked in sorted order, every file of a view folder one input."""
    with open(partition_file, "rb") as fh:
        part = json.load(fh)
    present = os.listdir(dataset_root)
    chosen = [i for i in part["TRAIN_SET" if training else "TEST_SET"] if i in present]
    seqs = []
    for lab in chosen:
        for typ in sorted(os.listdir(os.path.join(dataset_root, lab))):
            for vie in sorted(os.listdir(os.path.join(dataset_root, lab, typ))):
                files = sorted(os.listdir(os.path.join(dataset_root, lab, typ, vie)))
                if files:
                    seqs.append(
                        [lab, typ, vie, [os.path.join(dataset_root, lab, typ, vie, f) for f in files]]
                    )
    return seqs


def _opengait_load(paths):
    """OpenGait's loader: only .pkl inputs, each unpickled, all the same non-zero length."""
    data = []
    for p in sorted(paths):
        if not p.endswith(".pkl"):
            raise ValueError("- Loader - just support .pkl !!!")
        with open(p, "rb") as fh:
            data.append(pickle.load(fh))
    if any(len(d) != len(data[0]) or len(d) == 0 for d in data):
        raise ValueError("inputs of one sequence differ in length or are empty")
    return data


def _gaitgraph_read(path):
    """GaitGraph's CasiaBPose reader: whitespace-free lines after the header, image_name
    '<dir>/<subject>-<status>-<number>-<view>/<frame>.jpg', 51 values per row, frames per target
    in row order."""
    status = {"nm": 0, "bg": 1, "cl": 2}
    out: dict = {}
    for line in np.loadtxt(path, skiprows=1, dtype=str, ndmin=1):
        row = line.split(",")
        _, seq_id, frame = row[0].split("/")
        subject, walking, number, view = seq_id.split("-")
        target = (int(subject), status[walking], int(number), int(view))
        assert len(row[1:]) == 51
        out.setdefault(target, {})[int(frame[:-4])] = np.array(row[1:], dtype=np.float32).reshape(-1, 3)
    return out


@pytest.fixture(scope="module")
def by_subject(root):
    return splits.make_split(root, fractions=(0.34, 0.33, 0.33), name="bysubj", near_duplicates=False)


@pytest.fixture(scope="module")
def npz_export(root, tmp_path_factory):
    out = tmp_path_factory.mktemp("npz")
    df = pd.read_csv(export_gait_poses(root, "toy", out))
    return {row.video_id: load_gait_poses(out / row.path) for row in df.itertuples()}


def test_opengait_tree_reads_with_their_loader(root, by_subject, npz_export, tmp_path):
    out = tmp_path / "og"
    index = pd.read_csv(
        export_gait_poses(root, "toy", out, split_name="bysubj", layout="opengait", naming="casiab"),
        dtype=str,
    )
    part = json.loads((out / "partition.json").read_text())
    assert set(part) == {"TRAIN_SET", "TEST_SET"} and not set(part["TRAIN_SET"]) & set(part["TEST_SET"])
    ids = dict(zip(index["subject"], index["seq_id"], strict=False))
    assert part["TEST_SET"] == [ids[s] for s in by_subject.subjects("test")]
    assert part["TRAIN_SET"] == sorted(ids[s] for p in ("train", "val") for s in by_subject.subjects(p))
    train, test = (
        _opengait_sequences(out, out / "partition.json", True),
        _opengait_sequences(out, out / "partition.json", False),
    )
    assert len(train) + len(test) == len(index) and {s[0] for s in test} == set(part["TEST_SET"])
    by_path = index.set_index("path")
    for lab, typ, vie, paths in train + test:
        assert (
            re.fullmatch(r"\d{3}", lab)
            and re.fullmatch(r"(nm|bg)-\d{2}", typ)
            and re.fullmatch(r"\d{3}", vie)
        )
        (arr,) = _opengait_load(paths)
        rec = by_path.loc[os.path.relpath(paths[0], out)]
        want = npz_export[rec["video_id"]]
        assert arr.dtype == np.float32 and np.array_equal(arr, want["keypoints"][want["has_pose"]])
        fmap = pd.read_csv(out / "_frames" / f"{rec['video_id']}.csv")
        assert fmap["frame_index"].tolist() == want["frame_index"][want["has_pose"]].tolist()
    # the CASIA-B evaluators pick probe and gallery by type and view
    types = np.array([s[1] for s in train + test])
    assert np.isin(types, ["nm-01"]).sum() == np.isin(types, ["bg-01"]).sum() == 3


def test_gaitgraph_csv_reads_into_their_arrays(root, by_subject, npz_export, tmp_path):
    out = tmp_path / "gg"
    index = pd.read_csv(
        export_gait_poses(root, "toy", out, split_name="bysubj", layout="gaitgraph"), dtype=str
    )
    theirs = _gaitgraph_read(out / "poses.csv")
    assert len(theirs) == len(index)
    df = pd.read_csv(out / "poses.csv")
    seq = df["image_name"].str.rsplit("/", n=1).str[0]
    for row in index.itertuples():
        want = npz_export[row.video_id]
        target = (
            int(row.seq_id),
            {"nm": 0, "bg": 1}[row.seq_type[:2]],
            int(row.seq_type[3:]),
            int(row.seq_view),
        )
        frames = theirs[target]
        assert list(frames) == want["frame_index"][want["has_pose"]].tolist()
        assert np.array_equal(np.stack(list(frames.values())), want["keypoints"][want["has_pose"]])
        g = df[seq == f"{row.seq_id}/{row.seq_id}-{row.seq_type}-{row.seq_view}"]
        arr = (
            g.iloc[:, 1:].to_numpy(np.float32).reshape(len(g), 17, 3)
        )  # [T, V, C] as their dataset stacks it
        assert np.array_equal(arr, want["keypoints"][want["has_pose"]])
    parts = {p: pd.read_csv(out / f"poses_{p}.csv") for p in by_subject.part_names}
    assert sum(len(p) for p in parts.values()) == len(df)
    subjects = {p: set(t["image_name"].str.split("/").str[0]) for p, t in parts.items()}
    assert not subjects["train"] & subjects["test"] and not subjects["val"] & subjects["test"]


def test_partition_refuses_a_split_by_video(root, tmp_path):
    sp = splits.make_split(root, by="video", fractions=(0.5, 0.5), names=("train", "test"), name="byvid",
                           near_duplicates=False)  # fmt: skip
    assert set(sp.subjects("train")) & set(sp.subjects("test"))  # the premise: a subject on both sides
    for layout in ("opengait", "gaitgraph"):
        with pytest.raises(GaitdataError, match="--by subject"):
            export_gait_poses(root, "toy", tmp_path / layout, split_name="byvid", layout=layout)
    df = pd.read_csv(
        export_gait_poses(root, "toy", tmp_path / "npz", split_name="byvid")
    )  # npz: no partition
    assert set(df["part"]) == {"train", "test"}


def test_partition_parts_are_chosen(root, by_subject, tmp_path):
    from gaitdata.gaitnames import partition, plain_names

    names = plain_names(root.read_videos())
    p = partition(by_subject, names, test_parts=("val", "test"), train_parts=("train",))
    assert p == {"TRAIN_SET": by_subject.subjects("train"),
                 "TEST_SET": sorted(by_subject.subjects("val") + by_subject.subjects("test"))}  # fmt: skip
    with pytest.raises(GaitdataError, match="no part 'holdout'.*--test-part"):
        partition(by_subject, names, test_parts=("holdout",))
    folds = splits.make_split(root, folds=3, name="cv3", near_duplicates=False)
    out = tmp_path / "cv"
    export_gait_poses(root, "toy", out, split_name="cv3", layout="opengait")
    assert not (out / "partition.json").exists()  # no 'test' part and none named
    export_gait_poses(root, "toy", out, split_name="cv3", layout="opengait", test_parts=("fold1",))
    part = json.loads((out / "partition.json").read_text())
    assert part["TEST_SET"] == folds.subjects("fold1") and len(part["TRAIN_SET"]) == 2


def _videos(rows):
    cols = ["video_id", "subject", "session", "view", "condition"]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])


def test_casiab_names_parse_and_number_sessions():
    from gaitdata.gaitnames import CasiaBNaming, casiab_names, parse_casiab_type

    v = _videos([
        ("a", "sub7", "ses1", "side", "normal"), ("b", "sub7", "ses1", "front", "normal"),
        ("c", "sub7", "ses10", "side", "normal"), ("d", "sub7", "ses2", "side", "Normal"),
        ("e", "sub7", "ses1", "side", "normal"), ("f", "sub7", "ses1", "90", "bag"),
        ("g", "sub12", None, "180", "coat"), ("h", "sub12", "ses1", "top", "normal"),
        ("i", "sub12", "ses1", "side", "bystander"), ("j", None, "ses1", "side", "normal"),
    ])  # fmt: skip
    n = casiab_names(v)
    got = {k: (s.subject, s.seq_type, s.view) for k, s in n.names.items()}
    assert got == {
        "a": ("007", "nm-01", "090"), "b": ("007", "nm-01", "000"),  # one session, two views: one number
        "e": ("007", "nm-02", "090"),  # a second take of ses1/side
        "d": ("007", "nm-03", "090"), "c": ("007", "nm-04", "090"),  # natural session order: ses2 < ses10
        "f": ("007", "bg-01", "090"), "g": ("012", "cl-01", "180"),
    }  # fmt: skip
    for name in got.values():
        code, num = parse_casiab_type(name[1])
        assert (
            code in ("nm", "bg", "cl")
            and num >= 1
            and re.fullmatch(r"\d{3}", name[0])
            and re.fullmatch(r"\d{3}", name[2])
        )
    assert set(n.problems) == {"h", "i", "j"}
    assert "--view-map top=" in n.problems["h"] and "--type-map bystander=" in n.problems["i"]
    with pytest.raises(GaitdataError, match=r"2 recording\(s\) cannot be named: h: view 'top'"):
        n.check(["a", "h", "i"])
    m = casiab_names(v, CasiaBNaming({"*": "nm"}, {"top": "270"}))
    assert m.names["h"].view == "270" and m.names["i"].seq_type == "nm-01" and set(m.problems) == {"j"}
    with pytest.raises(GaitdataError, match="not a CASIA-B sequence type"):
        parse_casiab_type("normal-ses1")
    with pytest.raises(GaitdataError, match="three digits"):
        CasiaBNaming(view_map={"side": "90"})
    with pytest.raises(GaitdataError, match="letters/digits"):
        CasiaBNaming(type_map={"bag": "b-g"})


def test_casiab_subject_ids_sort_as_numbers():
    from gaitdata.gaitnames import casiab_subject_ids, parse_map

    ids = casiab_subject_ids(["s2", "s10", "s1"])
    assert ids == {"s1": "001", "s2": "002", "s10": "010"} and sorted(ids.values()) == ["001", "002", "010"]
    assert casiab_subject_ids(["bob", "alice"]) == {"alice": "001", "bob": "002"}
    assert casiab_subject_ids(["a1", "b1", "c2"]) == {"a1": "001", "b1": "002", "c2": "003"}  # numbers clash
    assert casiab_subject_ids(["p1234", "p7"]) == {"p7": "0007", "p1234": "1234"}
    assert parse_map(["normal=nm", "bag=bg, coat=cl"], "--type-map") == {
        "normal": "nm",
        "bag": "bg",
        "coat": "cl",
    }
    with pytest.raises(GaitdataError, match="NAME=CODE"):
        parse_map(["normal"], "--type-map")


def test_recording_without_pose_and_stale_files(root, tmp_path):
    from gaitdata.labels import read_label_meta, write_labels

    lab = read_labels(root, "toy")
    empty = lab[lab["video_id"] != "s01_v1"]
    frames = lab.loc[lab["video_id"] == "s01_v1", "frame_index"].unique()
    none = pd.DataFrame({"video_id": "s01_v1", "frame_index": frames, "person_index": -1, "has_person": False,
                         "teacher": "toy", "weights_hash": "none", "qa_flags": [[] for _ in frames]})  # fmt: skip
    write_labels(root, "toy_gap", pd.concat([empty, none], ignore_index=True), read_label_meta(root, "toy"))
    out = tmp_path / "og"
    export_gait_poses(root, "toy", out, layout="opengait")
    (out / "NOTES.txt").write_text("mine")
    first = {p.relative_to(out).as_posix() for p in out.rglob("*.pkl")}
    df = pd.read_csv(
        export_gait_poses(root, "toy_gap", out, layout="opengait", naming="casiab"), dtype={"path": str}
    )
    gap = df[df["video_id"] == "s01_v1"].iloc[0]
    assert pd.isna(gap["path"]) and gap["frames_with_pose"] == 0
    now = {p.relative_to(out).as_posix() for p in out.rglob("*.pkl")}
    assert now == set(df["path"].dropna()) and not now & first and len(first) == len(now) + 1
    assert not (out / "s00").exists() and (out / "NOTES.txt").read_text() == "mine"
    assert sorted(p.name for p in (out / "_frames").iterdir()) == sorted(
        f"{v}.csv" for v in df["video_id"] if v != "s01_v1"
    )


def test_gait_poses_cli_layouts(root, by_subject, tmp_path):
    from gaitdata.cli import cli

    base = ["export", "gait-poses", str(root.path), "--labels", "toy"]
    res = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "o"), "--layout", "opengait", "--naming", "casiab",
                                   "--split", "bysubj"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (
        "partition: 2 training, 1 test subjects" in res.output
        and (tmp_path / "o" / "partition.json").is_file()
    )
    res = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "g"), "--layout", "gaitgraph",
                                   "--type-map", "bag=cl", "--view-map", "front=180"])  # fmt: skip
    assert res.exit_code == 0, res.output
    names = pd.read_csv(tmp_path / "g" / "poses.csv")["image_name"]
    assert names.str.contains(r"-cl-01-(?:180|090)/").any() and not names.str.contains("-bg-").any()
    res = CliRunner().invoke(
        cli, [*base, "--out", str(tmp_path / "x"), "--layout", "gaitgraph", "--type-map", "bag=xx"]
    )
    assert isinstance(res.exception, GaitdataError) and "not nm/bg/cl" in str(res.exception)
    res = CliRunner().invoke(
        cli, [*base, "--out", str(tmp_path / "x"), "--layout", "gaitgraph", "--naming", "plain"]
    )
    assert isinstance(res.exception, GaitdataError) and "CASIA-B names" in str(res.exception)
