import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import splits
from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.labels import read_labels, write_labels
from gaitdata.testing.roots import toy_root
from splits.audit import cross_pairs, phash_file
from splits.core import assign_groups


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return toy_root(
        tmp_path_factory.mktemp("splits") / "root", subjects=6, videos_per_subject=2, frames_per_video=6
    )


def _frames_per_video(root):
    f = root.read_frames()
    return f[f["status"] == "ok"].groupby("video_id").size()


def test_subject_split_has_no_leak_and_meets_frame_fractions(root):
    sp = splits.make_split(root, name="t_subject")
    assert sp.unit == "subject" and sp.weight == "frames" and sp.kind == "holdout"
    assert sp.part_names == ("train", "val", "test")
    owner = {}
    for s in sp.part_names:
        for subj in sp.subjects(s):
            assert owner.setdefault(subj, s) == s
    assert sorted(owner) == [f"s{i:02d}" for i in range(6)]
    videos = [v for s in sp.part_names for v in sp.videos(s)]
    assert sorted(videos) == sorted(root.read_videos()["video_id"]) and len(videos) == len(set(videos))
    # every video of a subject sits with its subject
    for s in sp.part_names:
        assert all(v.split("_")[0] in sp.subjects(s) for v in sp.videos(s))
    nf = _frames_per_video(root)
    total = nf.sum()
    for s in sp.part_names:
        c = sp.counts[s]
        frames = int(nf[sp.videos(s)].sum())
        assert c["frames"] == frames
        assert c["weight_fraction"] == pytest.approx(frames / total, abs=1e-6)
        assert c["group_fraction"] == pytest.approx(c["groups"] / 6, abs=1e-6)
    # the fraction of frames is met better than the naive 4/1/1 subject count would guarantee
    assert abs(sp.counts["train"]["weight_fraction"] - 0.7) < 0.1
    assert sp.part_of_video(sp.videos("test")[0]) == "test"
    assert sp.path == root.splits_dir / "t_subject.json"
    with pytest.deprecated_call():  # the former names still answer
        assert sp.split_names == sp.part_names
    with pytest.deprecated_call():
        assert sp.video_to_split() == sp.video_to_part()
    with pytest.deprecated_call():
        assert sp.split_of_video(sp.videos("val")[0]) == "val"


def test_rerun_reproduces_the_file_byte_for_byte(root):
    a = splits.make_split(root, seed=3, name="t_repro").path.read_bytes()
    b = splits.make_split(root, seed=3, name="t_repro").path.read_bytes()
    assert a == b
    loaded = splits.load_split(root, "t_repro")
    assert loaded.hash_ok and loaded.content_hash == json.loads(a)["content_hash"]
    assert loaded.to_json().encode() == a
    seeds = {
        splits.build_split(root, seed=s, by="video", fractions=(0.5, 0.5)).content_hash for s in range(4)
    }
    assert len(seeds) > 1  # the seed matters


def test_by_video_and_unknown_subjects(tmp_path):
    r = toy_root(tmp_path / "r", subjects=3, videos_per_subject=2, label_set=None, images=False)
    v = r.read_videos()
    v.loc[0, "subject"] = None
    r.write_videos(v)
    sp = splits.build_split(r, fractions=(0.5, 0.5))
    assert sp.unit == "video"
    with pytest.raises(GaitdataError, match="no subject.*--by video"):
        splits.build_split(r, by="subject")


def test_labelled_person_weights_and_stratify(root):
    sp = splits.make_split(root, labels="toy", by="video", fractions=(0.5, 0.5), stratify=("condition",),
                           name="t_strat", near_duplicates=False)  # fmt: skip
    assert sp.weight == "labelled_persons"
    lab = pd.read_parquet(root.label_path("toy"))
    persons = lab[lab["has_person"]].groupby("video_id").size()
    for s in sp.part_names:
        assert sp.counts[s]["labelled_persons"] == int(persons[sp.videos(s)].sum())
        strata = sp.counts[s]["strata"]
        assert set(strata) == {"bag", "normal"} and all(n > 0 for n in strata.values())
        assert sp.counts[s]["weight_fraction"] == pytest.approx(0.5, abs=0.1)


