"""FastPose-R50: exact AlphaPose checkpoint layout, strict loading, the alphapose teacher pipeline.

Checkpoints are made by the tests in the official layout (a raw state_dict saved with torch.save);
the expected layout is derived below from the published architecture, independently of the module.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from gaitdata.errors import GaitdataError  # noqa: E402
from gaitdata.schema import COCO17  # noqa: E402
from pseudolabel import create_teacher, list_teachers  # noqa: E402
from pseudolabel.checkpoints import CheckpointError, sha256_file  # noqa: E402
from pseudolabel.models import fastpose_io as fio  # noqa: E402
from pseudolabel.models.fastpose import FastPose, build_fastpose_r50  # noqa: E402
from pseudolabel.teachers.alphapose import ALPHAPOSE_CONFIG, predict_poses  # noqa: E402

STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))  # (bottlenecks, planes), expansion 4


def expected_entries() -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of fast_res50_256x192.pth in registration order, from the architecture description."""
    out: list[tuple[str, tuple[int, ...]]] = []

    def bn(prefix: str, c: int) -> None:
        out.extend((f"{prefix}.{n}", (c,)) for n in ("weight", "bias", "running_mean", "running_var"))
        out.append((f"{prefix}.num_batches_tracked", ()))

    out.append(("preact.conv1.weight", (64, 3, 7, 7)))
    bn("preact.bn1", 64)
    cin = 64
    for s, (n, planes) in enumerate(STAGES, start=1):
        for b in range(n):
            p = f"preact.layer{s}.{b}"
            inp = cin if b == 0 else planes * 4
            out.append((f"{p}.conv1.weight", (planes, inp, 1, 1)))
            bn(f"{p}.bn1", planes)
            out.append((f"{p}.conv2.weight", (planes, planes, 3, 3)))
            bn(f"{p}.bn2", planes)
            out.append((f"{p}.conv3.weight", (planes * 4, planes, 1, 1)))
            bn(f"{p}.bn3", planes * 4)
            if b == 0:  # squeeze-excitation (reduction 1) and the projection shortcut
                c = planes * 4
                out += [(f"{p}.se.fc.0.weight", (c, c)), (f"{p}.se.fc.0.bias", (c,))]
                out += [(f"{p}.se.fc.2.weight", (c, c)), (f"{p}.se.fc.2.bias", (c,))]
                out.append((f"{p}.downsample.0.weight", (c, inp, 1, 1)))
                bn(f"{p}.downsample.1", c)
        cin = planes * 4
    out.append(("duc1.conv.weight", (1024, 512, 3, 3)))
    bn("duc1.bn", 1024)
    out.append(("duc2.conv.weight", (512, 256, 3, 3)))
    bn("duc2.bn", 512)
    out += [("conv_out.weight", (17, 128, 3, 3)), ("conv_out.bias", (17,))]
    return out


