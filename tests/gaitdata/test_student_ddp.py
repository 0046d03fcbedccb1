"""Data-parallel training under torchrun on CPU (Gloo): disjoint shards, averaged gradients and global-batch
batch norm (2 processes x batch B take the step of one process with batch 2B), rank 0 alone writes, resume."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from gaitdata.errors import GaitdataError  # noqa: E402
from gaitdata.lock import root_lock  # noqa: E402
from gaitdata.student import train  # noqa: E402
from gaitdata.student.checkpoint import load_checkpoint  # noqa: E402
from gaitdata.student.ddp import GlobalBatchNorm2d, sync_batch_norm  # noqa: E402
from gaitdata.student.trainer import _EpochSampler, setup_placement  # noqa: E402
from gaitdata.testing.figures import stick_figure_root  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with Gloo not available"
    ),
    pytest.mark.usefixtures("one_torch_thread"),
]

B = 4  # batch per process; the toy root has 2 * B training persons: one step per epoch
CLI = ["--model", "fastpose_res10_w025", "--input-size", "64x48", "--width", "0.25", "--seed", "3", "--record-samples"]
# the same run through the library (the command line's defaults where the library's differ)
LIB = {"model": "fastpose_res10_w025", "model_kwargs": {"input_size": [64, 48], "width_mult": 0.25}, "seed": 3,
       "slim_l1": 1e-4, "record_samples": True}  # fmt: skip

# installed as sitecustomize in the torchrun processes: every write under WATCH, per rank
_AUDIT = '''
import os, sys
_rank, _watch, _logs = os.environ.get("RANK"), os.environ.get("GAITDATA_TEST_WATCH"), os.environ.get("GAITDATA_TEST_WRITES")
if _rank is not None and _watch and _logs:
    _log = open(os.path.join(_logs, "rank" + _rank + ".txt"), "a", buffering=1)
    _W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _EVENTS = {"os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate", "os.link", "os.symlink",
               "os.chmod", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move"}

    def _under(p):
        try:
            return isinstance(p, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(p)).startswith(_watch)
        except Exception:
            return False

    def _hook(event, args):
        if event == "open" and len(args) == 3:
            if isinstance(args[2], int) and args[2] & _W and _under(args[0]):
                _log.write("open " + os.fsdecode(args[0]) + "\\n")
        elif event in _EVENTS and any(_under(a) for a in args[:2]):
            _log.write(event + " " + " ".join(os.fsdecode(a) for a in args[:2] if _under(a)) + "\\n")

    sys.addaudithook(_hook)
'''




def _torchrun() -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]


def _run_torchrun(args: list[str], tmp: Path, held: contextlib.ExitStack | None = None, timeout: float = 180) -> str:
    """``torchrun --standalone --nproc_per_node 2 -m gaitdata train ARGS`` on CPU; its output. ``held``: the
    root lock, held by this process, released once the run says that it waits for it. Every process the
    run started is gone when this returns."""
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_AUDIT)
    writes = tmp / "writes"
    writes.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}  # fmt: skip
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), env.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1",
        GAITDATA_TEST_WATCH=str(tmp / "work"), GAITDATA_TEST_WRITES=str(writes), CUDA_VISIBLE_DEVICES="",
    )  # fmt: skip
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # stay on the loopback interface
    cmd = [*_torchrun(), "--standalone", "--nproc_per_node", "2", "-m", "gaitdata", "train", *args]
    log = tmp / f"torchrun-{len(list(tmp.glob('torchrun-*.log')))}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while held is not None and "waiting for dataset root" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.1)
        if held is not None:
            held.close()
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except BaseException:
        # torchrun and its workers share a session (not yet reaped, so its id is still theirs): end them all
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    out = log.read_text()
    assert proc.returncode == 0, out[-4000:]
    return out


def _samples(path: Path) -> list[dict[str, int]]:
    with path.open() as fh:
        return [{k: int(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def _by_step(rows: list[dict[str, int]], epoch: int) -> dict[int, dict[int, set[int]]]:
    """{step: {rank: set of dataset indices}} of one epoch."""
    out: dict[int, dict[int, set[int]]] = {}
    for r in rows:
        if r["epoch"] == epoch:
            out.setdefault(r["step"], {}).setdefault(r["rank"], set()).add(r["index"])
    return out


def _assert_same_step(ddp: dict, single: dict, what: str) -> None:
    """Weights and buffers within float tolerance; Adam's first moment (0.1 x gradient after one step)
    too, which a sum of the ranks' gradients instead of their mean would double."""
    sa, sb = ddp["state_dict"], single["state_dict"]
    assert sa.keys() == sb.keys()
    for k in sa:
        if sa[k].is_floating_point():
            torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=1e-4, msg=lambda m, k=k: f"{what} {k}: {m}")
    moved = max((sa[k] - p).abs().max().item() for k, p in _init_weights(single).items())
    assert moved > 1e-3, f"{what}: the step barely moved the weights ({moved})"
    ga, gb = ddp["optimizer"]["state"], single["optimizer"]["state"]
    assert ga.keys() == gb.keys() and len(ga) > 10
    for i in ga:
        a, b = ga[i]["exp_avg"], gb[i]["exp_avg"]
        scale = b.abs().max().item()
        assert scale > 0
        assert (a - b).abs().max().item() <= 1e-3 * scale, f"{what}: gradient of parameter {i} differs"


