"""Extraction and labelling on a Ray cluster (2 CPUs, every server on 127.0.0.1) equal the local run.

One cluster serves the module: ``ray start --head --block`` in a temporary folder, stopped by
signalling that process (never ``ray stop``, which would end every Ray cluster of the machine).
The commands run as a user runs them, in fresh processes that join the cluster with ``--ray``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from gaitdata.containers import write
from gaitdata.dataset import DatasetRoot, validate
from gaitdata.labels import read_label_meta
from gaitdata.testing.recordings import plane_recording

pytestmark = pytest.mark.ray

HERE = Path(__file__).parent
REPO = HERE.parent.parent
# no token files in the user's home, and Ray keeps 127.0.0.1 instead of the machine's address
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, **RAY_ENV, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def cluster():
    """The address of a 2-CPU Ray cluster on loopback; stopped (its processes killed) after the module."""
    tmp = tempfile.mkdtemp(prefix="gdray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    log = open(Path(tmp) / "start.log", "w")  # noqa: SIM115 - closed at teardown
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
           "--port", "0", "--num-cpus", "2", "--num-gpus", "0", "--temp-dir", tmp, "--include-dashboard", "false",
           "--object-store-memory", str(200 << 20), "--disable-usage-stats"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    marker = Path(tmp) / "ray_current_cluster"
    try:
        deadline = time.monotonic() + 120
        while not (marker.is_file() and marker.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed: {(Path(tmp) / 'start.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield marker.read_text().strip()
    finally:
        proc.send_signal(signal.SIGTERM)  # --block: stops every process this cluster started
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of its own process group is left
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Four recordings (three RGB-D .bag files, one colour video) and one file that is not a video."""
    src = tmp_path_factory.mktemp("ray_src")
    for i in range(3):
        write(plane_recording(n=36, size=(320, 240), depth_size=(160, 120), seed=i), src / f"s{i}" / "walk.bag", "bag")
    write(plane_recording(n=24, seed=9), src / "s9" / "walk.mp4", "video")
    (src / "broken.mp4").write_bytes(b"not a video at all")
    return src


