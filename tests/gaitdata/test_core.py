import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gaitdata.dataset import FRAME_COLUMNS, VIDEO_COLUMNS, DatasetRoot, validate
from gaitdata.errors import GaitdataError, MissingDependencyError, require
from gaitdata.metrics import oks, pck
from gaitdata.records import Extrinsics, Intrinsics, Pose
from gaitdata.schema import COCO17


def test_coco17_schema_is_consistent():
    assert COCO17.num_keypoints == 17
    perm = COCO17.flip_permutation()
    assert sorted(perm.tolist()) == list(range(17))
    assert (perm[perm] == np.arange(17)).all()  # an involution
    assert COCO17.keypoints[perm[COCO17.index("left_knee")]] == "right_knee"
    assert COCO17.skeleton_1based()[0] == [16, 14]
    assert type(COCO17).from_dict(COCO17.to_dict()) == COCO17


def test_records_validate_shapes():
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        Pose(bbox=(0, 0, 1, 1), score=1.0, keypoints=np.zeros((17, 2)))
    with pytest.raises(ValueError, match="confidences"):
        Pose(bbox=(0, 0, 1, 1), score=1.0, keypoints=np.full((17, 3), 2.0))
    with pytest.raises(ValueError, match="positive"):
        Intrinsics(width=0, height=10, fx=1, fy=1, cx=0, cy=0)
    assert Extrinsics().is_identity()
    k = Intrinsics(width=640, height=480, fx=600, fy=600, cx=319.5, cy=239.5).scaled(0.5, 0.5)
    assert (k.width, k.height) == (320, 240) and k.cx == pytest.approx(159.5)


def test_oks_and_pck():
    gt = np.random.default_rng(0).uniform(0, 100, (3, 17, 2))
    vis = np.full((3, 17), 2)
    assert np.allclose(oks(gt, gt, vis, area=1e4), 1.0)
    shifted = gt + 5
    assert (oks(shifted, gt, vis, area=1e4) < 1).all()
    assert np.isnan(oks(gt, gt, np.zeros((3, 17)), area=1e4)).all()
    assert pck(gt, gt, vis, ref_size=np.full(3, 100.0)) == 1.0
    assert pck(gt + 20, gt, vis, ref_size=np.full(3, 100.0), alpha=0.1) == 0.0


def test_require_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"gaitdata\[fancy\]"):
        require("no_such_module_xyz", "fancy")


def test_dataset_root_roundtrip_and_validate(tmp_path):
    root = DatasetRoot(tmp_path / "root")
    with pytest.raises(GaitdataError, match="not a gaitdata dataset root"):
        root.meta()
    root.init()
    assert root.keypoint_schema() == COCO17
    (root.path / "frames/v1/rgb").mkdir(parents=True)
    (root.path / "frames/v1/rgb/000000.jpg").write_bytes(b"x")
    videos = pd.DataFrame([{"video_id": "v1", "kind": "video", "status": "ok", "n_colour_frames": 2, "n_written": 1}])
    frames = pd.DataFrame(
        [
            {"video_id": "v1", "frame_index": 0, "colour_ts_ms": 0.0, "rgb_path": "frames/v1/rgb/000000.jpg", "status": "ok"},
            {"video_id": "v1", "frame_index": 1, "colour_ts_ms": 33.3, "status": "sampled_out"},
        ]
    )
    root.write_videos(videos)
    root.write_frames(frames)
    assert list(root.read_videos().columns) == list(VIDEO_COLUMNS)
    assert list(root.read_frames().columns) == list(FRAME_COLUMNS)
    report = validate(root)
    assert report.ok, report.errors
    assert report.counts["frames_written"] == 1
    (root.path / "frames/v1/rgb/000000.jpg").unlink()
    assert any("missing" in e for e in validate(root).errors)


def test_import_is_light_and_cli_lists_verbs():
    code = "import sys, gaitdata, gaitdata.cli; print(sorted(m for m in ('torch','mediapipe','fiftyone','pyrealsense2','onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    out = subprocess.run([sys.executable, "-m", "gaitdata", "--help"], capture_output=True, text=True, check=True).stdout
    for verb in ("extract", "label", "split", "export", "browse", "train", "evaluate"):
        assert verb in out
    out = subprocess.run([sys.executable, "-m", "gaitdata", "--version"], capture_output=True, text=True, check=True).stdout
    assert "0.1.0" in out
