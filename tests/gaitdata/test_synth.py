"""The synthetic walker: gait model, geometry, cameras, timing knobs, visibility, sidecars, sample set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gaitdata.records import Intrinsics
from gaitdata.synth import (
    Appearance,
    WalkSpec,
    ground_truth_labels,
    load_ground_truth,
    render_walk,
    save_ground_truth,
    sidecar_path,
    write_ground_truth_labels,
)
from gaitdata.synth.body import body_prims
from gaitdata.synth.gait import (
    ANKLE_KEYS,
    HIP_KEYS,
    KNEE_KEYS,
    BodyDims,
    FourierCurve,
    GaitCurves,
    skeleton_at,
)
from gaitdata.synth.raycast import Buffers, Camera, Material, Prim, cast

SMALL = {"colour_size": (320, 240), "depth_size": (240, 180)}
J = {name: i for i, name in enumerate(
    ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
     "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
     "right_ankle"))}  # fmt: skip


@pytest.fixture(scope="module")
def side_walk():
    return render_walk(WalkSpec(seed=3, n_frames=12, **SMALL))


# ---- gait model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("keys", [HIP_KEYS, KNEE_KEYS, ANKLE_KEYS])
def test_fourier_fit_is_periodic_and_passes_near_the_keys(keys):
    f = FourierCurve.fit(keys)
    p = np.linspace(0, 1, 201)
    assert f(0.0) == pytest.approx(float(f(1.0)), abs=1e-9)
    assert np.allclose(f(p), f(p + 1.0))
    err = [abs(float(f(x)) - y) for x, y in keys]
    assert max(err) < 4.0, err  # degrees
    assert np.abs(np.diff(f(p))).max() < 3.0  # smooth: no jumps between samples 0.005 cycle apart


def _flexion(sk, side: str) -> float:
    """Hip flexion (degrees) measured from the skeleton: thigh angle from vertical in the pelvis' sagittal plane."""
    thigh = sk.joints[f"{side}_knee"] - sk.joints[f"{side}_hip"]
    f = sk.frames["pelvis"][:, 2]
    return float(np.degrees(np.arctan2(thigh @ f, -thigh[1])))


def test_left_leg_runs_half_a_cycle_behind_the_right():
    dims = BodyDims(1.75)
    heading = np.array([1.0, 0.0, 0.0])
    cycle = 1.1
    curves = GaitCurves.default()
    for t in (0.0, 0.13, 0.4, 0.77):
        a = skeleton_at(t, dims, np.zeros(3), heading)
        b = skeleton_at(t + cycle / 2, dims, np.zeros(3), heading)
        assert _flexion(a, "right") == pytest.approx(_flexion(b, "left"), abs=0.05)
        assert _flexion(a, "right") == pytest.approx(float(curves.hip(t / cycle)), abs=0.05)
        # knee flexion from the skeleton matches the curve
        th = a.joints["right_knee"] - a.joints["right_hip"]
        sh = a.joints["right_ankle"] - a.joints["right_knee"]
        ang = np.degrees(np.arccos(th @ sh / np.linalg.norm(th) / np.linalg.norm(sh)))
        assert ang == pytest.approx(float(curves.knee(t / cycle)), abs=0.05)


def test_feet_touch_the_floor_every_frame():
    app = Appearance.from_seed(5)
    for t in np.linspace(0, 1.1, 23):
        sk = skeleton_at(float(t), app.dims, np.array([0.0, 0.0, -4.0]), np.array([1.0, 0.0, 0.0]))
        prims = body_prims(sk, app)
        lows = []
        for p in prims:  # lowest point of each volume: end spheres (squashed along their 3rd axis)
            for c, r in ((p.a, p.ra), (p.a + p.E[:, 0] * p.length, p.rb)):
                ext = r * np.sqrt((p.E[1, 0]) ** 2 + (p.k2 * p.E[1, 1]) ** 2 + (p.k3 * p.E[1, 2]) ** 2)
                lows.append(c[1] - ext)
        assert min(lows) == pytest.approx(0.0, abs=0.004)  # touches, never sinks in
        assert min(lows) > -0.004


# ---- ray casting ---------------------------------------------------------------------------------


def _cam(w=200, h=150, f=180.0) -> Camera:
    return Camera(Intrinsics(w, h, f, f, (w - 1) / 2, (h - 1) / 2), np.eye(3), np.zeros(3))


