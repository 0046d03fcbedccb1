"""The mediapipe (BlazePose) teacher against synthetic ground truth, multi-person crops, the runner.

Measured on a 16-frame side walk at 320x240 (person ~140 px tall): PCK@0.1 (of the box height)
0.96 in both video and static mode, mean error 3.2-3.3 px, every frame detected. The assertions leave a margin below that.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from _label_roots import root_from_synth

from gaitdata.errors import GaitdataError
from gaitdata.labels import keypoints_array, read_label_meta, read_labels
from gaitdata.metrics import pck
from pseudolabel.registry import create_teacher

pytestmark = pytest.mark.mediapipe

synth = pytest.importorskip("gaitdata.synth")
if not hasattr(synth, "render_walk"):
    pytest.skip("gaitdata.synth.render_walk is not available", allow_module_level=True)


@pytest.fixture(scope="module")
def side_walk():
    return synth.render_walk(synth.WalkSpec(n_frames=16, colour_size=(320, 240), depth_size=(320, 240), seed=1))


@pytest.fixture(scope="module")
def crowded_walk():
    spec = synth.WalkSpec(n_frames=12, colour_size=(320, 240), depth_size=(320, 240), seed=1, bystander=True)
    return synth.render_walk(spec)


def _measure(rec, poses) -> tuple[float, float, float]:
    gt = rec.keypoints_2d
    det = np.array([len(p) > 0 for p in poses])
    pred = np.stack([p[0].keypoints if p else np.full((17, 3), np.nan, np.float32) for p in poses])
    box_h = np.ptp(gt[..., 1], axis=1) * 1.15  # joint extent + crown/soles
    vis = gt[..., 2] > 0
    err = np.linalg.norm(pred[det, :, :2] - gt[det, :, :2], axis=-1)[vis[det]]
    return float(det.mean()), pck(pred[det], gt[det], gt[det, :, 2], box_h[det], 0.1), float(err.mean())


@pytest.mark.parametrize("mode", ["video", "static"])
def test_keypoints_agree_with_ground_truth(side_walk, mode) -> None:
    teacher = create_teacher("mediapipe", mode=mode)
    poses = teacher.predict(list(side_walk.colour))
    detection, pck10, err = _measure(side_walk, poses)
    print(f"mediapipe {mode}: detection {detection:.2f}, PCK@0.1 {pck10:.3f}, mean error {err:.1f} px")
    assert detection >= 0.9
    assert pck10 >= 0.90  # measured 0.96
    assert err <= 6.0  # measured ~3 px
    for p in (p for ps in poses for p in ps):
        assert p.keypoints.shape == (17, 3) and 0.0 <= p.keypoints[:, 2].min() <= p.keypoints[:, 2].max() <= 1.0
        assert 0.5 <= p.score <= 1.0
        x, y, w, h = p.bbox
        assert x >= 0 and y >= 0 and x + w <= 320 and y + h <= 240 and h > 100


def test_weights_hash_and_reset(side_walk) -> None:
    import mediapipe

    from pseudolabel.teachers.mediapipe import bundled_model_files

    teacher = create_teacher("mediapipe")
    h = hashlib.sha256()
    for f in bundled_model_files():
        h.update(f.name.encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    assert teacher.weights_hash == h.hexdigest()
    assert {f.name for f in bundled_model_files()} == {"pose_detection.tflite", "pose_landmark_full.tflite"}
    assert mediapipe.__version__ == "0.10.14"
    first = teacher.predict(list(side_walk.colour[:3]))
    teacher.reset()
    again = teacher.predict(list(side_walk.colour[:3]))
    assert np.allclose(first[0][0].keypoints, again[0][0].keypoints)  # a fresh start is deterministic
    assert teacher.predict([np.full((240, 320, 3), 128, np.uint8)]) == [[]]  # nobody: no pose


def test_joints_off_the_image_get_low_confidence(side_walk) -> None:
    teacher = create_teacher("mediapipe", mode="static")
    cut = np.ascontiguousarray(side_walk.colour[8, :165])  # the feet are below this image's bottom
    (pose,) = teacher.predict([cut])[0]
    ankles = pose.keypoints[[15, 16]]
    assert (ankles[:, 1] >= 165).any()
    assert (ankles[ankles[:, 1] >= 165, 2] <= 0.05).all()
    assert pose.keypoints[[5, 6], 2].min() > 0.5  # shoulders stay confident


def test_factory_rejects_weights_and_cuda() -> None:
    with pytest.raises(GaitdataError, match="bundled"):
        create_teacher("mediapipe", weights="model.pth")
    with pytest.raises(GaitdataError, match="CPU only"):
        create_teacher("mediapipe", device="cuda")
    with pytest.raises(ValueError, match="mode"):
        create_teacher("mediapipe", mode="fast")


def test_runner_labels_subject_and_bystander_from_depth_boxes(tmp_path, crowded_walk) -> None:
    from pseudolabel.runner import label

    rec = crowded_walk
    root = root_from_synth(tmp_path / "root", {"s01_walk": rec})
    s = label(root.path, teacher="mediapipe", label_set="mp", boxes="depth", progress=False)
    df = read_labels(root, "mp")
    n = len(rec.colour)
    assert s.n_frames == n and s.n_no_person == 0
    subject = df[df["is_subject"].fillna(False)]
    assert subject["frame_index"].nunique() == n and not subject["frame_index"].duplicated().any()
    gt = rec.keypoints_2d[subject["frame_index"].to_numpy()]
    err = np.linalg.norm(keypoints_array(subject, root.keypoint_schema().num_keypoints)[..., :2] - gt[..., :2], axis=-1).mean()
    assert err < 8.0
    others = df[df["has_person"] & ~df["is_subject"].fillna(True)]
    assert len(others) >= n // 2  # the bystander is labelled too, flagged as not the subject
    by = np.asarray(rec.meta["bystander_keypoints_2d"])[others["frame_index"].to_numpy()]
    assert np.linalg.norm(keypoints_array(others, root.keypoint_schema().num_keypoints)[..., :2] - by[..., :2], axis=-1).mean() < 10.0
    meta = read_label_meta(root, "mp")
    assert meta["boxes"]["proposer"] == "depth" and meta["teacher_config"]["license"] == "Apache-2.0"
    assert len(meta["weights_hash"]) == 64


@pytest.mark.mediapipe
def test_process_exits_with_a_live_teacher():
    """A teacher left open at exit must not block interpreter shutdown (mediapipe graphs can)."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from pseudolabel.registry import create_teacher\n"
        "t = create_teacher('mediapipe')\n"
        "t.predict([np.zeros((64, 64, 3), np.uint8)])\n"
        "print('done')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "done"
