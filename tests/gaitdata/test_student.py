"""Student models, crops/targets, training, distillation and bad input (tiny models on drawn figures)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gaitdata.errors import GaitdataError  # noqa: E402
from gaitdata.schema import COCO17  # noqa: E402
from gaitdata.student import data as D  # noqa: E402
from gaitdata.student.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from gaitdata.student.models import (  # noqa: E402
    StudentArch,
    count_flops,
    count_parameters,
    create_student,
    list_students,
    student_arch,
)
from gaitdata.student.trainer import dataset_pck, train  # noqa: E402
from gaitdata.testing.figures import FIVE_VIDEO_SPLITS, stick_figure_root  # noqa: E402
from gaitdata.testing.figures import NO_COLOUR_AUGMENTATION as NO_COLOUR  # noqa: E402
from gaitdata.testing.figures import TINY_STUDENT as TINY  # noqa: E402

FAST = {
    "batch_size": 8,
    "flip_prob": 0.0,
    "model_kwargs": TINY,
    "warmup_epochs": 0.5,
    "lr": 3e-3,
    **NO_COLOUR,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return stick_figure_root(tmp_path_factory.mktemp("toy"), n_videos=5, n_frames=12,
                         splits=FIVE_VIDEO_SPLITS)  # fmt: skip


# ---- models ------------------------------------------------------------------------------------


def test_registry_and_unknown_name():
    names = list_students()
    assert {"fastpose_res18_w050", "fastpose_mbv2_w050", "deconv_res18_w050"} <= set(names)
    with pytest.raises(GaitdataError, match="valid students:.*fastpose_res18_w050"):
        create_student("resnet9000")


@pytest.mark.parametrize(
    "name", ["fastpose_res10_w025", "fastpose_mbv2_w050", "deconv_res18_w050", "deconv_mbv2_w050"]
)
def test_heatmaps_at_quarter_resolution(name):
    m = create_student(name, input_size=(64, 48), width_mult=0.25).eval()
    with torch.no_grad():
        y = m(torch.zeros(2, 3, 64, 48))
    assert y.shape == (2, 17, 16, 12)
    assert count_parameters(m) > 1000 and count_flops(m) > 0


def test_full_size_and_width_multiplier():
    a = create_student("fastpose_res18_w050").eval()
    b = create_student("fastpose_res18_w050", width_mult=0.25).eval()
    assert a.arch.input_size == (256, 192) and a.arch.heatmap_size == (64, 48)
    assert count_parameters(b) < count_parameters(a) / 2
    with torch.no_grad():
        assert a(torch.zeros(1, 3, 256, 192)).shape == (1, 17, 64, 48)
    assert student_arch("fastpose_res18_w050_192x144").heatmap_size == (48, 36)


def test_flop_counter_matches_hand_count():
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.Flatten(),
                        nn.Linear(4 * 16 * 16, 10))  # fmt: skip
    macs = count_flops(net, (8, 8))
    assert macs == 8 * 8 * 8 * 27 + 8 * 8 * 8 * 4 * 16 + 4 * 16 * 16 * 10


def test_arch_round_trip_and_bad_sizes():
    a = student_arch("fastpose_mbv2_w050", input_size=(128, 96))
    assert StudentArch.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    with pytest.raises(GaitdataError, match="not divisible"):
        student_arch("fastpose_res18_w050", input_size=(100, 75))
    with pytest.raises(GaitdataError, match="unknown backbone"):
        StudentArch(backbone="vgg", depths=(1,))


# ---- crops and targets -------------------------------------------------------------------------


def test_affine_crop_puts_pixels_where_keypoints_go():
    img = np.zeros((120, 160, 3), np.uint8)
    img[40, 100] = 255  # one bright pixel at (x=100, y=40)
    c, s = D.box_to_center_scale((60, 20, 60, 80), 48 / 64)
    for rot, flip in ((0.0, False), (20.0, False), (-15.0, True)):
        mat = D.affine_matrix(c, s, rot, (64, 48), flip)
        crop = D.warp(img, mat, (64, 48)).astype(float)[..., 0]
        y, x = np.unravel_index(crop.argmax(), crop.shape)
        px, py = D.apply_affine(np.array([[100.0, 40.0]]), mat)[0]
        assert abs(x - px) <= 1 and abs(y - py) <= 1
        back = D.apply_affine(np.array([[px, py]]), D.invert_affine(mat))[0]
        assert np.allclose(back, (100, 40), atol=1e-6)


def test_targets_decode_back_to_keypoints(toy):
    insts, _ = D.load_coco_instances(toy / "exports/coco/val.json", toy)
    ds = D.CropDataset(insts, (64, 48), (16, 12))
    items = [ds[i] for i in range(4)]
    hm = np.stack([it["target"] for it in items])
    mats = np.stack([it["mat"] for it in items])
    gt = np.stack([it["keypoints"][:, :2] for it in items])
    xy, peak = D.heatmaps_to_image(hm, mats, (64, 48), refine="quarter")
    assert np.abs(xy - gt).max() < 3.0  # a heatmap pixel is ~2.5 image pixels here; quarter-pixel steps
    xy, peak = D.heatmaps_to_image(hm, mats, (64, 48))  # log-parabola: exact for Gaussian peaks
    assert np.abs(xy - gt).max() < 0.2
    assert (peak > 0.5).all()
    # the weights are the teacher's confidences for labelled joints
    assert np.allclose(items[0]["weight"], insts[0].scores)


def test_flip_swaps_left_and_right(toy):
    insts, _ = D.load_coco_instances(toy / "exports/coco/val.json", toy)
    aug = D.AugmentConfig(flip_prob=1.0, scale_factor=0.0, rot_prob=0.0, half_body_prob=0.0, **NO_COLOUR)
    plain = D.CropDataset(insts, (64, 48), (16, 12))[0]
    flipped = D.CropDataset(insts, (64, 48), (16, 12), train=True, augment=aug)[0]
    ls, rs = COCO17.index("left_shoulder"), COCO17.index("right_shoulder")
    # the flipped crop is the mirror image (up to one grey level of interpolation rounding) ...
    assert np.abs(flipped["image"] - plain["image"][:, :, ::-1]).max() < 0.01
    # ... and its left_shoulder channel decodes to the person's right shoulder (the mirrored joint)
    xy, _ = D.heatmaps_to_image(flipped["target"][None], flipped["mat"][None], (64, 48))
    assert np.abs(xy[0, ls] - insts[0].keypoints[rs, :2]).max() < 3.0
    assert np.abs(xy[0, ls] - insts[0].keypoints[ls, :2]).max() > 3.0


def test_photometric_augmentation():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, size=(8, 6, 3), dtype=np.uint8)
    same = {"b": 1.0, "c": 1.0, "s": 1.0, "perm": None, "gray": False}
    assert np.abs(D.apply_color(crop, same).astype(int) - crop).max() <= 1
    swapped = D.apply_color(crop, {**same, "perm": np.array([2, 1, 0])})
    assert np.abs(swapped.astype(int) - crop[..., ::-1]).max() <= 1
    gray = D.apply_color(crop, {**same, "gray": True})
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    dark = D.apply_color(crop, {**same, "b": 0.5})
    assert dark.mean() < 0.6 * crop.mean()


def test_augmentation_is_repeatable_per_seed_epoch_index(toy):
    insts, _ = D.load_coco_instances(toy / "exports/coco/train.json", toy)
    a = D.CropDataset(insts, (64, 48), (16, 12), train=True, seed=3)
    b = D.CropDataset(insts, (64, 48), (16, 12), train=True, seed=3)
    assert np.array_equal(a[5]["image"], b[5]["image"])
    b.set_epoch(1)
    assert not np.array_equal(a[5]["image"], b[5]["image"])


# ---- training ----------------------------------------------------------------------------------


def test_tiny_student_learns(toy, tmp_path):
    insts, _ = D.load_coco_instances(toy / "exports/coco/val.json", toy)
    val = D.CropDataset(insts, (64, 48), (16, 12))
    torch.manual_seed(0)
    untrained = dataset_pck(create_student("fastpose_res10_w025", **TINY), val)
    run = train(toy, model="fastpose_res10_w025", epochs=12, out=tmp_path / "run", **FAST)
    trained = dataset_pck(model_from_checkpoint(run / "best.pt"), val)
    assert trained > 0.6 and trained > untrained + 0.4, (untrained, trained)
    rows = list(csv.DictReader((run / "train_log.csv").open()))
    epochs = [r for r in rows if r["row"] == "epoch"]
    assert [int(r["epoch"]) for r in epochs] == list(range(12))
    assert float(epochs[-1]["loss"]) < 0.7 * float(epochs[0]["loss"])
    assert all(r["val_pck"] for r in epochs) and {"lr", "step"} <= set(rows[0])
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train_instances"] == 36 and cfg["arch"]["input_size"] == [64, 48]


def test_cpu_runs_are_repeatable_and_resume_checks_config(toy, tmp_path):
    a = train(toy, model="fastpose_res10_w025", epochs=1, out=tmp_path / "a", seed=5, **FAST)
    b = train(toy, model="fastpose_res10_w025", epochs=1, out=tmp_path / "b", seed=5, **FAST)
    sa, sb = load_checkpoint(a / "last.pt")["state_dict"], load_checkpoint(b / "last.pt")["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    mtime = (a / "last.pt").stat().st_mtime_ns
    assert train(toy, model="fastpose_res10_w025", epochs=1, out=a, seed=5, **FAST) == a  # finished: no-op
    assert (a / "last.pt").stat().st_mtime_ns == mtime
    with pytest.raises(GaitdataError, match="already holds a training run with a different configuration"):
        train(toy, model="fastpose_res10_w025", epochs=1, out=a, seed=5, **{**FAST, "batch_size": 4})
    with pytest.raises(GaitdataError, match=r"--resume refused.*lr: 0\.003 -> 0\.01.*seed: 5 -> 6"):
        train(toy, model="fastpose_res10_w025", epochs=2, out=a, seed=6, resume=True, **{**FAST, "lr": 1e-2})
    train(toy, model="fastpose_res10_w025", epochs=2, out=a, seed=5, resume=True, **FAST)
    ck = load_checkpoint(a / "last.pt")
    assert ck["epoch"] == 1
    rows = [r for r in csv.DictReader((a / "train_log.csv").open()) if r["row"] == "epoch"]
    assert [r["epoch"] for r in rows] == ["0", "1"]


def test_distillation_from_fastpose_checkpoint(tmp_path):
    fastpose = pytest.importorskip("pseudolabel.models.fastpose")
    root = stick_figure_root(tmp_path / "d", n_videos=1, n_frames=6, splits=("train",))
    torch.manual_seed(0)
    teacher = fastpose.build_fastpose_r50()
    wpath = tmp_path / "fast_res50_256x192.pth"
    torch.save(teacher.state_dict(), wpath)  # random weights, the official key layout
    run = train(root, model="fastpose_res10_w025", epochs=1, out=tmp_path / "run", teacher_weights=str(wpath),
                teacher_input_size=(128, 96), distill_alpha=0.5, log_every=1, **FAST)  # fmt: skip
    rows = [r for r in csv.DictReader((run / "train_log.csv").open()) if r["row"] == "step"]
    assert rows and all(float(r["distill_loss"]) > 0 for r in rows)
    assert json.loads((run / "config.json").read_text())["teacher_sha256"]
    # a checkpoint that is not FastPose's is refused with the expected-vs-found key error
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(GaitdataError, match="missing keys"):
        train(
            root,
            model="fastpose_res10_w025",
            epochs=1,
            out=tmp_path / "run2",
            teacher_weights=str(bad),
            **FAST,
        )


# ---- bad input ---------------------------------------------------------------------------------


def _write_coco(path, anns, k=17):
    cat = {"id": 1, "name": "person", "keypoints": [f"j{i}" for i in range(k)], "skeleton": []}
    img = {"id": 1, "file_name": "frames/v/rgb/000000.jpg", "width": 64, "height": 64}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": [img], "annotations": anns, "categories": [cat]}))


def test_bad_exports(tmp_path):
    from gaitdata.dataset import DatasetRoot

    DatasetRoot(tmp_path).init()
    exp = tmp_path / "exports" / "coco"
    _write_coco(exp / "train.json", [])
    with pytest.raises(GaitdataError, match="no usable person annotations"):
        train(tmp_path, epochs=1, **FAST)
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 30, 40], "keypoints": [5.0, 5.0, 2] * 13}
    _write_coco(exp / "train.json", [ann], k=13)
    with pytest.raises(GaitdataError, match="13 keypoints but the model expects 17"):
        train(tmp_path, epochs=1, **FAST)
    with pytest.raises(FileNotFoundError, match="no train.json"):
        train(tmp_path, tmp_path / "nowhere", epochs=1, **FAST)
    with pytest.raises(GaitdataError, match="unknown training option"):
        train(tmp_path, epochs=1, learning_rate=1.0)


def test_corrupt_and_foreign_checkpoints(tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(GaitdataError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv1.weight": torch.zeros(3)}, foreign)
    with pytest.raises(GaitdataError, match="not a gaitdata student checkpoint"):
        load_checkpoint(foreign)
    empty = tmp_path / "run"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no best.pt or last.pt"):
        load_checkpoint(empty)


def test_loss_terms():
    from gaitdata.student.trainer import distill_term, heatmap_loss

    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 17, 16, 12, generator=g)
    t = torch.randn(2, 17, 64, 48, generator=g)
    assert float(distill_term(s, s, "mse")) == 0.0
    assert float(distill_term(s, s, "kl")) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_term(s, t, "kl")) > 0 and float(distill_term(s, t, "mse")) > 0  # teacher resized
    w = torch.zeros(2, 17)
    assert float(heatmap_loss(s, torch.zeros_like(s), w)) == 0.0  # unlabelled joints cost nothing
    w[0, 3] = 0.5
    expect = 0.5 * float((s[0, 3] ** 2).mean()) / 34
    assert float(heatmap_loss(s, torch.zeros_like(s), w)) == pytest.approx(expect, rel=1e-5)


# ---- configuration -----------------------------------------------------------------------------


def test_augmentation_is_nested_and_old_flat_configs_still_compare():
    from gaitdata.student.trainer import TrainConfig, config_diff

    cfg = TrainConfig.from_kwargs(flip_prob=0.0, rot_factor=5.0, lr=1e-3)
    assert cfg.augment.flip_prob == 0.0 and cfg.augment.rot_factor == 5.0 and cfg.lr == 1e-3
    d = cfg.to_dict()
    assert d["augment"]["rot_factor"] == 5.0 and "flip_prob" not in d
    assert TrainConfig.from_kwargs(augment=d["augment"]).augment == cfg.augment
    # a run stored with the former flat layout compares equal to the same options nested
    flat = {k: v for k, v in d.items() if k != "augment"} | d["augment"]
    assert config_diff(flat, d) == []
    assert config_diff(flat, TrainConfig.from_kwargs(flip_prob=0.5, rot_factor=5.0, lr=1e-3).to_dict()) == [
        "augment.flip_prob: 0.0 -> 0.5"
    ]
    with pytest.raises(GaitdataError, match="unknown training option"):
        TrainConfig.from_kwargs(flip_probability=0.5)


def test_zero_epochs_is_refused(toy, tmp_path):
    from click.testing import CliRunner

    from gaitdata.cli.train import command

    with pytest.raises(GaitdataError, match="epochs must be at least 1"):
        train(toy, model="fastpose_res10_w025", epochs=0, out=tmp_path / "r", **FAST)
    r = CliRunner().invoke(command, [str(toy), "--epochs", "0", "--out", str(tmp_path / "r2")])
    assert r.exit_code == 2 and "0 is not in the range x>=1" in r.output
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()


def test_flips_respect_the_scene(toy):
    insts, _ = D.load_coco_instances(toy / "exports/coco/train.json", toy)
    # toy00 and toy02 walk right, toy01 left: side views both ways, mirrors add nothing
    assert {i.video_id for i in insts} == {"toy00", "toy01", "toy02"}
    p, why = D.scene_flip_prob(insts)
    assert p == 0.0 and "both ways" in why
    one_way = [i for i in insts if i.video_id != "toy01"]
    assert D.scene_flip_prob(one_way)[0] == 0.5
    ds = D.CropDataset(insts, (64, 48), (16, 12), train=True)  # "auto" resolved on the data
    assert ds.aug.flip_prob == 0.0


def test_training_labels_are_made_left_right_consistent(toy, tmp_path):
    insts, _ = D.load_coco_instances(toy / "exports/coco/train.json", toy)
    ls, rs = [COCO17.index(f"left_{n}") for n in ("knee", "ankle")], [COCO17.index(f"right_{n}") for n in ("knee", "ankle")]
    bad = list(insts)
    assert D.consistent_instances(insts)[1] == 0  # consistent labels are left alone
    sep = [np.linalg.norm(it.keypoints[15, :2] - it.keypoints[16, :2]) if it.video_id == "toy00" else 0 for it in insts]
    worst = int(np.argmax(sep))
    swapped = (worst, worst + 1) if insts[worst + 1].video_id == "toy00" else (worst - 1, worst)
    for i in swapped:  # a teacher that swapped the legs in two frames of toy00, legs well apart
        it = bad[i]
        kp = it.keypoints.copy()
        kp[ls + rs] = it.keypoints[rs + ls]
        bad[i] = D.Instance(**{**it.__dict__, "keypoints": kp})
    fixed, n = D.consistent_instances(bad)
    assert n == 2
    for i in swapped:
        assert np.allclose(fixed[i].keypoints[:, :2], insts[i].keypoints[:, :2])
    run = train(toy, model="fastpose_res10_w025", epochs=1, out=tmp_path / "run", **FAST)
    cfg = json.loads((run / "config.json").read_text())
    assert "label_consistency_fixes" in cfg and cfg["flip_prob"] == 0.0 and cfg["flip_reason"] == "set"
    assert run.parent == tmp_path
    default_dir = train(toy, model="fastpose_res10_w025", epochs=1, **FAST)
    assert default_dir == toy / "models" / "fastpose_res10_w025"  # DatasetRoot.models_dir