def _cast(prims, cam):
    buf = Buffers(z=np.full((cam.height, cam.width), np.inf), ids=np.full((cam.height, cam.width), -1, np.int16),
                  normal=np.zeros((cam.height, cam.width, 3)), albedo=np.zeros((cam.height, cam.width, 3), np.float32),
                  spec=np.zeros((cam.height, cam.width), np.float32))  # fmt: skip
    cast(cam, prims, buf, True, cam.rays())
    return buf


def test_raycast_sphere_and_capsule_depth_are_exact():
    cam = _cam()
    sphere = Prim(a=np.array([0.0, 0.0, 2.0]), E=np.eye(3), length=0.0, ra=0.3, rb=0.3)
    buf = _cast([sphere], cam)
    xs, ys = cam.rays()
    X, Y = np.meshgrid(xs, ys)
    # analytic ray-sphere: |t d - c|^2 = r^2 with d = (x, y, 1)
    dd = X**2 + Y**2 + 1
    b = 2.0 * 2.0
    disc = b * b - 4 * dd * (4.0 - 0.09)
    with np.errstate(invalid="ignore"):
        t = (b - np.sqrt(disc)) / (2 * dd)
    hit = disc >= 0
    assert (np.isfinite(buf.z) == hit).all()
    assert np.allclose(buf.z[hit], t[hit], atol=1e-9)
    # normals point back to the camera at the centre pixel
    cy, cx = cam.height // 2, cam.width // 2
    assert buf.normal[cy, cx, 2] < -0.99
    # a capsule lying across the view: the centre column sees z = Z - r
    E = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    cap = Prim(a=np.array([-0.4, 0.0, 3.0]), E=E, length=0.8, ra=0.1, rb=0.1)
    buf = _cast([cap], _cam(201, 151))
    assert buf.z[75, 100] == pytest.approx(2.9, abs=1e-9)
    # z-buffer: the nearer of two overlapping primitives wins
    near = Prim(a=np.array([0.0, 0.0, 1.5]), E=np.eye(3), length=0.0, ra=0.05, rb=0.05, part="near")
    buf = _cast([cap, near], _cam(201, 151))
    assert buf.ids[75, 100] == 1 and buf.z[75, 100] == pytest.approx(1.45, abs=1e-9)


def test_raycast_tapered_cone_silhouette_and_ellipsoid():
    cam = _cam(201, 151, 300.0)
    cone = Prim(
        a=np.array([-0.3, 0.0, 3.0]), E=np.eye(3), length=0.6, ra=0.12, rb=0.05, material=Material((1, 0, 0))
    )
    buf = _cast([cone], cam)
    rows = np.isfinite(buf.z).sum(0)  # silhouette height per column: thick end wider than thin end
    assert rows[70] == pytest.approx(24, abs=2) and rows[130] == pytest.approx(10, abs=2)
    assert rows[50] == 0 and rows[140] == 0 and (np.diff(rows[70:131]) <= 0).all()  # tapers monotonically
    ell = Prim(a=np.array([0.0, 0.0, 2.0]), E=np.eye(3), length=0.0, ra=0.2, rb=0.2, k2=0.5, k3=0.25)
    buf = _cast([ell], cam)
    assert buf.z[75, 100] == pytest.approx(2.0 - 0.05, abs=1e-9)  # depth radius 0.2 * 0.25
    h = np.isfinite(buf.z[:, 100]).sum()
    w = np.isfinite(buf.z[75, :]).sum()
    assert h == pytest.approx(w / 2, abs=2)  # vertical radius is half the horizontal one


# ---- rendered walk: ground truth, depth, registration --------------------------------------------


def test_keypoints_are_the_projection_of_the_3d_joints(side_walk):
    rec = side_walk
    k = rec.colour_intrinsics
    P = rec.joints_3d
    u = k.fx * P[..., 0] / P[..., 2] + k.cx + 0.5
    v = k.fy * P[..., 1] / P[..., 2] + k.cy + 0.5
    vis = rec.keypoints_2d[..., 2] > 0
    assert vis.mean() > 0.9
    assert np.allclose(rec.keypoints_2d[..., 0][vis], u[vis], atol=1e-6)
    assert np.allclose(rec.keypoints_2d[..., 1][vis], v[vis], atol=1e-6)
    assert set(np.unique(rec.keypoints_2d[..., 2])) <= {0.0, 1.0, 2.0}


