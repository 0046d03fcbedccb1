import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import splits
from gaitdata.errors import GaitdataError
from gaitdata.gaitposes import export_gait_poses, load_gait_poses
from gaitdata.labels import read_labels
from gaitdata.schema import COCO17
from splits.toy import toy_root


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
    import pickle

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