def test_assignment_balances_strata():
    w = np.ones(8)
    strata = np.zeros((8, 2))
    strata[:4, 0] = 1  # four groups of view A, four of view B
    strata[4:, 1] = 1
    a = assign_groups(w, strata, np.array([0.5, 0.5]), seed=0)
    for s in (0, 1):
        assert strata[a == s].sum(axis=0).tolist() == [2.0, 2.0]
    a2 = assign_groups(w, strata, np.array([0.5, 0.5]), seed=0)
    assert (a == a2).all()


def test_every_split_gets_weight_and_zero_fractions_stay_empty():
    w = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 5.0, 5.0])
    for seed in range(5):
        a = assign_groups(w, None, np.full(3, 1 / 3), seed=seed)
        assert sorted(a[w > 0].tolist()) == [0, 1, 2]  # one weighted group per split
    a = assign_groups(np.arange(1.0, 7.0), None, np.array([0.8, 0.2, 0.0]), seed=0)
    assert 2 not in a.tolist() and {0, 1} <= set(a.tolist())


def test_kfold(root):
    sp = splits.make_split(root, folds=3, name="t_k3", near_duplicates=False)
    assert sp.kind == "kfold" and sp.folds == 3 and sp.part_names == ("fold0", "fold1", "fold2")
    all_v = set(root.read_videos()["video_id"])
    for k in range(3):
        train, test = sp.fold(k)
        assert set(train).isdisjoint(test) and set(train) | set(test) == all_v
        assert {s for v in test for s in [v.split("_")[0]]}.isdisjoint({v.split("_")[0] for v in train})
    fr = [sp.counts[f"fold{k}"]["weight_fraction"] for k in range(3)]
    assert sum(fr) == pytest.approx(1.0, abs=1e-5) and max(fr) - min(fr) < 0.2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fractions": (0.5, 0.6)}, "sum to 1"),
        ({"fractions": (1.2, -0.2)}, "non-negative"),
        ({"fractions": (1.0,)}, "at least two"),
        ({"folds": 7}, "only 6 subject"),
        ({"folds": 1}, "at least 2"),
        ({"by": "frame"}, "--by must be"),
        ({"labels": "nope"}, "label set 'nope' not found"),
        ({"stratify": ("colour",)}, "not a recording column"),
        ({"name": "../evil"}, "split name"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(root, kwargs, match):
    before = sorted(p.name for p in root.splits_dir.glob("*")) if root.splits_dir.exists() else []
    with pytest.raises(GaitdataError, match=match):
        splits.make_split(root, **{"name": "t_bad", **kwargs})
    after = sorted(p.name for p in root.splits_dir.glob("*")) if root.splits_dir.exists() else []
    assert after == before


def test_load_unknown_split_lists_available(root):
    splits.make_split(root, name="t_listed", near_duplicates=False)
    with pytest.raises(GaitdataError, match="split 'missing' not found.*t_listed"):
        splits.load_split(root, "missing")
    with pytest.raises(GaitdataError, match="not a gaitdata dataset root"):
        splits.make_split(root.path / "nowhere")


def test_phash_pairs_across_groups_only():
    h = np.array([0, 0b111, 0, (1 << 64) - 1, 0b1], dtype=np.uint64)
    g = np.array([0, 1, 0, 1, 1])
    i, j, d = cross_pairs(h, g, threshold=3, block=2)
    got = sorted(zip(i.tolist(), j.tolist(), d.tolist(), strict=True))
    # 0~1 (3 bits), 0~4 (1), 1~2 (3), 2~4 (1); never 0~2 (same group) nor anything with the all-ones hash
    assert got == [(0, 1, 3), (0, 4, 1), (1, 2, 3), (2, 4, 1)]
    # multi-index hashing (large inputs) finds exactly what the exhaustive comparison finds
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, 3000, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    for _ in range(100):  # plant neighbours at 0..6 bits
        a, b = rng.integers(0, len(h), 2)
        v = int(h[a])
        for bit in rng.choice(64, rng.integers(0, 7), replace=False):
            v ^= 1 << int(bit)
        h[b] = np.uint64(v)
    g = rng.integers(0, 3, len(h))
    exhaustive = cross_pairs(h, g, 4, brute_force_max=10**9)
    banded = cross_pairs(h, g, 4, brute_force_max=0)
    assert len(exhaustive[0]) > 20
    assert all((x == y).all() for x, y in zip(exhaustive, banded, strict=True))


@pytest.mark.parametrize("region", ["frame", "person"])
def test_audit_catches_a_deliberately_leaky_split(tmp_path, region):
    r = toy_root(tmp_path / "leaky", subjects=4, videos_per_subject=2, frames_per_video=6)
    sp = splits.make_split(r, name="leaky", fractions=(0.5, 0.5))
    assert splits.audit(r, "leaky").ok
    train_v, test_v = sp.videos("train")[0], sp.videos("test")[0]
    # 1) the same video in train and test
    d = json.loads(sp.path.read_text())
    d["splits"]["test"]["videos"].append(train_v)
    sp.path.write_text(json.dumps(d))
    # 2) a frame copied from a train video into a test video (re-encoded, so not byte-identical)
    import cv2

    src = r.path / DatasetRoot.rgb_relpath(train_v, 0)
    dst = r.path / DatasetRoot.rgb_relpath(test_v, 0)
    cv2.imwrite(str(dst), cv2.imread(str(src)), [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert src.read_bytes() != dst.read_bytes()
    if region == "person":  # the copied frame is labelled like its original (same person box)
        lab = read_labels(r, "toy")
        is_src = (lab["video_id"] == train_v) & (lab["frame_index"] == 0)
        is_dst = (lab["video_id"] == test_v) & (lab["frame_index"] == 0)
        copy = lab[is_src].assign(video_id=test_v)
        write_labels(r, "toy", pd.concat([lab[~is_dst], copy]), {})
    with pytest.raises(splits.LeakageError, match=f"{train_v} in train\\+test") as exc:
        splits.audit(r, "leaky", region=region)
    assert exc.value.report.region == region
    rep = exc.value.report
    assert not rep.ok and train_v in rep.video_overlap
    assert train_v.split("_")[0] in rep.subject_overlap
    assert any("edited" in w for w in rep.warnings)  # the content hash no longer matches
    pairs = {(p.path_a, p.path_b) for p in rep.near_duplicates}
    want = tuple(sorted([DatasetRoot.rgb_relpath(train_v, 0), DatasetRoot.rgb_relpath(test_v, 0)]))
    assert want in pairs or want[::-1] in pairs
    assert (
        phash_file(src) != 0 and bin(phash_file(src) ^ phash_file(dst)).count("1") <= splits.PHASH_THRESHOLD
    )
    box = (10.0, 5.0, 30.0, 30.0)
    assert bin(phash_file(src, box=box) ^ phash_file(dst, box=box)).count("1") <= splits.PHASH_THRESHOLD
    assert bin(phash_file(src, box=box) ^ phash_file(src)).count("1") > splits.PHASH_THRESHOLD
    # the CLI exits non-zero and names the paths
    from gaitdata.cli import cli

    res = CliRunner().invoke(
        cli, ["audit", str(r.path), "--split", "leaky", "--all-frames", "--region", region]
    )
    assert res.exit_code == 1, res.output
    assert "more than one part" in res.output and f"{test_v}/rgb/000000.jpg" in res.output


def test_split_refuses_near_duplicates_when_strict(tmp_path):
    r = toy_root(tmp_path / "dups", subjects=3, videos_per_subject=1, frames_per_video=6)
    src = r.path / DatasetRoot.rgb_relpath("s00_v0", 0)
    for v in ("s01_v0", "s02_v0"):
        shutil.copyfile(src, r.path / DatasetRoot.rgb_relpath(v, 0))
    sp = splits.make_split(r, name="lenient", region="frame")  # near-duplicates are warnings by default
    assert sp.audit_summary["near_duplicates"]["pairs"] == 3
    assert any("near-duplicate" in w for w in sp.audit_summary["warnings"])
    with pytest.raises(splits.LeakageError, match="near-duplicate"):
        splits.make_split(r, name="strict", strict=True, region="frame")
    assert not (r.splits_dir / "strict.json").exists()


def test_subject_overlap_is_a_warning_for_video_splits(root):
    sp = splits.make_split(root, by="video", name="t_byvideo", fractions=(0.5, 0.5), near_duplicates=False)
    rep = splits.audit(root, "t_byvideo", near_duplicates=False)
    assert rep.ok
    shared = {s for s in sp.subjects("train") if s in sp.subjects("test")}
    assert set(rep.subject_overlap) == shared
    if shared:
        assert any("--by video" in w for w in rep.warnings)


def test_audit_statistics_match_the_tables(root):
    splits.make_split(root, name="t_stats", near_duplicates=False)
    rep = splits.audit(root, "t_stats", labels="toy", near_duplicates=False)
    sp = splits.load_split(root, "t_stats")
    lab = pd.read_parquet(root.label_path("toy"))
    nf = _frames_per_video(root)
    stats = {row["split"]: row for row in rep.stats}
    for s in sp.part_names:
        sub = lab[lab["video_id"].isin(sp.videos(s))]
        persons = sub[sub["has_person"]]
        row = stats[s]
        assert row["videos"] == len(sp.videos(s)) and row["subjects"] == len(sp.subjects(s))
        assert row["frames"] == int(nf[sp.videos(s)].sum())
        assert row["labelled_persons"] == len(persons)
        assert row["mean_score"] == pytest.approx(persons["score"].mean(), abs=1e-4)
        conf = np.concatenate([np.asarray(k)[2::3] for k in persons["keypoints"]])
        assert row["mean_joint_confidence"] == pytest.approx(conf.mean(), abs=1e-4)
        n_bystander = sum("bystander" in list(f) for f in sub["qa_flags"])
        assert row["qa_flags"].get("bystander", 0) == n_bystander
    assert rep.stats_frame().shape[0] == 3


def test_split_cli(root):
    from gaitdata.cli import cli

    res = CliRunner().invoke(
        cli, ["split", str(root.path), "--fractions", "0.6,0.4", "--name", "t_cli", "--seed", "2"]
    )
    assert res.exit_code == 0, res.output
    assert "saved" in res.output and (root.splits_dir / "t_cli.json").is_file()
    assert splits.load_split(root, "t_cli").part_names == ("train", "test")
    res = CliRunner().invoke(cli, ["split", str(root.path), "--fractions", "0.6,0.6", "--name", "t_cli2"])
    assert res.exit_code != 0 and not (root.splits_dir / "t_cli2.json").exists()


def test_audit_warns_when_the_root_changed_since_the_split(tmp_path):
    r = toy_root(tmp_path / "r", subjects=3, videos_per_subject=1, frames_per_video=4, images=False)
    splits.make_split(r, fractions=(0.5, 0.5), near_duplicates=False)
    assert not splits.audit(r, "default", near_duplicates=False).warnings
    v = r.read_videos()
    v.loc[0, "view"] = "back"
    r.write_videos(v)
    rep = splits.audit(r, "default", near_duplicates=False)
    assert rep.ok and any("changed since the split" in w for w in rep.warnings)