def test_depth_at_body_pixels_is_the_surface_in_front_of_the_joint(side_walk):
    rec = side_walk
    scale = rec.depth_scale
    checked = 0
    for i in range(len(rec.colour)):
        for name in ("right_hip", "right_knee", "right_shoulder"):
            x, y, v = rec.keypoints_2d[i, J[name]]
            if v != 2:  # e.g. the swinging hand passes in front of the hip
                continue
            checked += 1
            z = rec.depth_registered[i, int(y), int(x)] * scale
            jz = rec.joints_3d[i, J[name], 2]
            assert jz - 0.13 < z < jz, (name, z, jz)  # the limb's front surface, within its radius
    assert checked >= 25
    # colour pixel on the person differs from the background; wall is far
    assert rec.depth_registered[:, 5, 5].min() * scale > 5.0


def test_depth_registered_agrees_with_the_depth_camera_through_the_extrinsic(side_walk):
    rec = side_walk
    assert not rec.depth_to_colour.is_identity()
    kd, kc = rec.depth_intrinsics, rec.colour_intrinsics
    R, t = rec.depth_to_colour.R, rec.depth_to_colour.t
    errs = []
    for i in (0, 5, 11):
        d = rec.depth[i].astype(np.float64) * rec.depth_scale
        # body pixels: nearer than 5 m, away from depth edges
        body = (d > 0) & (d < 5.0)
        gy, gx = np.gradient(d)
        smooth = (np.abs(gx) < 0.01) & (np.abs(gy) < 0.01)
        vs, us = np.nonzero(body & smooth)
        assert len(us) > 50
        sel = np.linspace(0, len(us) - 1, 40).astype(int)
        us, vs = us[sel], vs[sel]
        z = d[vs, us]
        p = np.stack([(us - kd.cx) / kd.fx * z, (vs - kd.cy) / kd.fy * z, z], axis=1)
        pc = p @ R.T + t
        uc = np.round(kc.fx * pc[:, 0] / pc[:, 2] + kc.cx).astype(int)
        vc = np.round(kc.fy * pc[:, 1] / pc[:, 2] + kc.cy).astype(int)
        zr = rec.depth_registered[i, vc, uc] * rec.depth_scale
        errs += list(np.abs(zr - pc[:, 2]))
    errs = np.array(errs)
    assert np.median(errs) < 0.004 and np.quantile(errs, 0.9) < 0.015, np.quantile(errs, [0.5, 0.9, 1.0])


def test_drops_offset_and_jitter_give_exact_frame_numbers_and_timestamps():
    spec = WalkSpec(n_frames=10, fps=25.0, drop_colour=(3, 7), drop_depth=(0,), depth_offset_ms=6.5, t0_ms=500.0,
                    colour_size=(96, 72), depth_size=(64, 48))  # fmt: skip
    rec = render_walk(spec)
    assert rec.colour_frame_numbers.tolist() == [0, 1, 2, 4, 5, 6, 8, 9]
    assert rec.depth_frame_numbers.tolist() == list(range(1, 10))
    assert np.allclose(rec.colour_ts_ms, 500.0 + 40.0 * rec.colour_frame_numbers)
    assert np.allclose(rec.depth_ts_ms, 506.5 + 40.0 * rec.depth_frame_numbers)
    assert len(rec.keypoints_2d) == len(rec.colour) == 8 and len(rec.depth) == 9
    j = render_walk(
        WalkSpec(n_frames=30, jitter_ms=2.0, drop_prob=0.2, seed=4, colour_size=(64, 48), depth_size=(64, 48))
    )
    for ts, nums in ((j.colour_ts_ms, j.colour_frame_numbers), (j.depth_ts_ms, j.depth_frame_numbers)):
        assert (np.diff(ts) > 0).all() and (np.diff(nums) > 0).all()
        dev = ts - (1000.0 + nums * 1000.0 / 30.0)
        assert 0 < np.abs(dev).max() <= 0.4 * 1000.0 / 30.0
    assert 15 < len(j.colour) < 30 and j.colour_frame_numbers.tolist() != j.depth_frame_numbers.tolist()


