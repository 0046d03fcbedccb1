"""Student compression (slimming, int8, ONNX) and evaluation against teacher and ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gaitdata import student  # noqa: E402
from gaitdata.errors import GaitdataError  # noqa: E402
from gaitdata.labels import read_labels  # noqa: E402
from gaitdata.schema import COCO17  # noqa: E402
from gaitdata.student.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from gaitdata.student.evaluation import (  # noqa: E402
    angle_agreement,
    coco_ap,
    pck_table,
    persons_from_labels,
)
from gaitdata.student.models import count_flops, count_parameters, create_student  # noqa: E402
from gaitdata.student.slim import prunable_groups, prune, select_channels  # noqa: E402
from gaitdata.testing.figures import TINY_STUDENT as TINY  # noqa: E402
from gaitdata.testing.figures import trained_tiny_student  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_tiny_student(tmp_path_factory.mktemp("toyc"), slim_l1=1e-2)


def _randomise_bn(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            n = mod.num_features
            mod.weight.data = torch.rand(n, generator=g) * 0.8 + 0.2
            mod.bias.data = torch.rand(n, generator=g) * 0.2 - 0.1
            mod.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
            mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)


@pytest.mark.parametrize("name", ["fastpose_res10_w025", "fastpose_mbv2_w050", "deconv_res18_w050"])
def test_pruning_dead_channels_is_exact(name):
    """Channels with zero BN scale (and beta <= 0) carry nothing: removing them leaves the output
    unchanged, the model gets physically smaller, DUC convs keep multiples of r^2."""
    m = create_student(name, input_size=(64, 48), width_mult=0.5).eval()
    _randomise_bn(m)
    sd = m.state_dict()
    for g in prunable_groups(m):
        w, b = sd[f"{g.score_bn}.weight"], sd[f"{g.score_bn}.bias"]
        for u in range(0, len(w) // g.chunk, 2):
            w[u * g.chunk : (u + 1) * g.chunk] = 0
            b[u * g.chunk : (u + 1) * g.chunk] = -1
    x = torch.randn(2, 3, 64, 48)
    pruned = prune(m, select_channels(m, ratio=0.4))
    with torch.no_grad():
        y, y2 = m(x), pruned(x)
    assert y2.shape == y.shape
    assert torch.allclose(y, y2, atol=1e-5)
    assert count_parameters(pruned) < 0.8 * count_parameters(m)
    assert count_flops(pruned) < count_flops(m)
    for mod_name, mod in pruned.named_modules():
        if mod_name.startswith("head.") and hasattr(mod, "shuffle"):
            assert mod.conv.out_channels % (mod.r**2) == 0


def test_slim_meets_its_mac_budget_and_checks_itself(run):
    root, run_dir = run
    before = model_from_checkpoint(run_dir / "best.pt")
    path = student.compress(run_dir, "slim", macs_reduction=0.3, rounds=2, finetune_epochs=1)
    assert path.name == "pruned.pt"
    ck = load_checkpoint(path)
    assert ck["kind"] == "slim"
    pruned = model_from_checkpoint(ck)
    assert count_flops(pruned) <= 0.7 * count_flops(before) * 1.001  # the budget, not a BN threshold
    removed = {k: before.widths[k] - pruned.widths[k] for k in before.widths if before.widths[k] != pruned.widths[k]}
    assert removed and all(v > 0 for v in removed.values())
    # per-layer floors: no group below a quarter of its width
    assert all(pruned.widths[k] >= 0.25 * before.widths[k] - 1e-9 for k in before.widths)
    with torch.no_grad():
        assert pruned(torch.zeros(1, 3, 64, 48)).shape == (1, 17, 16, 12)
    summary = json.loads((run_dir / "compress.json").read_text())["pruned.pt"]
    assert summary["params_after"] == count_parameters(pruned) and summary["finetune_epochs"] == 1
    assert summary["macs_reduction"] >= 0.3 - 1e-3 and summary["budget_met"]
    assert [h["round"] for h in summary["history"]] == [1, 2]
    check = summary["check"]  # measured against fp32 on the validation part
    assert check["part"] == "val" and check["persons"] == 12
    assert check["drop"] == pytest.approx(check["reference"] - check["value"])
    assert check["within_tolerance"] == (check["drop"] <= check["tolerance"])


def test_a_variant_that_misses_its_tolerance_is_reported(run, tmp_path):
    from click.testing import CliRunner

    from gaitdata.cli.compress import command

    root, run_dir = run
    # prune 80% of the MACs without any fine-tuning, with no tolerance at all: a certain miss
    out = tmp_path / "crushed.pt"
    r = CliRunner().invoke(command, [str(run_dir / "best.pt"), "--method", "slim", "--macs-reduction", "0.8",
                                     "--min-keep", "0.05", "--rounds", "1", "--finetune-epochs", "0",
                                     "--tolerance", "0", "--out", str(out), "--strict", "-q"])  # fmt: skip
    assert r.exit_code == 1, r.output
    assert "MISSES its tolerance" in r.output
    check = json.loads((tmp_path / "compress.json").read_text())["crushed.pt"]["check"]
    assert not check["within_tolerance"] and check["drop"] > 0


def test_slim_l1_is_a_soft_threshold_on_prunable_scales(run, tmp_path):
    from gaitdata.student.slim import prunable_bns

    root, _ = run
    # a huge strength: every prunable scale is thresholded to exactly 0 (a gradient term fed through
    # Adam would move each by about lr per step and never land on 0); other BNs are left alone
    run_dir = student.train(root, model="fastpose_res10_w025", epochs=1, out=tmp_path / "l1", batch_size=8,
                            model_kwargs=TINY, slim_l1=1e4, warmup_epochs=0.0)  # fmt: skip
    net = model_from_checkpoint(run_dir / "last.pt")
    slim = prunable_bns(net)
    assert slim and all(float(bn.weight.detach().abs().max()) == 0.0 for bn in slim)
    ids = {id(bn) for bn in slim}
    others = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d) and id(m) not in ids]
    assert others and all(float(bn.weight.detach().abs().min()) > 0.5 for bn in others)


def test_int8_runs_and_stays_close(run):
    root, run_dir = run
    path = student.compress(run_dir, "int8", calibration=24)
    assert path.name == "int8.pt"
    q = model_from_checkpoint(path)
    fp = model_from_checkpoint(run_dir / "best.pt")
    from gaitdata.student.compression import calibration_crops

    x = torch.as_tensor(calibration_crops(load_checkpoint(run_dir / "best.pt"), 8, split="val"))
    with torch.no_grad():
        y, yq = fp(x), q(x)
    assert yq.shape == y.shape and yq.dtype == torch.float32
    assert float((y - yq).abs().max()) < 0.15 * float(y.abs().max())
    # the same peaks in (nearly) every heatmap
    same = (y.flatten(2).argmax(-1) == yq.flatten(2).argmax(-1)).float().mean()
    assert same > 0.8
    assert path.stat().st_size < 0.5 * (run_dir / "best.pt").stat().st_size


def test_onnx_matches_pytorch(run):
    ort = pytest.importorskip("onnxruntime")
    root, run_dir = run
    path = student.compress(run_dir, "onnx")
    info = json.loads((run_dir / "compress.json").read_text())["model.onnx"]
    assert info["max_abs_diff"] <= 1e-4 and info["opset"] == 17
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3, 3, 64, 48)).astype(np.float32)  # dynamic batch
    got = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        ref = model_from_checkpoint(run_dir / "best.pt")(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() <= 1e-4


def test_compress_rejects_bad_input(run, tmp_path):
    root, run_dir = run
    with pytest.raises(GaitdataError, match="unknown compression method.*slim, int8, onnx"):
        student.compress(run_dir, "zip")
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(GaitdataError, match="not a readable PyTorch checkpoint"):
        student.compress(bad, "int8")


def test_labels_against_themselves_score_perfectly(run):
    root, _ = run
    p = persons_from_labels(read_labels(root, "teacher"), 17)
    assert coco_ap(p, p)["AP"] == pytest.approx(1.0)
    t = pck_table(p, p)
    assert t["PCK@0.05"] == 1.0 and t["mean_px"] == 0.0 and t["mean_OKS"] == pytest.approx(1.0)
    ang = angle_agreement(p, p)["summary"]
    assert all(v["rmse"] == 0.0 for v in ang.values())
    # and a shifted copy is worse on every count
    q = persons_from_labels(read_labels(root, "teacher"), 17)
    q.kp[..., :2] += 6.0
    assert coco_ap(p, q)["AP"] < 0.9 and pck_table(q, p)["PCK@0.05"] < 1.0


def test_evaluate_writes_report(run):
    root, run_dir = run
    before = sorted(p.name for p in run_dir.iterdir())
    res = student.evaluate(root, run_dir, split="test", labels="teacher", latency_runs=2)
    written = sorted(set(p.name for p in run_dir.iterdir()) - set(before))
    assert set(written) <= {"report.md", "metrics.json", "report"}  # no compressed model as a side effect
    assert res.report.is_file() and res.report.parent == run_dir
    text = res.report.read_text()
    for heading in ("Accuracy against the teacher", "Accuracy against ground truth", "Per-joint error",
                    "Gait angles, by view", "Cost"):  # fmt: skip
        assert heading in text
    for p in res.plots:
        assert p.is_file() and p.stat().st_size > 1000
    assert {p.name for p in res.plots} >= {
        "training.png",
        "per_joint.png",
        "angles.png",
        "accuracy_vs_cost.png",
    }
    m = res.metrics
    assert m["persons"] == 12 and m["ground_truth"] == "ground_truth"
    fp32 = m["variants"]["fp32"]["vs_teacher"]
    assert 0.0 <= fp32["AP"] <= 1.0 and fp32["PCK@0.2"] >= fp32["PCK@0.1"] >= fp32["PCK@0.05"]
    assert fp32["PCK@0.2"] > 0.7  # a trained student finds the drawn figure
    assert m["teacher_vs_gt"]["PCK@0.1"] > 0.95  # the toy teacher is ground truth + 1 px noise
    names = [c["model"] for c in res.cost]
    assert names[0] == "student fp32"
    ref = next(c for c in res.cost if c["model"].startswith("FastPose-R50"))
    assert ref["params"] == 40_577_745 and ref["macs"] > 100 * res.cost[0]["macs"]
    assert ref["weights"] == "random" and not ref["accuracy"]  # a cost-only reference, labelled so
    assert "no: cost only" in text
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["variants"]["fp32"]["vs_teacher"]["AP"] == pytest.approx(fp32["AP"])


def test_evaluate_cli_and_bad_part(run):
    from click.testing import CliRunner

    from gaitdata.cli.evaluate import command

    root, run_dir = run
    r = CliRunner().invoke(
        command,
        [
            str(root),
            "--run",
            str(run_dir),
            "--part",
            "test",
            "--no-latency",
            "--flip-test",
            "--gt",
            "none",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "fp32" in r.output and "report:" in r.output
    assert json.loads((run_dir / "metrics.json").read_text())["flip_test"] is True
    with pytest.raises(FileNotFoundError, match="nope.json"):
        student.evaluate(root, run_dir, split="nope", latency=False)
    # the former spelling still works, with a notice; a missing run is a usage error
    r = CliRunner().invoke(command, [str(root), "--model", str(run_dir), "--no-latency", "--gt", "none"])
    assert r.exit_code == 0 and "--model is deprecated" in r.output
    r = CliRunner().invoke(command, [str(root), "--no-latency"])
    assert r.exit_code == 2 and "missing --run" in r.output
    # --split is the former spelling of --part: it still names the part, with a notice
    r = CliRunner().invoke(command, [str(root), "--run", str(run_dir), "--split", "nope", "--no-latency", "--gt", "none"])
    assert r.exit_code != 0 and "--split is deprecated; use --part" in r.output
    assert "nope.json" in f"{r.output} {r.exception}"
    r = CliRunner().invoke(command, [str(root), "--run", str(run_dir), "--part", "val", "--split", "test"])
    assert r.exit_code == 2 and "give the part once" in r.output
    assert "--split" not in CliRunner().invoke(command, ["--help"]).output


def test_accuracy_against_ground_truth_does_not_depend_on_row_order(run):
    from gaitdata.student.evaluation import accuracy, match_boxes

    root, _ = run
    p = persons_from_labels(read_labels(root, "teacher"), 17)
    gt = persons_from_labels(read_labels(root, "ground_truth"), 17)
    shuffled = gt.subset(np.random.default_rng(0).permutation(len(gt)))
    a, b = accuracy(p, p, gt, COCO17), accuracy(p, p, shuffled, COCO17)
    assert a["PCK@0.1"] == pytest.approx(b["PCK@0.1"]) and a["mean_px"] == pytest.approx(b["mean_px"])
    assert a["mean_px"] < 3.0  # the toy teacher is ground truth + 1 px noise
    # matching is one-to-one: two persons in one frame never share a partner
    ia, ib = match_boxes(p, gt)
    assert len(set(ib.tolist())) == len(ib) == len(p)
