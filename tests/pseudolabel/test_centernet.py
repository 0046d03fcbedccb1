"""CenterNet multi-pose DLA-34: checkpoint layout, strict loading, pre-processing, decoding, teacher."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gaitdata.schema import COCO17  # noqa: E402
from pseudolabel.checkpoints import CheckpointError  # noqa: E402
from pseudolabel.models import centernet_io as cio  # noqa: E402
from pseudolabel.models.dla import build_centernet_dla34  # noqa: E402
from pseudolabel.registry import create_teacher, list_teachers  # noqa: E402
from pseudolabel.teachers.centernet import CENTERNET_CONFIG, load_centernet  # noqa: E402

HEADS = {"hm": 1, "wh": 2, "hps": 34, "reg": 2, "hm_hp": 17, "hp_offset": 2}


# ---- expected layout, derived from the architecture description (not from our model) ---------------
def expected_shapes() -> dict[str, tuple[int, ...]]:
    s: dict[str, tuple[int, ...]] = {}

    def conv(p: str, cout: int, cin: int, k: int, bias: bool = False) -> None:
        s[f"{p}.weight"] = (cout, cin, k, k)
        if bias:
            s[f"{p}.bias"] = (cout,)

    def bn(p: str, c: int) -> None:
        for n in ("weight", "bias", "running_mean", "running_var"):
            s[f"{p}.{n}"] = (c,)
        s[f"{p}.num_batches_tracked"] = ()

    def block(p: str, cin: int, cout: int) -> None:
        conv(f"{p}.conv1", cout, cin, 3)
        bn(f"{p}.bn1", cout)
        conv(f"{p}.conv2", cout, cout, 3)
        bn(f"{p}.bn2", cout)

    def tree(p: str, levels: int, cin: int, cout: int, level_root: bool, root_dim: int = 0) -> None:
        root_dim = (root_dim or 2 * cout) + (cin if level_root else 0)
        if levels == 1:
            block(f"{p}.tree1", cin, cout)
            block(f"{p}.tree2", cout, cout)
            conv(f"{p}.root.conv", cout, root_dim, 1)
            bn(f"{p}.root.bn", cout)
        else:
            tree(f"{p}.tree1", levels - 1, cin, cout, False)
            tree(f"{p}.tree2", levels - 1, cout, cout, False, root_dim + cout)
        if cin != cout:
            conv(f"{p}.project.0", cout, cin, 1)
            bn(f"{p}.project.1", cout)

    conv("base.base_layer.0", 16, 3, 7)
    bn("base.base_layer.1", 16)
    conv("base.level0.0", 16, 16, 3)
    bn("base.level0.1", 16)
    conv("base.level1.0", 32, 16, 3)
    bn("base.level1.1", 32)
    tree("base.level2", 1, 32, 64, False)
    tree("base.level3", 2, 64, 128, True)
    tree("base.level4", 2, 128, 256, True)
    tree("base.level5", 1, 256, 512, True)

    def deform(p: str, cin: int, cout: int) -> None:
        bn(f"{p}.actf.0", cout)
        conv(f"{p}.conv", cout, cin, 3, bias=True)
        conv(f"{p}.conv.conv_offset_mask", 27, cin, 3, bias=True)

    def ida(p: str, o: int, chans: list[int], up: list[int]) -> None:
        for i in range(1, len(chans)):
            deform(f"{p}.proj_{i}", chans[i], o)
            s[f"{p}.up_{i}.weight"] = (o, 1, 2 * up[i], 2 * up[i])
            deform(f"{p}.node_{i}", o, o)

    ida("dla_up.ida_0", 256, [256, 512], [1, 2])
    ida("dla_up.ida_1", 128, [128, 256, 256], [1, 2, 2])
    ida("dla_up.ida_2", 64, [64, 128, 128, 128], [1, 2, 2, 2])
    ida("ida_up", 64, [64, 128, 256], [1, 2, 4])
    for h, c in HEADS.items():
        conv(f"{h}.0", 256, 64, 3, bias=True)
        conv(f"{h}.2", c, 256, 1, bias=True)
    return s


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_centernet_dla34().eval()
    with torch.no_grad():  # non-trivial BN statistics so that a load that skipped them would show
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return m


def official_checkpoint(m, path, *, prefix: str = "module.", with_fc: bool = True) -> None:
    sd = {prefix + k: v.clone() for k, v in m.state_dict().items()}
    if with_fc:
        sd[prefix + "base.fc.weight"] = torch.randn(1000, 512, 1, 1)
        sd[prefix + "base.fc.bias"] = torch.randn(1000)
    torch.save({"epoch": 1, "state_dict": sd}, path)


def test_layout_matches_the_official_checkpoint(model) -> None:
    want = expected_shapes()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(got) == set(want), (sorted(set(got) - set(want))[:5], sorted(set(want) - set(got))[:5])
    assert got == want
    assert len(got) + 2 == 412  # + base.fc.weight, base.fc.bias
    n_params = sum(p.numel() for p in model.parameters())
    assert 20.05e6 < n_params < 20.15e6, n_params
    # head order as in the checkpoint
    assert [k.split(".")[0] for k in got if k.endswith(".2.bias") and "." not in k[:-7]] == list(HEADS)


def test_forward_shapes_stride_4(model) -> None:
    with torch.no_grad():
        out = model(torch.randn(1, 3, 128, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (1, c, 32, 24) for k, c in HEADS.items()}
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 100, 96))


def test_backbone_levels_and_unused_projections(model) -> None:
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        levels = model.base(x)
        assert [tuple(t.shape[1:]) for t in levels] == [
            (16, 64, 64), (32, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)
        ]  # fmt: skip
        ref = model(x)["hps"]
        # levels 3 and 4: ``project`` is in the checkpoint but its output is unused
        for name in (
            "base.level3.project.0.weight",
            "base.level4.project.0.weight",
            "base.level2.project.0.weight",
        ):
            w = model.get_parameter(name)
            saved = w.clone()
            w.mul_(3.0)
            changed = not torch.equal(model(x)["hps"], ref)
            w.copy_(saved)
            assert changed == name.startswith("base.level2"), name


def test_strict_round_trip_official_layout(model, tmp_path) -> None:
    path = tmp_path / "multi_pose_dla_3x.pth"
    official_checkpoint(model, path)
    other = build_centernet_dla34().eval()
    sha = load_centernet(path, other)
    assert len(sha) == 64
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), other(x)
    for k in HEADS:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    # without module. prefixes and without base.fc also loads
    path2 = tmp_path / "plain.pth"
    official_checkpoint(model, path2, prefix="", with_fc=False)
    load_centernet(path2, build_centernet_dla34())
    # a checkpoint from before BN counted batches (no num_batches_tracked) also loads
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(old) < 410
    torch.save({"epoch": 140, "state_dict": old}, tmp_path / "old.pth")
    load_centernet(tmp_path / "old.pth", build_centernet_dla34())


def test_missing_and_mismatched_keys_are_listed(model, tmp_path) -> None:
    sd = {k: v for k, v in model.state_dict().items() if k != "hps.2.bias"}
    sd["hm_hp.2.weight"] = torch.zeros(18, 256, 1, 1)
    torch.save({"epoch": 3, "state_dict": sd}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as e:
        load_centernet(tmp_path / "bad.pth", build_centernet_dla34())
    msg = str(e.value)
    assert "hps.2.bias" in msg and "hm_hp.2.weight (18, 256, 1, 1) vs (17, 256, 1, 1)" in msg
    assert "multi_pose_dla_3x.pth" in msg


def test_detection_checkpoint_names_the_task(tmp_path) -> None:
    ctdet = build_centernet_dla34({"hm": 80, "wh": 2, "reg": 2})
    official_checkpoint(ctdet, tmp_path / "ctdet_coco_dla_2x.pth")
    with pytest.raises(CheckpointError, match=r"ctdet \(80 classes\).*not a multi_pose"):
        load_centernet(tmp_path / "ctdet_coco_dla_2x.pth", build_centernet_dla34())


def test_truncated_checkpoint(tmp_path, model) -> None:
    path = tmp_path / "t.pth"
    official_checkpoint(model, path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_centernet(path, build_centernet_dla34())


# ---- pre-processing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("h", "w"), [(480, 640), (720, 405), (512, 512)])
def test_letterbox_round_trip(h: int, w: int) -> None:
    lb = cio.Letterbox.for_image(h, w)
    pts = np.array([[0.0, 0.0], [w, h], [w / 2, h / 2], [13.7, 201.25]])
    inp = cio.apply_affine(pts, lb.to_input())
    np.testing.assert_allclose(inp[2], [256, 256])
    assert np.isclose(max(inp[1, 0] - inp[0, 0], inp[1, 1] - inp[0, 1]), 512)  # longer side -> 512
    back = cio.apply_affine(inp / 4.0, lb.output_to_image())  # input px -> output grid -> image
    np.testing.assert_allclose(back, pts, atol=1e-9)


def test_letterbox_equals_three_point_affine() -> None:
    import cv2

    # CenterNet's construction: centre -> output centre, a point half a scale above the centre ->
    # half the output width above the output centre, a third point at a right angle
    c, s, out = np.array([320.0, 240.0]), 640.0, 128
    src = np.float32([c, c + [0, -s / 2], c + [-s / 2, -s / 2]])
    dst = np.float32(
        [[out / 2, out / 2], [out / 2, out / 2 - out / 2], [out / 2 - out / 2, out / 2 - out / 2]]
    )
    np.testing.assert_allclose(
        cio.letterbox_affine(tuple(c), s, (out, out)), cv2.getAffineTransform(src, dst), atol=1e-5
    )


def test_preprocess_places_pixels_and_normalises() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    img[100:140, 200:240] = (255, 0, 0)  # pure red block (RGB)
    x, lb = cio.preprocess(img)
    assert x.shape == (3, 512, 512) and x.dtype == np.float32
    centre = cio.apply_affine(np.array([220.0, 120.0]), lb.to_input()).round().astype(int)
    px = x[:, centre[1], centre[0]]
    mean, std = np.array(cio.CENTERNET_MEAN_BGR), np.array(cio.CENTERNET_STD_BGR)
    np.testing.assert_allclose(px, (np.array([0.0, 0.0, 1.0]) - mean) / std, rtol=1e-5)  # BGR order
    # letterbox border (above the 240-row image: rows < 64) is zero before normalisation
    np.testing.assert_allclose(x[:, 10, 10], -mean / std, rtol=1e-5)


# ---- flip test --------------------------------------------------------------------------------------
def test_flip_merge_recovers_mirrored_outputs() -> None:
    g = torch.Generator().manual_seed(1)
    orig = {k: torch.rand(1, c, 8, 10, generator=g) for k, c in HEADS.items()}
    perm = torch.as_tensor(COCO17.flip_permutation())
    hps = orig["hps"].reshape(1, 17, 2, 8, 10).clone()
    hps[:, :, 0] *= -1
    mirrored = {
        "hm": orig["hm"].flip(3),
        "wh": orig["wh"].flip(3),
        "hps": hps[:, perm].reshape(1, 34, 8, 10).flip(3),
        "reg": torch.zeros(1, 2, 8, 10),
        "hm_hp": orig["hm_hp"][:, perm].flip(3),
        "hp_offset": torch.zeros(1, 2, 8, 10),
    }
    merged = cio.merge_flip({k: torch.cat([orig[k], mirrored[k]]) for k in HEADS})
    for k in HEADS:
        torch.testing.assert_close(merged[k], orig[k], msg=k)


# ---- decoding on hand-made heatmaps -----------------------------------------------------------------
LOW = -10.0


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def handmade() -> dict[str, torch.Tensor]:
    h = w = 32
    out = {k: torch.zeros(1, c, h, w) for k, c in HEADS.items()}
    out["hm"].fill_(LOW)
    out["hm_hp"].fill_(LOW)
    cx, cy = 10, 12
    out["hm"][0, 0, cy, cx] = 5.0
    out["hm"][0, 0, cy, cx + 1] = 0.0  # a lower neighbour: removed by the 3x3 NMS
    out["reg"][0, :, cy, cx] = torch.tensor([0.25, 0.5])
    out["wh"][0, :, cy, cx] = torch.tensor([8.0, 16.0])  # box x 6.25..14.25, y 4.5..20.5
    offsets = {0: (1, -3), 1: (2, 2), 2: (0, 6), 3: (-1, 1), 4: (0, 0), 5: (-2, -6)}
    for j, (dx, dy) in offsets.items():
        out["hps"][0, 2 * j, cy, cx] = dx
        out["hps"][0, 2 * j + 1, cy, cx] = dy
    hp = out["hm_hp"][0]
    hp[0, 10, 11] = _logit(0.9)  # near regressed (11, 9): snaps, with a sub-pixel offset
    out["hp_offset"][0, :, 10, 11] = torch.tensor([0.3, 0.4])
    hp[1, 14, 17] = _logit(0.95)  # regressed (12, 14); peak outside the box (x > 14.25): no snap
    hp[2, 13, 10] = _logit(0.95)  # regressed (10, 18); peak 5 px away > 0.3 * 16 = 4.8: no snap
    hp[3, 13, 9] = _logit(0.05)  # at the regressed point but below 0.1: no snap, conf 0.05
    hp[4, 12, 13] = _logit(0.6)  # 3 px from regressed (10, 12): snaps
    hp[4, 12, 8] = _logit(0.7)  # 2 px on the other side: nearest, chosen
    hp[4, 16, 10] = _logit(0.99)  # 4 px away: farther, not chosen
    hp[5, 6, 8] = _logit(0.8)  # exactly on the regressed point (8, 6)
    hp[5, 6, 9] = _logit(0.5)  # lower neighbour, suppressed by NMS
    return out


def test_decode_handmade_heatmaps() -> None:
    d = cio.decode_multi_pose(cio.sigmoid_outputs(handmade()), k=3)
    sig = torch.sigmoid
    assert d["scores"][0, 0] == pytest.approx(float(sig(torch.tensor(5.0))), rel=1e-6)
    assert float(d["scores"][0, 1]) < 1e-3  # the neighbour at 0.5 was suppressed
    np.testing.assert_allclose(d["boxes"][0, 0].numpy(), [6.25, 4.5, 14.25, 20.5], atol=1e-6)
    kp, conf, snap = d["keypoints"][0, 0].numpy(), d["kp_conf"][0, 0].numpy(), d["snapped"][0, 0].numpy()
    np.testing.assert_allclose(kp[0], [11.3, 10.4], atol=1e-5)
    assert snap[0] and conf[0] == pytest.approx(0.9, abs=1e-5)
    np.testing.assert_allclose(kp[1], [12, 14], atol=1e-6)
    assert not snap[1] and conf[1] <= cio.UNSNAPPED_CONF_CAP
    np.testing.assert_allclose(kp[2], [10, 18], atol=1e-6)
    assert not snap[2] and conf[2] <= cio.UNSNAPPED_CONF_CAP
    np.testing.assert_allclose(kp[3], [9, 13], atol=1e-6)
    assert not snap[3] and conf[3] == pytest.approx(0.05, abs=1e-5)
    # the nearest peak wins, not the highest-scoring one
    np.testing.assert_allclose(kp[4], [8, 12], atol=1e-6)
    assert snap[4] and conf[4] == pytest.approx(0.7, abs=1e-5)
    np.testing.assert_allclose(kp[5], [8, 6], atol=1e-6)
    assert snap[5] and conf[5] == pytest.approx(0.8, abs=1e-5)
    # joints without any peak: regressed at the integer centre, confidence ~ sigmoid(-10)
    np.testing.assert_allclose(kp[6:], np.tile([10.0, 12.0], (11, 1)), atol=1e-6)
    assert not snap[6:].any() and (conf[6:] < 1e-4).all()


# ---- the teacher -------------------------------------------------------------------------------------
class _FixedOutputs(torch.nn.Module):
    """Stands in for the network: returns the hand-made logits, whatever the input."""

    def __init__(self, out: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.expand(x.shape[0], *v.shape[1:]) for k, v in self.out.items()}


@pytest.fixture(scope="module")
def ckpt(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "multi_pose_dla_3x.pth"
    official_checkpoint(model, path)
    return path


def test_teacher_registered_and_one_stage(ckpt) -> None:
    assert "centernet" in list_teachers()
    t = create_teacher(
        "centernet", weights=str(ckpt), device="cpu", input_size=128, score_threshold=0.0, top_k=3
    )
    assert t.cfg is CENTERNET_CONFIG and not t.cfg.top_down and t.cfg.channel_order == "BGR"
    assert t.deform_backend in ("torch", "torchvision")
    imgs = [np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)]
    res = t.predict(imgs, boxes=[np.array([[0, 0, 10, 10]])])  # boxes are ignored
    assert len(res) == 1 and len(res[0]) == 3
    for p in res[0]:
        assert p.keypoints.shape == (17, 3)
        x, y, bw, bh = p.bbox
        assert 0 <= x <= 128 and 0 <= y <= 96 and x + bw <= 128 + 1e-6 and y + bh <= 96 + 1e-6


def test_teacher_maps_decoded_points_to_the_image(ckpt) -> None:
    t = create_teacher("centernet", weights=str(ckpt), device="cpu", input_size=128)
    t.model = _FixedOutputs(handmade())  # 32x32 output grid of a 128 input
    img = np.zeros((200, 400, 3), np.uint8)  # longer side 400 -> one output cell = 400 / 32 px
    (poses,) = t.predict([img])
    assert len(poses) == 1  # only the centre peak passes the 0.3 score threshold
    p = poses[0]
    cell, y0 = 400 / 32, 100 - 16 * 400 / 32  # output (u, v) -> image (u * cell, v * cell + y0)
    np.testing.assert_allclose(p.keypoints[0, :2], [11.3 * cell, 10.4 * cell + y0], rtol=1e-5)
    assert p.keypoints[0, 2] == pytest.approx(0.9, abs=1e-5)
    np.testing.assert_allclose(p.bbox, [6.25 * cell, max(4.5 * cell + y0, 0), 8 * cell,
                                        20.5 * cell + y0 - max(4.5 * cell + y0, 0)], rtol=1e-5)  # fmt: skip
    assert bool(p.extras["snapped"][0]) and not bool(p.extras["snapped"][1])
    # flip test on outputs that are mirror-symmetric in nothing still yields valid poses
    t.flip = True
    (poses,) = t.predict([img])
    assert all(0 <= c <= 1 for q in poses for c in q.keypoints[:, 2])


def test_teacher_flip_and_batching(ckpt) -> None:
    t = create_teacher("centernet", weights=str(ckpt), device="cpu", input_size=64, flip=True,
                       score_threshold=0.0, top_k=2, batch_size=2)  # fmt: skip
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 255, s, dtype=np.uint8) for s in ((60, 80, 3), (90, 50, 3), (64, 64, 3))]
    res = t.predict(imgs)
    assert [len(r) for r in res] == [2, 2, 2]
    single = t.predict(imgs[1:2])
    np.testing.assert_allclose(single[0][0].keypoints, res[1][0].keypoints, rtol=1e-4, atol=1e-3)


def test_teacher_bad_input(tmp_path, monkeypatch) -> None:
    from gaitdata.errors import GaitdataError

    monkeypatch.delenv("GAITDATA_WEIGHTS_DIR", raising=False)
    with pytest.raises(GaitdataError, match="multi_pose_dla_3x.pth"):
        create_teacher("centernet", device="cpu")
    with pytest.raises(GaitdataError, match="not found"):
        create_teacher("centernet", weights=str(tmp_path / "nope.pth"), device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(GaitdataError, match="CUDA"):
            create_teacher("centernet", weights=str(tmp_path / "nope.pth"), device="cuda")


@pytest.mark.weights
def test_real_checkpoint(weights_dir) -> None:
    path = weights_dir / "multi_pose_dla_3x.pth"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    m = build_centernet_dla34()
    load_centernet(path, m)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert len(raw["state_dict"]) == 412
    t = create_teacher("centernet", weights=str(path), device="cpu")
    img = np.full((480, 640, 3), 127, np.uint8)
    assert isinstance(t.predict([img])[0], list)


# ---- through the labelling run -------------------------------------------------------------------------
def test_labelling_run_with_centernet(ckpt, tmp_path) -> None:
    from _label_roots import blob_frames, make_root
    from click.testing import CliRunner

    import pseudolabel.runner as runner
    from gaitdata.cli import cli
    from gaitdata.labels import read_label_meta, read_labels
    from pseudolabel.checkpoints import sha256_file

    rgb, dep = blob_frames(3, lambda i: [(20 + 5 * i, 20, 30, 80)], size=(120, 160))
    root = make_root(tmp_path / "root", {"s1_walk": (rgb, dep)})
    runner.label(root.path, teacher="centernet", weights=ckpt, device="cpu", progress=False,
                 input_size=64, score_threshold=0.0, top_k=2)  # fmt: skip
    df = read_labels(root, "centernet")
    assert sorted(set(df.frame_index)) == [0, 1, 2] and len(df) == 6  # two detections per frame
    assert (df.teacher == "centernet").all() and (df.weights_hash == sha256_file(ckpt)).all()
    meta = read_label_meta(root, "centernet")
    assert meta["teacher_config"]["top_down"] is False and meta["boxes"] is None
    # the CLI, unchanged (full 512 input, so a single frame: DLA-34 at 512 takes seconds on a CPU core)
    small = make_root(tmp_path / "one", {"s2_walk": (rgb[:1], dep[:1])})
    res = CliRunner().invoke(cli, ["label", str(small.path), "--teacher", "centernet", "--weights", str(ckpt),
                                   "--device", "cpu", "--label-set", "cn", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert set(read_labels(small, "cn").frame_index) == {0}


def test_deformable_backend_choice(ckpt) -> None:
    from gaitdata.errors import MissingDependencyError
    from pseudolabel.models.dcn import deform_backend

    t = create_teacher("centernet", weights=str(ckpt), device="cpu", input_size=64, dcn_backend="torch")
    assert t.deform_backend == "torch"
    if (
        deform_backend() == "torch"
    ):  # torchvision absent or broken: the fallback is no error, asking for it is
        with pytest.raises(MissingDependencyError, match="torchvision"):
            create_teacher("centernet", weights=str(ckpt), device="cpu", dcn_backend="torchvision")
    with pytest.raises(ValueError, match="dcn_backend"):
        create_teacher("centernet", weights=str(ckpt), device="cpu", dcn_backend="cudnn")