def test_rendering_is_deterministic_per_seed():
    a = render_walk(
        WalkSpec(
            seed=11,
            n_frames=3,
            depth_noise_mm=2.0,
            depth_holes=0.01,
            colour_size=(96, 72),
            depth_size=(64, 48),
        )
    )
    b = render_walk(
        WalkSpec(
            seed=11,
            n_frames=3,
            depth_noise_mm=2.0,
            depth_holes=0.01,
            colour_size=(96, 72),
            depth_size=(64, 48),
        )
    )
    c = render_walk(WalkSpec(seed=12, n_frames=3, colour_size=(96, 72), depth_size=(64, 48)))
    assert np.array_equal(a.colour, b.colour) and np.array_equal(a.depth, b.depth)
    assert np.array_equal(a.keypoints_2d, b.keypoints_2d)
    assert Appearance.from_seed(11) != Appearance.from_seed(12)
    assert not np.array_equal(a.colour, c.colour)
    # noise and holes were applied to the depth stream only
    assert (a.depth == 0).mean() > 0.005 and (a.depth_registered > 0).all()


def test_visibility_far_side_joints_are_hidden_in_a_side_view(side_walk):
    v = side_walk.keypoints_2d[..., 2]
    # walking left -> right the person's right side faces the camera
    for near, far in (
        ("right_hip", "left_hip"),
        ("right_shoulder", "left_shoulder"),
        ("right_ear", "left_ear"),
    ):
        assert (v[:, J[near]] == 2).mean() >= 0.75, near  # the swinging hand may pass in front of the hip
        assert (v[:, J[far]] == 1).all(), far  # behind the torso / head
    front = render_walk(WalkSpec(direction="toward", seed=3, n_frames=4, **SMALL))
    fv = front.keypoints_2d[..., 2]
    for name in ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "nose", "left_eye", "right_eye"):
        assert (fv[:, J[name]] == 2).all(), name
    # facing the camera the person's left side is on the image's right
    assert (front.keypoints_2d[:, J["left_hip"], 0] > front.keypoints_2d[:, J["right_hip"], 0]).all()


def test_out_of_view_joints_get_v0_and_a_bystander_has_its_own_ground_truth():
    rec = render_walk(
        WalkSpec(
            n_frames=48, fps=9.0, bystander=True, colour_size=(96, 72), depth_size=(64, 48), with_depth=False
        )
    )
    v = rec.keypoints_2d[..., 2]
    assert (v[0] == 0).all() and (v[-1] == 0).all()  # starts and ends out of view
    assert (v > 0).any(axis=1).sum() > 10
    assert (rec.keypoints_2d[v == 0][:, :2] == 0).all()
    by = rec.meta["bystander_keypoints_2d"]
    assert by.shape == rec.keypoints_2d.shape and (by[..., 2] > 0).any()
    boxes = rec.meta["bboxes"]
    assert (v[boxes[:, 3] == 0] == 0).all() and (boxes[(v > 0).sum(1) > 10, 3] > 10).all()


def test_default_walker_is_at_least_200_px_tall():
    for direction in ("left_to_right", "toward"):
        # 12 frames spanning the same walk as the default 48 frames at 30 fps
        rec = render_walk(WalkSpec(direction=direction, n_frames=12, fps=30.0 * 11 / 47, with_depth=False, seed=1,
                                   appearance=Appearance(height=1.55)))  # fmt: skip
        h = rec.meta["bboxes"][:, 3]
        assert h.min() >= 200, (direction, h.min())


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="direction"):
        WalkSpec(direction="sideways")
    with pytest.raises(ValueError, match="n_frames"):
        WalkSpec(n_frames=0)
    with pytest.raises(ValueError, match="drop_prob"):
        WalkSpec(drop_prob=1.5)
    assert WalkSpec(direction="across").direction == "left_to_right"


# ---- sidecars and the ground-truth label set -------------------------------------------------------


def test_sidecar_round_trip(tmp_path, side_walk):
    path = tmp_path / "walk.bag"
    out = save_ground_truth(side_walk, path)
    assert out == sidecar_path(path) == tmp_path / "walk.bag.gt.npz"
    gt = load_ground_truth(path)
    assert np.array_equal(gt["keypoints_2d"], side_walk.keypoints_2d)
    assert np.array_equal(gt["colour_frame_numbers"], side_walk.colour_frame_numbers)
    assert gt["subject"] == side_walk.subject and gt["meta"]["direction"] == "left_to_right"
    assert np.array_equal(gt["meta"]["bboxes"], side_walk.meta["bboxes"])
    with pytest.raises(FileNotFoundError, match="sidecar"):
        load_ground_truth(tmp_path / "other.bag")