def _init_weights(ck: dict) -> dict:
    from gaitdata.student.models import StudentArch, StudentNet

    torch.manual_seed(ck["config"]["seed"])
    net = StudentNet(StudentArch.from_dict(ck["arch"]))
    return {k: v for k, v in net.state_dict().items() if v.is_floating_point()}


def _config_without_batch(ck: dict) -> dict:
    return {k: v for k, v in ck["config"].items() if k not in ("batch_size", "progress")}


def test_torchrun_two_processes_train_like_one_with_the_global_batch(tmp_path, capfd):
    work = tmp_path / "work"
    root = stick_figure_root(work / "root", n_videos=3, n_frames=B, splits=("train", "train", "val"), seed=1)
    ddp_dir, single_dir = root / "models" / "ddp", root / "models" / "single"

    # another writer holds the root at the start: rank 0 queues for it, the other rank waits for rank 0
    held = contextlib.ExitStack()
    held.enter_context(root_lock(root, "test-hold"))
    out = _run_torchrun([str(root), "--out", str(ddp_dir), "--epochs", "1", "--batch-size", str(B), *CLI], tmp_path,
                        held)  # fmt: skip
    assert out.count("waiting for dataset root") == 1 and "test-hold" in out
    assert out.count("trained fastpose_res10_w025") == 1  # rank 0 alone reports
    first = load_checkpoint(ddp_dir / "last.pt")
    train(root, out=single_dir, epochs=1, batch_size=2 * B, **LIB)
    single = load_checkpoint(single_dir / "last.pt")
    assert first["epoch"] == 0 and first["step"] == 1 and single["step"] == 1
    assert _config_without_batch(first) == _config_without_batch(single)
    assert (first["world_size"], single["world_size"]) == (2, 1)
    run_info = json.loads((ddp_dir / "config.json").read_text())
    assert (run_info["world_size"], run_info["global_batch_size"]) == (2, 2 * B)

    # (a) disjoint shards that cover the data, and together the single process's batch
    rows = _samples(ddp_dir / "samples.csv")
    steps = _by_step(rows, 0)
    assert set(steps) == {0}
    r0, r1 = steps[0][0], steps[0][1]
    assert len(r0) == len(r1) == B and not r0 & r1 and r0 | r1 == set(range(2 * B))
    assert _by_step(_samples(single_dir / "samples.csv"), 0) == {0: {0: r0 | r1}}
    sampler = _EpochSampler(2 * B, 3, True, rank=1, world=2)
    sampler.set_epoch(0)
    assert [r["index"] for r in rows if r["rank"] == 1] == list(sampler)  # the order of the run

    # (b) one step of 2 x B equals one step of 2B: the same loss, gradients and weights
    ddp_log = list(csv.DictReader((ddp_dir / "train_log.csv").open()))
    single_log = list(csv.DictReader((single_dir / "train_log.csv").open()))
    assert float(ddp_log[-1]["loss"]) == pytest.approx(float(single_log[-1]["loss"]), rel=1e-5)
    _assert_same_step(first, single, "step 1")

    # (c) rank 0 alone wrote: the root lock and the run's files; rank 1 nothing under the root
    rank0 = (tmp_path / "writes" / "rank0.txt").read_text()
    assert (tmp_path / "writes" / "rank1.txt").read_text() == ""
    assert ".gaitdata/lock" in rank0
    for name in ("last.pt", "best.pt", "train_log.csv", "samples.csv", "config.json"):
        assert str(ddp_dir / name) in rank0, name

    # a checkpoint of 2 processes continues in one (with a warning: the global batch halves)
    shutil.copytree(ddp_dir, work / "alone")
    capfd.readouterr()
    train(root, out=work / "alone", epochs=2, batch_size=B, resume=True, **LIB)
    assert "trained by 2 process(es), this run has 1: the global batch changes from 8 to 4" in capfd.readouterr().err
    assert load_checkpoint(work / "alone" / "last.pt")["step"] == 3  # 1 step of 8, then 2 of 4

    # (d) resume under torchrun: the second epoch continues from last.pt and matches the single process
    shutil.copy(ddp_dir / "train_log.csv", tmp_path / "log_after_1.csv")
    _run_torchrun([str(root), "--out", str(ddp_dir), "--epochs", "2", "--batch-size", str(B), "--resume", *CLI],
                  tmp_path)  # fmt: skip
    train(root, out=single_dir, epochs=2, batch_size=2 * B, resume=True, **LIB)
    second, single2 = load_checkpoint(ddp_dir / "last.pt"), load_checkpoint(single_dir / "last.pt")
    assert second["epoch"] == 1 and second["step"] == 2
    _assert_same_step(second, single2, "step 2 (resumed)")
    log = list(csv.DictReader((ddp_dir / "train_log.csv").open()))
    assert [r["epoch"] for r in log if r["row"] == "epoch"] == ["0", "1"]
    assert log[0] == list(csv.DictReader((tmp_path / "log_after_1.csv").open()))[0]  # epoch 0 kept as written
    rows2 = _samples(ddp_dir / "samples.csv")
    assert [r for r in rows2 if r["epoch"] == 0] == rows  # the first run's rows kept, none repeated
    steps1 = _by_step(rows2, 1)
    assert set(steps1) == {1} and not steps1[1][0] & steps1[1][1] and steps1[1][0] | steps1[1][1] == set(range(2 * B))
    assert (tmp_path / "writes" / "rank1.txt").read_text() == ""


