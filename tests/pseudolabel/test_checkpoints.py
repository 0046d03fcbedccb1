"""Strict checkpoint loading (pseudolabel.checkpoints) on small modules saved by the tests."""

from __future__ import annotations

import hashlib

import pytest

torch = pytest.importorskip("torch")

from pseudolabel.checkpoints import (  # noqa: E402
    CheckpointError,
    check_state_dict,
    clean_state_dict,
    load_checkpoint,
    make_filter_fn,
    read_checkpoint,
    resolve_weights,
    sha256_file,
)


def _tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))


def _same_params(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("layout", ["raw", "state_dict", "model", "module_prefix", "wrapped_prefixed"])
def test_round_trip_layouts(tmp_path, layout):
    src = _tiny(1)
    src[1].running_mean.uniform_()  # buffers travel too
    sd = src.state_dict()
    if layout == "state_dict":
        obj = {"epoch": 140, "state_dict": sd}
    elif layout == "model":
        obj = {"model": sd}
    elif layout == "module_prefix":
        obj = {f"module.{k}": v for k, v in sd.items()}
    elif layout == "wrapped_prefixed":
        obj = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}
    else:
        obj = sd
    path = tmp_path / "ck.pth"
    torch.save(obj, path)
    dst = _tiny(2)
    assert not _same_params(src, dst)
    digest = load_checkpoint(path, dst)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() == sha256_file(path)
    assert _same_params(src, dst)
    x = torch.randn(1, 3, 8, 8)
    src.eval(), dst.eval()
    assert torch.equal(src(x), dst(x))


def test_foreign_checkpoint_lists_keys_and_expected(tmp_path):
    path = tmp_path / "resnet_classifier.pth"
    torch.save({"fc.weight": torch.zeros(10, 5), "fc.bias": torch.zeros(10)}, path)
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint(path, _tiny(), expected="the tiny test model")
    msg = str(ei.value)
    assert str(path) in msg
    assert "missing keys" in msg and "0.weight" in msg
    assert "unexpected keys" in msg and "fc.weight" in msg
    assert "expected the tiny test model" in msg


def test_shape_mismatch_is_listed(tmp_path):
    sd = _tiny().state_dict()
    sd["2.weight"] = torch.zeros(3, 4, 1, 1)
    path = tmp_path / "bad_shape.pth"
    torch.save(sd, path)
    with pytest.raises(
        CheckpointError, match=r"shape mismatches.*2\.weight \(3, 4, 1, 1\) vs \(2, 4, 1, 1\)"
    ):
        load_checkpoint(path, _tiny())
    # non-strict still refuses wrong shapes
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_checkpoint(path, _tiny(), strict=False)


def test_non_strict_accepts_subset(tmp_path):
    src = _tiny(3)
    sd = {k: v for k, v in src.state_dict().items() if not k.startswith("2.")}
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    dst = _tiny(4)
    with pytest.raises(CheckpointError, match=r"missing keys \[2\.weight, 2\.bias\]"):
        load_checkpoint(path, dst)
    load_checkpoint(path, dst, strict=False)
    assert torch.equal(dst[0].weight, src[0].weight)


@pytest.mark.parametrize("cut", [0, 10, 0.5, -1])
def test_truncated_or_empty_file(tmp_path, cut):
    path = tmp_path / "good.pth"
    torch.save(_tiny().state_dict(), path)
    data = path.read_bytes()
    n = cut if isinstance(cut, int) and cut >= 0 else (len(data) - 1 if cut == -1 else int(len(data) * cut))
    bad = tmp_path / "cut.pth"
    bad.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_checkpoint(bad, _tiny())


def test_legacy_serialisation_and_truncation(tmp_path):
    path = tmp_path / "legacy.pth"
    src = _tiny(5)
    torch.save(src.state_dict(), path, _use_new_zipfile_serialization=False)
    dst = _tiny(6)
    load_checkpoint(path, dst)
    assert _same_params(src, dst)
    data = path.read_bytes()
    (tmp_path / "legacy_cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_checkpoint(tmp_path / "legacy_cut.pth", _tiny())


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="notes.pth.*not a PyTorch weights file"):
        read_checkpoint(text)
    with pytest.raises(CheckpointError, match="not found.*expected X"):
        read_checkpoint(tmp_path / "absent.pth", expected="X")
    # a pickle with a non-tensor object is refused by weights_only loading
    obj = tmp_path / "object.pth"
    torch.save({"a": torch.zeros(1), "cfg": {"x": 1}}, obj)
    with pytest.raises(CheckpointError, match="non-tensor entries"):
        load_checkpoint(obj, _tiny())
    torch.save([1, 2, 3], obj)
    with pytest.raises(CheckpointError, match="found list"):
        load_checkpoint(obj, _tiny())


def test_filter_fn_is_pure_and_applied(tmp_path):
    src = _tiny(7)
    renamed = {f"net.{k}": v for k, v in src.state_dict().items()}
    renamed["head.fc.weight"] = torch.zeros(1000, 512)
    path = tmp_path / "renamed.pth"
    torch.save({"state_dict": renamed}, path)
    fn = make_filter_fn(renames=[(r"^net\.", "")], drop=[r"^head\.fc\."])
    before = dict(renamed)
    out = fn(renamed, None)
    assert renamed == before and "head.fc.weight" not in out and "0.weight" in out
    dst = _tiny(8)
    load_checkpoint(path, dst, filter_fn=fn)
    assert _same_params(src, dst)
    with pytest.raises(CheckpointError, match="unexpected keys"):
        load_checkpoint(path, _tiny())


def test_clean_and_check_pure_functions():
    sd = _tiny().state_dict()
    wrapped = {"epoch": 1, "state_dict": {f"module.{k}": v for k, v in sd.items()}}
    out = clean_state_dict(wrapped)
    assert list(out) == list(sd)
    assert "module.0.weight" in wrapped["state_dict"]  # input untouched
    check_state_dict(out, _tiny())
    with pytest.raises(CheckpointError, match="no tensors"):
        clean_state_dict({"epoch": 1})


def test_resolve_weights_path_folder_or_environment(tmp_path, monkeypatch):
    from gaitdata.errors import GaitdataError

    args = ("x.pth", "toy", "the toy checkpoint", "the toy zoo")
    (tmp_path / "x.pth").write_bytes(b"w")
    monkeypatch.delenv("GAITDATA_WEIGHTS_DIR", raising=False)
    assert resolve_weights(tmp_path / "x.pth", *args) == tmp_path / "x.pth"
    assert resolve_weights(tmp_path, *args) == tmp_path / "x.pth"  # a folder holding the file
    with pytest.raises(GaitdataError, match=r"^toy weights not found: .*y\.pth; pass the path of the toy checkpoint"):
        resolve_weights(tmp_path / "y.pth", *args)
    with pytest.raises(GaitdataError, match=r"the toy teacher needs .*GAITDATA_WEIGHTS_DIR is not set.*toy zoo"):
        resolve_weights(None, *args)
    monkeypatch.setenv("GAITDATA_WEIGHTS_DIR", str(tmp_path))
    assert resolve_weights(None, *args) == tmp_path / "x.pth"
    monkeypatch.setenv("GAITDATA_WEIGHTS_DIR", str(tmp_path / "empty"))
    with pytest.raises(GaitdataError, match=r"GAITDATA_WEIGHTS_DIR=.*empty has no x\.pth"):
        resolve_weights(None, *args)