def reference_forward(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """FastPose written with torch.nn.functional straight from the description (eval-mode BN)."""

    def bn(t, p):
        return F.batch_norm(
            t, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"]
        )

    x = F.relu(bn(F.conv2d(x, sd["preact.conv1.weight"], stride=2, padding=3), "preact.bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for s, (n, _) in enumerate(STAGES, start=1):
        for b in range(n):
            p = f"preact.layer{s}.{b}"
            stride = 2 if (b == 0 and s > 1) else 1
            y = F.relu(bn(F.conv2d(x, sd[f"{p}.conv1.weight"]), f"{p}.bn1"))
            y = F.relu(bn(F.conv2d(y, sd[f"{p}.conv2.weight"], stride=stride, padding=1), f"{p}.bn2"))
            y = bn(F.conv2d(y, sd[f"{p}.conv3.weight"]), f"{p}.bn3")
            if b == 0:
                w = y.mean(dim=(2, 3))
                w = F.relu(F.linear(w, sd[f"{p}.se.fc.0.weight"], sd[f"{p}.se.fc.0.bias"]))
                w = torch.sigmoid(F.linear(w, sd[f"{p}.se.fc.2.weight"], sd[f"{p}.se.fc.2.bias"]))
                y = y * w[:, :, None, None]
                sc = bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
            else:
                sc = x
            x = F.relu(y + sc)
    x = F.pixel_shuffle(x, 2)
    for d in ("duc1", "duc2"):
        x = F.pixel_shuffle(F.relu(bn(F.conv2d(x, sd[f"{d}.conv.weight"], padding=1), f"{d}.bn")), 2)
    return F.conv2d(x, sd["conv_out.weight"], sd["conv_out.bias"], padding=1)


def _randomised(seed: int) -> FastPose:
    """FastPose-R50 with random weights AND random BN statistics (so buffers matter)."""
    torch.manual_seed(seed)
    m = build_fastpose_r50()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                c = mod.num_features
                mod.running_mean.copy_(torch.randn(c, generator=g) * 0.05)
                mod.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                mod.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                mod.bias.copy_(torch.randn(c, generator=g) * 0.05)
                mod.num_batches_tracked.fill_(1234)
        m.conv_out.bias.fill_(0.3)  # positive peaks, so that every joint decodes to a real location
    return m.eval()


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """(model, path) of a random FastPose-R50 checkpoint saved in the official raw layout."""
    m = _randomised(0)
    path = tmp_path_factory.mktemp("weights") / "fast_res50_256x192.pth"
    torch.save(m.state_dict(), path)
    return m, path


# ---------------------------------------------------------------- architecture and layout


def test_state_dict_layout_is_the_official_one():
    m = build_fastpose_r50()
    sd = m.state_dict()
    exp = expected_entries()
    assert len(exp) == 348
    assert [k for k, _ in exp] == list(sd.keys())
    assert {k: tuple(v.shape) for k, v in sd.items()} == dict(exp)
    params = dict(m.named_parameters())
    assert len(params) == 183 and len(sd) - len(params) == 165
    assert sum(p.numel() for p in params.values()) == 40_577_745
    assert sum(k.endswith("num_batches_tracked") for k in sd) == 55  # 1 stem + 16 x 3 + 4 shortcuts + 2 DUC
    assert not list(m.suffle1.parameters()) and isinstance(m.suffle1, torch.nn.PixelShuffle)
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert all(b.eps == 1e-5 for b in bns)


def test_forward_matches_functional_reference():
    m = _randomised(1)
    x = torch.randn(2, 3, 256, 192)
    with torch.inference_mode():
        y = m(x)
        ref = reference_forward(m.state_dict(), x)
    assert y.shape == (2, 17, 64, 48)
    scale = ref.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(y, ref, atol=1e-5 * max(scale, 1.0), rtol=1e-4)


def test_se_acts_on_the_residual_branch_before_the_addition():
    block = build_fastpose_r50().preact.layer1[0]
    assert block.se is not None and build_fastpose_r50().preact.layer1[1].se is None
    with torch.no_grad():
        block.se.fc[2].weight.zero_()
        block.se.fc[2].bias.fill_(-1e4)  # sigmoid -> 0: the residual branch is switched off
    x = torch.randn(1, 64, 16, 12)
    with torch.inference_mode():
        torch.testing.assert_close(block(x), F.relu(block.downsample(x)))


# ---------------------------------------------------------------- checkpoints


def test_strict_round_trip_raw_and_wrapped(official, tmp_path):
    src, path = official
    x = torch.randn(1, 3, 256, 192)
    with torch.inference_mode():
        want = src(x)
    # the raw official layout
    t = create_teacher("alphapose", weights=path, device="cpu")
    assert t.weights_hash == sha256_file(path)
    with torch.inference_mode():
        assert torch.equal(t.model(x), want)
    # the same weights wrapped by a training loop with DataParallel prefixes
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"epoch": 200, "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, wrapped)
    t2 = create_teacher("alphapose", weights=wrapped, device="cpu")
    sd2 = t2.model.state_dict()
    assert all(torch.equal(sd2[k], v) for k, v in src.state_dict().items())
    assert int(sd2["preact.bn1.num_batches_tracked"]) == 1234


def test_foreign_checkpoints_are_refused_with_expected_vs_found(tmp_path):
    classifier = {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 2048)}
    torch.save(classifier, tmp_path / "resnet50.pth")
    with pytest.raises(CheckpointError) as ei:
        create_teacher("alphapose", weights=tmp_path / "resnet50.pth", device="cpu")
    msg = str(ei.value)
    assert "resnet50.pth" in msg and "missing keys [preact.conv1.weight" in msg
    assert "unexpected keys [conv1.weight, fc.weight]" in msg and "fast_res50_256x192.pth" in msg
    centernet_like = {"epoch": 230, "state_dict": {"base.base_layer.0.weight": torch.zeros(16, 3, 7, 7)}}
    torch.save(centernet_like, tmp_path / "multi_pose_dla_3x.pth")
    with pytest.raises(CheckpointError, match=r"unexpected keys \[base\.base_layer\.0\.weight\]"):
        create_teacher("alphapose", weights=tmp_path / "multi_pose_dla_3x.pth", device="cpu")
    # a FastPose with 18 joints (another dataset's checkpoint): shapes are listed
    other = FastPose(num_joints=18).state_dict()
    torch.save(other, tmp_path / "halpe.pth")
    with pytest.raises(CheckpointError, match=r"conv_out\.weight \(18, 128, 3, 3\) vs \(17, 128, 3, 3\)"):
        create_teacher("alphapose", weights=tmp_path / "halpe.pth", device="cpu")


def test_truncated_checkpoint(official, tmp_path):
    _, path = official
    data = path.read_bytes()
    cut = tmp_path / "fast_res50_256x192.pth"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"fast_res50_256x192\.pth.*truncated, corrupt"):
        create_teacher("alphapose", weights=cut, device="cpu")


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.delenv("GAITDATA_WEIGHTS_DIR", raising=False)
    with pytest.raises(
        GaitdataError, match=r"fast_res50_256x192\.pth.*GAITDATA_WEIGHTS_DIR is not set.*--weights"
    ):
        create_teacher("alphapose", device="cpu")
    monkeypatch.setenv("GAITDATA_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(GaitdataError, match="has no fast_res50_256x192.pth"):
        create_teacher("alphapose", device="cpu")
    with pytest.raises(GaitdataError, match="weights not found"):
        create_teacher("alphapose", weights=tmp_path / "nope.pth", device="cpu")


def test_weights_dir_and_device_errors(official, monkeypatch):
    _, path = official
    monkeypatch.setenv("GAITDATA_WEIGHTS_DIR", str(path.parent))
    t = create_teacher("alphapose", device="auto")
    assert t.weights_path == path and t.device in ("cpu", "cuda")
    with pytest.raises(GaitdataError, match="device must be"):
        create_teacher("alphapose", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(GaitdataError, match="CUDA is not available"):
            create_teacher("alphapose", device="cuda")


def test_config_is_data():
    assert "alphapose" in list_teachers()
    cfg = ALPHAPOSE_CONFIG
    assert cfg.input_size == (256, 192) and cfg.mean == (0.406, 0.457, 0.480) and cfg.std is None
    assert cfg.channel_order == "RGB" and cfg.top_down and cfg.weights_file == "fast_res50_256x192.pth"
    assert "MVIG-SJTU" in cfg.source and "non-commercial" in cfg.license
    with pytest.raises(AttributeError):
        cfg.name = "x"  # frozen


# ---------------------------------------------------------------- the teacher pipeline


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2_blur(rng.integers(0, 256, (180, 240, 3), dtype=np.uint8))
    return img


def cv2_blur(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (0, 0), 3)


def test_predict_batching_heatmaps_and_box_rules(official):
    src, path = official
    t = create_teacher("alphapose", weights=path, device="cpu", batch_size=8)
    imgs = [_scene(0), _scene(1)]
    boxes = [np.array([[20, 10, 60, 150, 1.0], [120, 30, 70, 120, 0.5]]), np.array([[50, 20, 100, 140]])]
    res = t.predict(imgs, boxes, return_heatmaps=True)
    assert [len(r) for r in res] == [2, 1]
    p = res[0][1]
    assert p.bbox == (120, 30, 70, 120) and p.keypoints.shape == (17, 3)
    conf = p.keypoints[:, 2]
    np.testing.assert_allclose(conf, np.clip(p.extras["raw_scores"], 0, 1))
    assert p.score == pytest.approx(conf.mean() * 0.5)  # box score x mean joint confidence
    hm = p.extras["heatmap"]
    assert hm.shape == (17, 64, 48) and hm.dtype == np.float32
    # the returned heatmap + affine reproduce the keypoints (within the 0.25-cell shift)
    h2i = np.vstack([__import__("cv2").invertAffineTransform(p.extras["image_to_heatmap"]), [0, 0, 1]])
    for k in range(17):
        v, u = np.unravel_index(hm[k].argmax(), hm[k].shape)
        x, y, _ = h2i @ [u, v, 1]
        cell = (p.extras["crop_box"][2] - p.extras["crop_box"][0]) / 48
        assert (
            abs(p.keypoints[k, 0] - x) <= 0.25 * cell + 1e-3
            and abs(p.keypoints[k, 1] - y) <= 0.25 * cell + 1e-3
        )
    # image_to_input sends the crop box corners to the 192x256 input corners
    cb = p.extras["crop_box"]
    np.testing.assert_allclose(p.extras["image_to_input"] @ [cb[2], cb[3], 1], [192, 256], atol=1e-3)

    # one image at a time, one crop per forward: same poses
    t.batch_size = 1
    for i, img in enumerate(imgs):
        single = t.predict([img], [boxes[i]])[0]
        for a, b in zip(single, res[i], strict=True):
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
            assert a.score == pytest.approx(b.score, abs=1e-5)

    # None -> the whole image as one box; empty -> nobody; degenerate boxes are skipped
    whole = t.predict([imgs[0]], None)[0]
    assert len(whole) == 1 and whole[0].bbox == (0, 0, 240, 180)
    assert t.predict([imgs[0]], [np.zeros((0, 4))]) == [[]]
    mixed = t.predict([imgs[0]], [np.array([[0, 0, 0, 10], [np.nan, 0, 5, 5], [20, 10, 60, 150]])])[0]
    assert len(mixed) == 1 and mixed[0].extras["box_index"] == 2
    np.testing.assert_allclose(mixed[0].keypoints, res[0][0].keypoints, atol=1e-3)
    with pytest.raises(ValueError, match="image 0"):
        t.predict([np.zeros((10, 10), np.uint8)], None)
    with pytest.raises(ValueError, match="2 images but 1 box"):
        t.predict(imgs, [boxes[0]])


def test_flip_test_is_the_average_with_the_mirrored_crop(official):
    src, _ = official
    img = _scene(3)
    box = np.array([[40, 20, 90, 140]])
    crops, crop_boxes, _ = fio.prepare_crops(img, box)
    x = fio.normalize_alphapose(crops)
    with torch.inference_mode():
        plain = src(x)
        mirrored = src(torch.flip(x, dims=(3,)))
    want = ((plain + fio.flip_heatmaps(mirrored)) / 2).numpy()
    got = predict_poses(src, [img], [box], flip=True, return_heatmaps=True)[0][0]
    np.testing.assert_allclose(got.extras["heatmap"], want[0], atol=1e-5)
    coords, _ = fio.heatmaps_to_image_coords(want, crop_boxes)
    np.testing.assert_allclose(got.keypoints[:, :2], coords[0], atol=1e-4)


class NaNModel(torch.nn.Module):
    """Stand-in whose heatmaps are NaN (as after an fp16 overflow)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 17, 64, 48), float("nan"))


def test_non_finite_heatmaps_give_zero_confidence_not_a_crash():
    poses = predict_poses(NaNModel(), [_scene(0)], [np.array([[20, 10, 60, 150]])])[0]
    assert len(poses) == 1 and np.all(poses[0].keypoints[:, 2] == 0) and poses[0].score == 0


class MirrorModel(torch.nn.Module):
    """Heatmaps mirrored by construction: ``flip_heatmaps(M(flip(x))) == M(x)`` exactly.

    ``M(x) = M0(x) + flip_heatmaps(M0(flip(x)))`` with ``M0`` a stride-4 conv whose outer two
    columns are zero (so that the one-cell shift of the flip test loses nothing).
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv = torch.nn.Conv2d(3, 17, 4, stride=4)
        mask = torch.ones(1, 1, 1, 48)
        mask[..., :2] = 0
        mask[..., -2:] = 0
        self.register_buffer("mask", mask)

    def m0(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.conv(x)) * self.mask  # positive, so every peak is real

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m0(x) + fio.flip_heatmaps(self.m0(torch.flip(x, dims=(3,))))


def test_mirrored_model_flip_and_no_flip_agree_and_mirror_images():
    model = MirrorModel().eval()
    img = _scene(7)[:, :200].copy()  # W = 200
    w_img = img.shape[1]
    # crop scale (120, 160): 1.6 input px per image px; the crop lies inside the image (no flat
    # zero border, where equal heatmap values would make the arg-max tie-break asymmetric)
    box = np.array([[60.0, 20.0, 60.0, 128.0]])
    with_flip = predict_poses(model, [img], [box], flip=True, return_heatmaps=True)[0][0]
    no_flip = predict_poses(model, [img], [box], flip=False, return_heatmaps=True)[0][0]
    np.testing.assert_array_equal(with_flip.extras["heatmap"], no_flip.extras["heatmap"])
    np.testing.assert_array_equal(with_flip.keypoints, no_flip.keypoints)

    # the mirrored image with the mirrored box gives the mirrored crop ...
    s = 192 / 120
    cx = 60 + 30
    box_m = box.copy()
    box_m[0, 0] = (w_img - 1 - cx + 1 / s) - 30
    mirror = np.ascontiguousarray(img[:, ::-1])
    crop, _, _ = fio.prepare_crops(img, box)
    crop_m, _, _ = fio.prepare_crops(mirror, box_m)
    np.testing.assert_array_equal(crop_m[0], crop[0][:, ::-1])
    # ... and mirrored keypoints with left and right swapped: x' = W - 1 + 1/s - x
    got = predict_poses(model, [mirror], [box_m], flip=True)[0][0]
    perm = COCO17.flip_permutation()
    np.testing.assert_allclose(
        got.keypoints[:, 0], (w_img - 1 + 1 / s) - with_flip.keypoints[perm, 0], atol=1e-3
    )
    np.testing.assert_allclose(got.keypoints[:, 1], with_flip.keypoints[perm, 1], atol=1e-3)
    np.testing.assert_allclose(got.keypoints[:, 2], with_flip.keypoints[perm, 2], atol=1e-5)


# ---------------------------------------------------------------- real checkpoint (opt-in)


@pytest.mark.weights
def test_official_checkpoint_on_a_synthetic_walker(weights_dir):
    path = weights_dir / "fast_res50_256x192.pth"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert len(raw) == 348
    n_params = sum(v.numel() for k, v in raw.items() if "running_" not in k and "num_batches" not in k)
    assert n_params == 40_577_745
    try:
        from gaitdata.synth import WalkSpec, render_walk
    except ImportError:
        pytest.skip("gaitdata.synth.render_walk not available")
    rec = render_walk(WalkSpec(n_frames=5))
    t = create_teacher("alphapose", weights=path, device="auto")
    i = len(rec.colour) // 2
    gt = np.asarray(rec.keypoints_2d[i], dtype=np.float64)
    vis = gt[:, 2] > 0
    x0, y0 = gt[vis, :2].min(axis=0)
    x1, y1 = gt[vis, :2].max(axis=0)
    pad = 0.1 * (y1 - y0)
    box = np.array([[x0 - pad, y0 - 2 * pad, x1 - x0 + 2 * pad, y1 - y0 + 3 * pad]])
    pose = t.predict([rec.colour[i]], [box])[0][0]
    err = np.linalg.norm(pose.keypoints[vis, :2] - gt[vis, :2], axis=1)
    assert pose.score > 0.3
    assert np.median(err) < 0.15 * (y1 - y0)


@pytest.mark.gpu
def test_cuda_amp_and_float32_match_cpu(official):
    _, path = official
    imgs = [_scene(0), _scene(1)]
    boxes = [np.array([[20, 10, 60, 150], [120, 30, 70, 120]]), np.array([[50, 20, 100, 140]])]
    cpu = create_teacher("alphapose", weights=path, device="cpu").predict(imgs, boxes, return_heatmaps=True)
    f32 = create_teacher("alphapose", weights=path, device="cuda", amp=False).predict(
        imgs, boxes, return_heatmaps=True
    )
    amp = create_teacher("alphapose", weights=path, device="cuda").predict(imgs, boxes, return_heatmaps=True)
    for a, b, c in zip(sum(cpu, []), sum(f32, []), sum(amp, []), strict=True):
        scale = float(np.abs(a.extras["heatmap"]).max())
        np.testing.assert_allclose(b.extras["heatmap"], a.extras["heatmap"], atol=1e-3 * scale)
        np.testing.assert_allclose(c.extras["heatmap"], a.extras["heatmap"], atol=3e-2 * scale)
        np.testing.assert_allclose(b.keypoints, a.keypoints, atol=1e-2)