@pytest.mark.parametrize("n", [7, 8, 9, 13])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_are_disjoint_and_make_up_the_global_batch(n, world):
    batch = 2
    shards = []
    for rank in range(world):
        s = _EpochSampler(n, seed=5, shuffle=True, rank=rank, world=world)
        s.set_epoch(3)
        shards.append(list(s))
        assert len(s) == len(shards[-1]) == -(-n // world)
    flat = [i for sh in shards for i in sh]
    assert set(flat) == set(range(n))
    assert len(flat) - n == (-n) % world  # the padding repeats only what the last round lacks
    single = _EpochSampler(n, seed=5, shuffle=True)
    single.set_epoch(3)
    padded = (list(single) * 2)[: len(flat)]  # the single process's order, padded like the shards
    for step in range(-(-len(shards[0]) // batch)):
        together = sorted(i for sh in shards for i in sh[step * batch : (step + 1) * batch])
        assert together == sorted(padded[step * batch * world : (step + 1) * batch * world])


def test_global_batch_norm_is_plain_batch_norm_outside_a_process_group():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.Sequential(torch.nn.BatchNorm2d(4)))  # fmt: skip
    ref = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(5, 3, 8, 8)
    y0 = net(x)
    net.load_state_dict(ref)
    sync_batch_norm(net, torch.device("cpu"))
    assert isinstance(net[1], GlobalBatchNorm2d) and isinstance(net[3][0], GlobalBatchNorm2d)
    assert net.state_dict().keys() == ref.keys()
    torch.testing.assert_close(net(x), y0)


def test_bad_launch_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(GaitdataError, match="RANK='two' is not an integer"):
        setup_placement("cpu")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(GaitdataError, match="RANK=2 and WORLD_SIZE=2"):
        setup_placement("cpu")