def _gaitdata(*args: str, driver: str = "_cli_driver.py", **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(HERE / driver), *args]
    return subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def local_root(corpus, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("ray_local") / "root"
    return root, _gaitdata("extract", str(corpus), "--out", str(root), "--reader", "python", "-q")


def _tables(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    r = DatasetRoot(root)
    return r.read_videos().drop(columns="extracted_at"), r.read_frames()


def _assert_same_tables(a: Path, b: Path) -> None:
    (va, fa), (vb, fb) = _tables(a), _tables(b)
    pd.testing.assert_frame_equal(va, vb)
    pd.testing.assert_frame_equal(fa, fb)


def _label_meta(root: Path, name: str) -> dict:
    meta = dict(read_label_meta(root, name))
    meta.pop("created_at")
    return meta


def test_extract_and_label_on_ray_equal_the_local_run(cluster, corpus, local_root, tmp_path):
    local, local_run = local_root
    root = tmp_path / "root"
    run = _gaitdata("extract", str(corpus), "--out", str(root), "--reader", "python", "--ray", cluster)
    # the broken file fails alone, with the same row and exit status as locally
    assert local_run.returncode == run.returncode == 1, run.stderr
    assert "broken.mp4" in run.stderr and "Traceback" not in run.stderr
    assert "2 tasks at a time" in run.stdout + run.stderr  # the cluster's two CPUs, one per recording
    assert "4 ok, 1 failed" in run.stdout
    _assert_same_tables(local, root)
    videos = DatasetRoot(root).read_videos().set_index("video_id")
    assert videos.loc["broken", "status"] == "failed" and "broken.mp4" in videos.loc["broken", "error"]
    assert (videos["status"] == "ok").sum() == 4
    assert not (root / "frames" / ".staging").exists()
    assert validate(root).ok
    for p in DatasetRoot(root).read_frames().dropna(subset=["rgb_path"])["rgb_path"]:
        assert (root / p).is_file()

    lab_local = _gaitdata("label", str(local), "--teacher", "test_fixed", "-q")
    lab_ray = _gaitdata("label", str(root), "--teacher", "test_fixed", "-q", "--ray", cluster)
    assert lab_local.returncode == lab_ray.returncode == 0, lab_ray.stderr
    a, b = local / "labels" / "test_fixed.parquet", root / "labels" / "test_fixed.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
    assert len(pd.read_parquet(b)) == 36 * 3 + 24
    meta_a, meta_b = _label_meta(local, "test_fixed"), _label_meta(root, "test_fixed")
    for m in (meta_a, meta_b):
        for rec in m["recordings"].values():
            assert rec["resumed"] is False
    assert meta_a == meta_b
    # a rerun on Ray resumes every recording from its part and writes the same rows
    again = _gaitdata("label", str(root), "--teacher", "test_fixed", "-q", "--ray", cluster)
    assert again.returncode == 0, again.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
    assert all(r["resumed"] for r in _label_meta(root, "test_fixed")["recordings"].values())

    # a frame that cannot be decoded stops the run with the same one-line error and status as locally
    frame = DatasetRoot(root).read_frames().query("status == 'ok'")["rgb_path"].iloc[40]
    errors = []
    damaged_local = tmp_path / "local"  # the module's local root stays intact for the other tests
    shutil.copytree(local, damaged_local)
    for r, ray in ((damaged_local, []), (root, ["--ray", cluster])):
        (r / frame).write_bytes(b"not a jpeg")
        run = _gaitdata("label", str(r), "--teacher", "test_fixed", "--label-set", "damaged", "-q", *ray)
        assert run.returncode == 2 and "Traceback" not in run.stderr
        errors.append(run.stderr.strip().replace(str(r), "ROOT"))
    assert errors[0] == errors[1] and f"cannot decode ROOT/{frame}" in errors[0]
    assert not (root / "labels" / "damaged.parquet").exists()


@pytest.mark.slow
@pytest.mark.mediapipe
def test_mediapipe_static_labels_on_ray_equal_the_local_run(cluster, tmp_path):
    src, local, root = tmp_path / "synth", tmp_path / "local", tmp_path / "root"
    for args in (["synth", str(src), "--kind", "video", "--subjects", "2", "--frames", "8", "--size", "320x240"],
                 ["extract", str(src), "--out", str(local), "-q"]):  # fmt: skip
        assert _gaitdata(*args).returncode == 0
    shutil.copytree(local, root)
    lab_local = _gaitdata("label", str(local), "--mode", "static", "-q")
    lab_ray = _gaitdata("label", str(root), "--mode", "static", "-q", "--ray", cluster)
    assert lab_local.returncode == lab_ray.returncode == 0, lab_ray.stderr
    a = pd.read_parquet(local / "labels" / "mediapipe.parquet")
    b = pd.read_parquet(root / "labels" / "mediapipe.parquet")
    assert a["has_person"].sum() >= 12  # BlazePose finds the walker: the comparison is about real poses
    pd.testing.assert_frame_equal(a, b)


def _ray_tasks(prefix: str) -> dict[int, str]:
    """pid -> process title of the Ray workers now running a task whose name starts with ``prefix``."""
    found = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                title = (d / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title.startswith(f"ray::{prefix}"):
                found[int(d.name)] = title
    return found


@pytest.mark.slow
def test_worker_killed_mid_task_is_retried_and_tables_equal_a_clean_run(cluster, corpus, local_root, tmp_path):
    local, _ = local_root
    root = tmp_path / "root"
    cmd = [sys.executable, str(HERE / "_cli_driver.py"), "extract", str(corpus), "--out", str(root), "--reader",
           "python", "--ray", "auto"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(RAY_ADDRESS=cluster), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        for pid, title in _ray_tasks("gaitdata-extract:").items():
            if "broken" not in title:  # a recording that takes a while: killed while it writes frames
                os.kill(pid, signal.SIGKILL)
                killed = title
                break
        time.sleep(0.01)
    out, err = proc.communicate(timeout=300)
    assert killed is not None, f"no extraction task was seen running: {err}"
    assert proc.returncode == 1 and "4 ok, 1 failed" in out, err  # only the broken file fails
    assert f"Ray cluster {cluster}: 1 node, 2 CPUs" in out + err  # auto joined RAY_ADDRESS's cluster
    _assert_same_tables(local, root)
    assert validate(root).ok
    assert not (root / "frames" / ".staging").exists()


@pytest.mark.slow
def test_label_worker_killed_mid_recording_is_retried(cluster, local_root, tmp_path):
    local, _ = local_root
    root = tmp_path / "root"
    shutil.copytree(local, root)
    ref_hold = tmp_path / "ref_hold"
    ref_hold.mkdir()
    (ref_hold / "held").write_text("")  # the reference run never holds
    ref = _gaitdata("label", str(local), "--teacher", "test_hold", "--label-set", "hold", "-q",
                    driver="_ray_driver.py", GAITDATA_TEST_HOLD_DIR=str(ref_hold))  # fmt: skip
    assert ref.returncode == 0, ref.stderr

    hold = tmp_path / "hold"
    hold.mkdir()
    cmd = [sys.executable, str(HERE / "_ray_driver.py"), "label", str(root), "--teacher", "test_hold", "--label-set",
           "hold", "-q", "--ray", cluster]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(GAITDATA_TEST_HOLD_DIR=str(hold)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not ((hold / "held").is_file() and (hold / "held").read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.02)
        pid = int((hold / "held").read_text())
        title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert title.startswith("ray::gaitdata-label:")  # a Ray worker, in the middle of a recording
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        (hold / "release").touch()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    a, b = local / "labels" / "hold.parquet", root / "labels" / "hold.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
    assert not list((root / ".gaitdata" / "labels" / "hold").glob("*.tmp"))


def test_without_ray_the_option_names_the_extra(corpus, tmp_path):
    root = tmp_path / "root"
    code = ("import sys; sys.modules['ray'] = None; from gaitdata.cli import main; "
            f"main(['extract', {str(corpus)!r}, '--out', {str(root)!r}, '--ray', 'auto', '-q'])")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "pip install 'gaitdata[distributed]'" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not root.exists()  # refused before anything was written (the root is not even made)


def test_unreachable_cluster_and_bad_addresses_are_one_line_errors(corpus, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path / "root"
    run = _gaitdata("extract", str(corpus), "--out", str(root), "-q", "--ray", f"127.0.0.1:{port}")
    assert run.returncode == 2
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in run.stderr and "ray start --head" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not root.exists()
    for bad, says in (("10.0.0.5", "HOST:PORT"), ("ray://10.0.0.5:10001", "run gaitdata on a node")):
        run = _gaitdata("label", str(root), "--ray", bad)
        assert run.returncode == 2 and says in run.stderr, run.stderr
    run = _gaitdata("label", str(root), "--ray", "auto", "--cpus-per-task", "0")
    assert run.returncode == 2 and "both 0" in run.stderr


def test_pool_returns_values_original_errors_and_lost_tasks(cluster, tmp_path):
    from gaitdata.distributed import RayOptions, RayPool, TaskLostError
    from gaitdata.errors import GaitdataError
    from gaitdata.procs import as_done

    with RayPool(RayOptions(cluster, max_retries=1), paths=[HERE]) as pool:
        assert pool.slots == 2
        results = dict((k, f.result()) for k, f in as_done(range(6), lambda k: pool.submit(pow, k, 2), window=3))
        assert results == {k: k * k for k in range(6)}
        with pytest.raises(ValueError, match="invalid literal"):  # the task's own exception, not a Ray wrapper
            pool.submit(int, "seven").result(timeout=120)
        with pytest.raises(TaskLostError, match="lost on all 2 attempts"):  # its worker exits: retried once
            pool.run("gaitdata-test:die", os._exit, 3).result(timeout=120)
    missing = tmp_path / "not-mounted"
    with RayPool(RayOptions(cluster), paths=[missing]) as pool, pytest.raises(GaitdataError, match="not visible on Ray node"):
        pool.submit(pow, 2, 2).result(timeout=120)
