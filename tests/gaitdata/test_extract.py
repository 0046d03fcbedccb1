"""Extraction: pairing, sampling, registration in the written PNGs, resumability, options, metadata."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from gaitdata.containers import write
from gaitdata.dataset import DatasetRoot, validate
from gaitdata.extract import ExtractOptions, extract, pair_by_timestamp, select_frames
from gaitdata.testing.recordings import expected_registered_depth, plane_recording

Q = ExtractOptions(workers=1)


def test_pairing_with_offset_drops_and_jitter_is_exact():
    period = 1000 / 30
    c = np.arange(12) * period
    d_slots = np.array(
        [0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    )  # depth dropped slots 3, 4; runs 2 slots longer
    rng = np.random.default_rng(1)
    d = d_slots * period + 6.0 + rng.uniform(-2, 2, len(d_slots))  # +6 ms start offset, +-2 ms jitter
    partner = pair_by_timestamp(c, d, period / 2)
    expected = np.array([0, 1, 2, -1, -1, 3, 4, 5, 6, 7, 8, 9])
    np.testing.assert_array_equal(partner, expected)  # colour 3, 4: no stale partner from slot 2 or 5
    unpaired = sorted(set(range(len(d))) - set(partner[partner >= 0].tolist()))
    assert unpaired == [10, 11]


def test_pairing_is_one_to_one():
    c = np.array([0.0, 10.0, 20.0, 30.0])  # colour at 100 fps, depth at 50 fps
    d = np.array([1.0, 21.0])
    partner = pair_by_timestamp(c, d, 15.0)
    assert partner.tolist() == [0, -1, 1, -1]
    assert pair_by_timestamp(c, np.array([]), 5).tolist() == [-1] * 4


def test_select_frames_options():
    ts = 1000 + np.arange(30) * 1000 / 30  # 1 s at 30 fps
    st = select_frames(ts, ExtractOptions(stride=3))
    assert np.flatnonzero(st == "ok").tolist() == list(range(0, 30, 3))
    st = select_frames(ts, ExtractOptions(target_fps=10))
    assert np.flatnonzero(st == "ok").tolist() == list(range(0, 30, 3))
    st = select_frames(ts, ExtractOptions(start_s=0.5, end_s=0.8, max_frames=4))
    assert np.flatnonzero(st == "ok").tolist() == [15, 16, 17, 18]
    assert (st[:15] == "out_of_range").all() and (st[24:] == "out_of_range").all()
    assert (st[19:24] == "sampled_out").all()
    with pytest.raises(ValueError):
        ExtractOptions(stride=0)


def _tables(root):
    r = DatasetRoot(root)
    return r.read_videos(), r.read_frames()


@pytest.fixture(scope="module")
def drops():
    return plane_recording(
        n=14, drop_depth=(3, 9), drop_colour=(6,), offset_ms=4.0, jitter_ms=1.5, noise_units=2, seed=3
    )


@pytest.mark.parametrize("kind", ["bag", "pair"])
def test_extract_rgbd_frames_statuses_and_registered_depth(tmp_path, drops, kind):
    rec = drops
    write(rec, tmp_path / "in" / "s1" / "walk", kind)
    summary = extract(
        [tmp_path / "in"], tmp_path / "root", ExtractOptions(workers=1, reader="python"), progress=False
    )
    assert summary.ok and summary.n_ok == 1
    videos, frames = _tables(tmp_path / "root")
    v = videos.iloc[0]
    assert v.video_id == "s1__walk" and v.kind == kind
    assert v.n_colour_frames == len(rec.colour) == len(frames)
    assert v.n_depth_frames == len(rec.depth)
    assert np.all(np.diff(frames["colour_ts_ms"].to_numpy()) > 0)
    # colour slots 0..13 without 6; depth slots without 3 and 9: colour slots 3 and 9 have no partner
    slots = [s for s in range(14) if s != 6]
    exp_status = ["no_depth_partner" if s in (3, 9) else "ok" for s in slots]
    assert frames["status"].tolist() == exp_status
    assert (
        v.n_written == exp_status.count("ok") and v.n_depth_unpaired == 1
    )  # depth slot 6 has no colour frame
    ok = frames[frames.status == "ok"]
    assert (ok["depth_frame_number"].to_numpy() == ok["colour_frame_number"].to_numpy()).all()  # same slot
    assert np.allclose(ok["dt_ms"], 4.0, atol=3.1)
    # intrinsics and extrinsics recorded
    assert v.fx == pytest.approx(rec.colour_intrinsics.fx, rel=1e-6) and v.depth_scale == pytest.approx(
        rec.depth_scale
    )
    np.testing.assert_allclose(
        np.reshape(v.depth_to_colour_rotation, (3, 3)), rec.depth_to_colour.R, atol=1e-6
    )
    # registered depth at known pixels equals the analytic plane within the injected noise + footprint
    exp = expected_registered_depth(rec)
    g = max(np.abs(np.diff(exp, axis=0)).max(), np.abs(np.diff(exp, axis=1)).max())
    tol = 2 * g * rec.colour_intrinsics.fx / rec.depth_intrinsics.fx + 1 + rec.meta["noise_units"]
    for rel in ok["depth_path"].iloc[:3]:
        d = cv2.imread(str(tmp_path / "root" / rel), cv2.IMREAD_UNCHANGED)
        assert d.dtype == np.uint16 and d.shape == exp.shape
        for y, x in [(20, 20), (60, 80), (100, 140)]:
            assert abs(int(d[y, x]) - exp[y, x]) <= tol
    rgb = cv2.imread(str(tmp_path / "root" / ok["rgb_path"].iloc[0]))
    assert rgb.shape == (rec.colour.shape[1], rec.colour.shape[2], 3)
    assert validate(tmp_path / "root").ok


def test_rerun_skips_and_overwrite_reproduces(tmp_path):
    rec = plane_recording(n=6)
    write(rec, tmp_path / "in" / "a.bag", "bag")
    write(rec, tmp_path / "in" / "b.mp4", "video")
    first = extract([tmp_path / "in"], tmp_path / "root", Q, progress=False)
    v1, f1 = _tables(tmp_path / "root")
    again = extract([tmp_path / "in"], tmp_path / "root", Q, progress=False)
    assert again.n_skipped == 2 and again.n_ok == 0
    over = extract(
        [tmp_path / "in"], tmp_path / "root", ExtractOptions(workers=1, overwrite=True), progress=False
    )
    assert first.n_ok == over.n_ok == 2
    v2, f2 = _tables(tmp_path / "root")
    pd.testing.assert_frame_equal(v1.drop(columns="extracted_at"), v2.drop(columns="extracted_at"))
    pd.testing.assert_frame_equal(f1, f2)
    # changed options are a different output: the recording is redone, not skipped
    third = extract([tmp_path / "in"], tmp_path / "root", ExtractOptions(workers=1, stride=2), progress=False)
    assert third.n_ok == 2
    _, f3 = _tables(tmp_path / "root")
    assert (f3.status == "ok").sum() == 6 and validate(tmp_path / "root").ok


def test_resize_scales_intrinsics_and_depth(tmp_path):
    rec = plane_recording(n=3)
    write(rec, tmp_path / "in" / "a.bag", "bag")
    extract([tmp_path / "in"], tmp_path / "root", ExtractOptions(workers=1, resize=(80, -1)), progress=False)
    videos, frames = _tables(tmp_path / "root")
    v = videos.iloc[0]
    assert (v.width, v.height, v.source_width, v.source_height) == (80, 60, 160, 120)
    assert v.fx == pytest.approx(rec.colour_intrinsics.fx / 2, rel=1e-6)
    d = cv2.imread(str(tmp_path / "root" / frames.depth_path.iloc[0]), cv2.IMREAD_UNCHANGED)
    assert d.shape == (60, 80) and d.dtype == np.uint16


def test_parallel_workers_equal_sequential(tmp_path):
    for i in range(3):
        write(plane_recording(n=4, seed=i), tmp_path / "in" / f"r{i}.bag", "bag")
    extract([tmp_path / "in"], tmp_path / "seq", Q, progress=False)
    extract([tmp_path / "in"], tmp_path / "par", ExtractOptions(workers=2), progress=False)
    (va, fa), (vb, fb) = _tables(tmp_path / "seq"), _tables(tmp_path / "par")
    pd.testing.assert_frame_equal(va.drop(columns="extracted_at"), vb.drop(columns="extracted_at"))
    pd.testing.assert_frame_equal(fa, fb)


def test_id_pattern_metadata_csv_and_dry_run(tmp_path):
    rec = plane_recording(n=3)
    write(rec, tmp_path / "in" / "s01" / "pre_front.bag", "bag")
    write(rec, tmp_path / "in" / "s02" / "post_side.mp4", "video")
    (tmp_path / "in" / "s02" / "post_side.gt.npz").write_bytes(b"not a recording")
    csv = tmp_path / "meta.csv"
    csv.write_text("video_id,condition\ns01__pre_front,baseline\ns02__post_side,fatigue\n")
    dry = extract([tmp_path / "in"], tmp_path / "root", ExtractOptions(dry_run=True), progress=False)
    assert dry.dry_run and [r.status for r in dry.results] == ["planned", "planned"]
    assert not (tmp_path / "root").exists()
    opts = ExtractOptions(workers=1, id_pattern="{subject}/{session}_{view}", metadata_csv=str(csv))
    extract([tmp_path / "in"], tmp_path / "root", opts, progress=False)
    videos, _ = _tables(tmp_path / "root")
    got = videos[["video_id", "subject", "session", "view", "condition"]].to_dict("records")
    assert got == [
        {
            "video_id": "s01__pre_front",
            "subject": "s01",
            "session": "pre",
            "view": "front",
            "condition": "baseline",
        },
        {
            "video_id": "s02__post_side",
            "subject": "s02",
            "session": "post",
            "view": "side",
            "condition": "fatigue",
        },
    ]
    assert json.loads(videos.options.iloc[0])["jpeg_quality"] == 95


@pytest.mark.realsense
@pytest.mark.parametrize("kind", ["bag", "db3"])
def test_both_realsense_readers_extract_identical_frames(tmp_path, drops, kind):
    write(drops, tmp_path / "in" / "r", kind)
    roots = {}
    for reader in ("pyrealsense2", "python"):
        roots[reader] = tmp_path / reader
        s = extract(
            [tmp_path / "in"], roots[reader], ExtractOptions(workers=1, reader=reader), progress=False
        )
        assert s.ok and s.results[0].reader == reader
    (va, fa), (vb, fb) = _tables(roots["pyrealsense2"]), _tables(roots["python"])
    pd.testing.assert_frame_equal(fa, fb)
    pd.testing.assert_frame_equal(va.drop(columns=["extracted_at"]), vb.drop(columns=["extracted_at"]),
                                  check_exact=False, rtol=1e-6)  # fmt: skip
    for rel in fa.loc[fa.status == "ok", "depth_path"]:
        a = cv2.imread(str(roots["pyrealsense2"] / rel), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(roots["python"] / rel), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(a, b)  # rs.align == numpy registration, bit for bit


def test_registered_depth_matches_rendered_walker_at_keypoints(tmp_path):
    """The synthetic walker: extracted depth at visible ground-truth keypoints equals the rendered depth."""
    synth = pytest.importorskip("gaitdata.synth")
    if not hasattr(synth, "render_walk"):
        pytest.skip("gaitdata.synth.render_walk not available")
    spec = synth.WalkSpec(n_frames=6, colour_size=(320, 240), depth_size=(240, 180), depth_noise_mm=2.0,
                          depth_offset_ms=3.0, drop_depth=(3,))  # fmt: skip
    rec = synth.render_walk(spec)
    write(rec, tmp_path / "in" / "w.bag", "bag")
    extract([tmp_path / "in"], tmp_path / "root", ExtractOptions(workers=1, reader="python"), progress=False)
    frames = DatasetRoot(tmp_path / "root").read_frames()
    ok = frames[frames.status == "ok"]
    assert len(ok) == len(rec.colour) - 1  # the colour frame whose depth was dropped has no partner
    errs = []
    for row in ok.itertuples():
        d = cv2.imread(str(tmp_path / "root" / row.depth_path), cv2.IMREAD_UNCHANGED).astype(float)
        gt = rec.depth_registered[row.frame_index].astype(float)
        kp = rec.keypoints_2d[row.frame_index]
        vis = kp[:, 2] == 2
        xs = np.clip(kp[vis, 0].astype(int), 0, d.shape[1] - 1)
        ys = np.clip(kp[vis, 1].astype(int), 0, d.shape[0] - 1)
        errs += np.abs(d[ys, xs] - gt[ys, xs]).tolist()
    errs = np.asarray(errs) * rec.depth_scale * 1000  # mm
    assert np.median(errs) <= 3 * 2.0 + 2  # injected noise 2 mm (+ depth-vs-colour camera z, quantisation)
    assert (errs <= 15).mean() >= 0.8  # the rest sit on silhouette edges where neighbours differ


def _d435_like():
    """One colour frame at 360713.5 ms, depth at 360815.1 and 360981.8 ms, 6 fps: as a real D435 file has it."""
    from dataclasses import replace

    rec = plane_recording(n=2, fps=6.0, drop_colour=(1,))
    return replace(rec, colour_ts_ms=np.array([360713.5]), depth_ts_ms=np.array([360815.1, 360981.8]))


@pytest.mark.parametrize("kind,reader", [("bag", "python"), ("bag", "auto"), ("pair", "auto")])
def test_streams_that_do_not_overlap_give_colour_without_depth(tmp_path, kind, reader):
    write(_d435_like(), tmp_path / "in" / "d435", kind)
    root = tmp_path / "root"
    opts = ExtractOptions(workers=1, reader=reader)
    dry = extract([tmp_path / "in"], root, replace_opts(opts, dry_run=True), progress=False)
    s = extract([tmp_path / "in"], root, opts, progress=False)
    r = s.results[0]
    assert s.ok and r.status == "ok" and r.n_written == 1 and r.n_no_depth == 1 and r.n_depth_unpaired == 2
    note = next(n for n in r.notes if "do not overlap" in n)
    assert "101.6 ms" in note and "tolerance 83.3 ms" in note
    assert ("timestamp CSVs" in note) == (kind == "pair")
    videos, frames = _tables(root)
    assert frames["status"].tolist() == ["no_depth"] and frames["depth_path"].isna().all()
    assert (root / frames["rgb_path"].iloc[0]).is_file() and not (root / "frames" / "d435" / "depth").exists()
    assert int(videos["n_written"].iloc[0]) == 1 and "do not overlap" in videos["notes"].iloc[0]
    assert validate(root).ok
    d = dry.results[0]  # the dry run said exactly this (reading notes aside: they come from decoding)
    plan_notes = tuple(n for n in r.notes if not n.startswith("librealsense did not deliver"))
    assert d.status == "planned" and (d.n_written, d.n_no_depth, d.n_depth_unpaired, d.notes) == (
        r.n_written, r.n_no_depth, r.n_depth_unpaired, plan_notes)  # fmt: skip


def replace_opts(opts: ExtractOptions, **kw) -> ExtractOptions:
    from dataclasses import replace

    return replace(opts, **kw)


def test_dry_run_predicts_the_run(tmp_path, drops):
    """Same decisions and plan: per recording, status, counts and notes of --dry-run equal the run's."""
    from dataclasses import replace

    src = tmp_path / "in"
    write(drops, src / "drops.bag", "bag")
    write(_d435_like(), src / "apart.bag", "bag")
    write(plane_recording(n=4, with_depth=False), src / "colour.mp4", "video")
    short = replace(drops, depth=drops.depth[:-3], depth_ts_ms=drops.depth_ts_ms[:-3],
                    depth_frame_numbers=drops.depth_frame_numbers[:-3])  # fmt: skip
    write(short, src / "short", "pair", depth_format="png", timestamps=False)
    (src / "empty.bag").write_bytes(b"")
    opts = ExtractOptions(workers=1, reader="python", stride=2)
    dry = extract([src], tmp_path / "root", replace(opts, dry_run=True), progress=False)
    run = extract([src], tmp_path / "root", opts, progress=False)
    key = ("video_id", "n_colour", "n_depth", "n_written", "n_no_depth_partner", "n_depth_unpaired", "n_no_depth",
           "notes", "error")  # fmt: skip
    for d, r in zip(dry.results, run.results, strict=True):
        assert {"planned": "ok"}.get(d.status, d.status) == r.status
        assert [getattr(d, k) for k in key] == [getattr(r, k) for k in key]
    assert {r.video_id: r.status for r in run.results} == {
        "apart": "ok", "colour": "ok", "drops": "ok", "empty": "failed", "short": "failed"}  # fmt: skip
    again = extract([src], tmp_path / "root", replace(opts, dry_run=True), progress=False)
    assert [r.status for r in again.results] == ["skipped", "skipped", "skipped", "failed", "failed"]


def test_encode_threads_follow_the_ray_reservation() -> None:
    from gaitdata.distributed import RayOptions

    assert ExtractOptions().encode_threads() == 2
    assert ExtractOptions(ray=RayOptions("auto", cpus_per_task=1)).encode_threads() == 1  # a task uses what it reserves
    assert ExtractOptions(ray=RayOptions("auto", cpus_per_task=2.5)).encode_threads() == 3
    assert ExtractOptions(threads=4, ray=RayOptions("auto")).encode_threads() == 4  # asked for: as asked
    with pytest.raises(ValueError, match="threads"):
        ExtractOptions(threads=0)