def _fake_root(tmp_path, rec, src, resize: float):
    """A dataset root as extraction would write it: every other frame, frames resized."""
    from gaitdata.dataset import DatasetRoot

    root = DatasetRoot(tmp_path / "root")
    root.init()
    H, W = rec.colour.shape[1:3]
    root.write_videos(pd.DataFrame([{
        "video_id": "v1", "source_path": str(src), "kind": "bag", "status": "ok", "n_colour_frames": len(rec.colour),
        "width": int(W * resize), "height": int(H * resize), "source_width": W, "source_height": H,
    }]))  # fmt: skip
    rows = []
    for i, n in enumerate(rec.colour_frame_numbers):
        ok = i % 2 == 0
        rows.append({"video_id": "v1", "frame_index": i, "colour_frame_number": int(n), "status": "ok" if ok else "sampled_out",
                     "rgb_path": f"frames/v1/rgb/{i:06d}.jpg" if ok else None})  # fmt: skip
    root.write_frames(pd.DataFrame(rows))
    return root


def test_ground_truth_labels_match_frames_and_scale(tmp_path):
    rec = render_walk(
        WalkSpec(seed=2, n_frames=60, fps=15.0, drop_colour=(1,), colour_size=(160, 120), depth_size=(64, 48))
    )
    src = tmp_path / "rec.bag"
    save_ground_truth(rec, src)
    root = _fake_root(tmp_path, rec, src, 0.5)
    df = ground_truth_labels(root)
    assert list(df["frame_index"]) == list(range(0, len(rec.colour), 2))
    person = df[df["has_person"]]
    empty = df[~df["has_person"]]
    assert len(person) and len(empty)  # the walker leaves the view at the end of a long walk
    assert (empty["person_index"] == -1).all()
    assert (person["teacher"] == "ground_truth").all() and person["is_subject"].all()
    i = int(person["frame_index"].iloc[0])
    kp = np.asarray(person["keypoints"].iloc[0]).reshape(17, 3)
    vis = np.asarray(person["visibility"].iloc[0])
    gt = rec.keypoints_2d[i]
    assert np.array_equal(vis, gt[:, 2].astype(int))
    m = vis > 0
    assert np.allclose(kp[m, :2], gt[m, :2] * 0.5) and (kp[m, 2] == 1).all() and (kp[~m, 2] == 0).all()
    x, y, w, h = person[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].iloc[0]
    assert (
        (kp[m, 0] >= x).all()
        and (kp[m, 0] <= x + w).all()
        and (kp[m, 1] >= y).all()
        and (kp[m, 1] <= y + h).all()
    )
    path = write_ground_truth_labels(root)
    from gaitdata.labels import read_labels

    assert path.is_file() and len(read_labels(root, "ground_truth")) == len(df)


def test_ground_truth_labels_without_sidecars_is_a_clear_error(tmp_path):
    from gaitdata.errors import GaitdataError

    rec = render_walk(WalkSpec(n_frames=2, colour_size=(64, 48), depth_size=(64, 48)))
    root = _fake_root(tmp_path, rec, tmp_path / "nosidecar.bag", 1.0)
    with pytest.raises(GaitdataError, match="sidecar"):
        ground_truth_labels(root)


# ---- writing containers, the sample set and the CLI ---------------------------------------------


def test_write_recording_video_and_images(tmp_path):
    from gaitdata.synth import write_recording

    rec = render_walk(WalkSpec(n_frames=4, colour_size=(96, 72), with_depth=False))
    v = write_recording(rec, tmp_path / "a" / "walk", "video")
    im = write_recording(rec, tmp_path / "a" / "seq", "images")
    assert v.is_file() and im.is_dir()
    assert load_ground_truth(v)["keypoints_2d"].shape == (4, 17, 3)
    assert sidecar_path(im).is_file()
    with pytest.raises(ValueError, match="kind"):
        write_recording(rec, tmp_path / "x", "avi")


def test_sample_set_has_every_kind_metadata_and_is_reused(tmp_path):
    from gaitdata.synth import make_sample_set

    s = make_sample_set(tmp_path / "s", n_subjects=3, n_frames=4, colour_size=(96, 72), depth_size=(64, 48))
    assert {e.kind for e in s.entries} == {"bag", "db3", "pair", "video", "images"}
    assert s.subjects == ("sub01", "sub02", "sub03")
    meta = pd.read_csv(s.metadata_csv)
    assert len(meta) == len(s.entries) and set(meta["view"]) == {"side", "front"}
    assert "bystander" in set(meta["condition"])
    for e in s.entries:
        assert e.path.exists() and sidecar_path(e.path).is_file()
        rel = e.path.relative_to(s.root).as_posix()
        assert rel.startswith(f"{e.subject}/{e.session}_{e.view}")
    stamp = sidecar_path(s.entries[0].path).stat().st_mtime_ns
    again = make_sample_set(
        tmp_path / "s", n_subjects=3, n_frames=4, colour_size=(96, 72), depth_size=(64, 48)
    )
    assert again.recordings == s.recordings
    assert sidecar_path(s.entries[0].path).stat().st_mtime_ns == stamp  # reused, not re-rendered


def test_cli_synth_writes_recordings(tmp_path):
    from click.testing import CliRunner

    from gaitdata.cli.synth import command

    r = CliRunner().invoke(command, [str(tmp_path / "o"), "--kind", "video", "--kind", "images", "--frames", "3",
                                     "--size", "96x72", "--direction", "toward", "--quiet"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o/sub01/toward_video.mp4").is_file() and (tmp_path / "o/sub01/toward_images").is_dir()
    bad = CliRunner().invoke(command, [str(tmp_path / "o"), "--size", "big"])
    assert bad.exit_code != 0 and "WIDTHxHEIGHT" in bad.output
    bad = CliRunner().invoke(command, [str(tmp_path / "o"), "--drop-prob", "1.5", "--frames", "3"])
    assert bad.exit_code != 0 and "drop_prob" in bad.output


def test_extracted_recordings_match_the_ground_truth(tmp_path):
    """Through the real containers and extraction: labels land on the frames, aligned depth matches."""
    pytest.importorskip("gaitdata.extract")
    import cv2

    from gaitdata.dataset import DatasetRoot
    from gaitdata.extract import ExtractOptions, extract
    from gaitdata.synth import write_recording

    rec = render_walk(WalkSpec(n_frames=5, seed=2, depth_noise_mm=1.0, drop_colour=(2,), **SMALL))
    write_recording(rec, tmp_path / "rec" / "walk", "bag")
    write_recording(rec, tmp_path / "rec" / "clip", "video")  # no frame numbers: matched by position
    extract([tmp_path / "rec"], tmp_path / "root", ExtractOptions(workers=1))
    root = DatasetRoot(tmp_path / "root")
    frames = root.read_frames()
    df = ground_truth_labels(root)
    assert set(df["video_id"]) == set(root.read_videos()["video_id"]) and df["has_person"].all()
    errs = []
    for _, row in df.iterrows():
        f = frames[
            (frames["video_id"] == row["video_id"]) & (frames["frame_index"] == row["frame_index"])
        ].iloc[0]
        gi = (
            rec.colour_frame_numbers.tolist().index(int(f["colour_frame_number"]))
            if row["video_id"] == "walk"
            else int(f["frame_index"])
        )
        kp = np.asarray(row["keypoints"]).reshape(17, 3)
        assert np.allclose(
            kp[:, :2], np.where(rec.keypoints_2d[gi, :, 2:] > 0, rec.keypoints_2d[gi, :, :2], 0)
        )
        if row["video_id"] != "walk":
            continue
        depth = cv2.imread(str(root.abspath(f["depth_path"])), cv2.IMREAD_UNCHANGED)
        for j in (J["right_shoulder"], J["right_hip"]):
            if row["visibility"][j] == 2:
                x, y = int(kp[j, 0]), int(kp[j, 1])
                errs.append(int(depth[y, x]) - int(rec.depth_registered[gi, y, x]))
    assert len(errs) >= 4 and np.abs(errs).max() <= 12, errs  # mm: injected noise 1 mm + resampling


def test_box_from_keypoints_pads_like_a_person_box():
    from gaitdata.synth.groundtruth import _box_from_keypoints

    kp = np.zeros((17, 3))
    kp[:, 0] = np.linspace(100, 140, 17)
    kp[:, 1] = np.linspace(50, 250, 17)
    kp[:, 2] = 2
    x, y, w, h = _box_from_keypoints(kp, 640, 480)
    assert x < 100 and x + w > 140 and y < 50 and y + h > 250  # head above the eyes, feet below the ankles
    assert _box_from_keypoints(np.zeros((17, 3)), 640, 480) is None
    x, y, w, h = _box_from_keypoints(kp, 120, 200)  # clipped to the image
    assert x + w <= 120 and y + h <= 200
