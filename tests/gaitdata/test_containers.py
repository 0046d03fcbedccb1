"""Container writers and readers: round trips, frame counts, timestamps, agreement of the two RealSense readers."""

from __future__ import annotations

import numpy as np
import pytest

from gaitdata.containers import open_recording, write
from gaitdata.containers.realsense import BagRecording, Db3Recording
from gaitdata.testing.recordings import plane_recording


@pytest.fixture(scope="module")
def rec():
    return plane_recording(n=12, drop_depth=(4,), drop_colour=(7,), offset_ms=5.0)


def _read_all(r):
    info = r.info
    items = list(r.frames(range(len(info.colour)), range(len(info.depth)) if info.has_depth else []))
    col = {p: a for s, p, a in items if s == "colour"}
    dep = {p: a for s, p, a in items if s == "depth"}
    return info, col, dep


def _same_intrinsics(a, b) -> bool:
    """Equal up to float32 rounding (RealSense files store float32 intrinsics)."""
    return (a.width, a.height, a.model) == (b.width, b.height, b.model) and np.allclose(
        [a.fx, a.fy, a.cx, a.cy, *a.coeffs], [b.fx, b.fy, b.cx, b.cy, *b.coeffs], rtol=1e-6, atol=1e-6
    )


def _check_index(info, rec):
    assert len(info.colour) == len(rec.colour)
    np.testing.assert_array_equal(info.colour.frame_numbers, rec.colour_frame_numbers)
    np.testing.assert_allclose(info.colour.ts_ms, rec.colour_ts_ms, atol=1e-3)
    assert np.all(np.diff(info.colour.ts_ms) > 0)
    if rec.has_depth:
        assert len(info.depth) == len(rec.depth)
        np.testing.assert_array_equal(info.depth.frame_numbers, rec.depth_frame_numbers)
        np.testing.assert_allclose(info.depth.ts_ms, rec.depth_ts_ms, atol=1e-3)
        assert np.all(np.diff(info.depth.ts_ms) > 0)


def test_bag_pure_python_round_trip_bit_exact(tmp_path, rec):
    path = write(rec, tmp_path / "a.bag", "bag")
    with BagRecording(path) as r:
        info, col, dep = _read_all(r)
    _check_index(info, rec)
    assert _same_intrinsics(info.colour_intrinsics, rec.colour_intrinsics)
    assert _same_intrinsics(info.depth_intrinsics, rec.depth_intrinsics)
    np.testing.assert_allclose(info.depth_to_colour.R, rec.depth_to_colour.R, atol=1e-6)
    np.testing.assert_allclose(info.depth_to_colour.t, rec.depth_to_colour.t, atol=1e-7)
    assert info.depth_scale == pytest.approx(rec.depth_scale, rel=1e-7)
    assert all(np.array_equal(col[i], rec.colour[i]) for i in range(len(rec.colour)))
    assert all(np.array_equal(dep[i], rec.depth[i]) for i in range(len(rec.depth)))


def test_bag_subset_of_positions(tmp_path, rec):
    path = write(rec, tmp_path / "a.bag", "bag")
    with BagRecording(path) as r:
        items = list(r.frames([1, 5], [2]))
    assert sorted((s, p) for s, p, _ in items) == [("colour", 1), ("colour", 5), ("depth", 2)]


def test_colour_only_bag(tmp_path):
    rec = plane_recording(n=5, with_depth=False)
    with BagRecording(write(rec, tmp_path / "c.bag", "bag")) as r:
        assert not r.info.has_depth and "no depth stream" in r.info.notes[0]
        _, col, _ = _read_all(r)
    assert len(col) == 5 and np.array_equal(col[4], rec.colour[4])


@pytest.mark.realsense
@pytest.mark.parametrize("compress", [True, False])
def test_db3_round_trip_and_readers_agree(tmp_path, rec, compress):
    from gaitdata.align import Aligner
    from gaitdata.containers.realsense import PyRealSenseRecording

    path = write(rec, tmp_path / "a.db3", "db3", compress=compress)
    with Db3Recording(path) as r:
        info, col, dep = _read_all(r)
    _check_index(info, rec)
    assert all(np.array_equal(col[i], rec.colour[i]) for i in range(len(rec.colour)))
    assert all(np.array_equal(dep[i], rec.depth[i]) for i in range(len(rec.depth)))
    assert info.depth_scale == pytest.approx(rec.depth_scale, rel=1e-7)
    with PyRealSenseRecording(path) as r:
        info2, col2, dep2 = _read_all(r)
    _check_index(info2, rec)
    assert all(np.array_equal(col2[i], rec.colour[i]) for i in range(len(rec.colour)))
    aligner = Aligner(
        info2.depth_intrinsics, info2.colour_intrinsics, info2.depth_to_colour, info2.depth_scale
    )
    assert all(np.array_equal(dep2[i], aligner(rec.depth[i])) for i in range(len(rec.depth)))


@pytest.mark.realsense
def test_bag_readers_agree_bit_exact(tmp_path, rec):
    """librealsense playback + rs.align == pure-Python reader + numpy registration, frame for frame."""
    from gaitdata.align import Aligner
    from gaitdata.containers.realsense import PyRealSenseRecording

    path = write(rec, tmp_path / "a.bag", "bag")
    with BagRecording(path) as r:
        info, col, dep = _read_all(r)
    with PyRealSenseRecording(path) as r:
        info2, col2, dep2 = _read_all(r)
    assert (
        info2.colour_intrinsics == info.colour_intrinsics and info2.depth_intrinsics == info.depth_intrinsics
    )
    np.testing.assert_array_equal(info2.colour.ts_ms, info.colour.ts_ms)
    assert set(col2) == set(col) and set(dep2) == set(dep)
    assert all(np.array_equal(col2[i], col[i]) for i in col)
    aligner = Aligner(info.depth_intrinsics, info.colour_intrinsics, info.depth_to_colour, info.depth_scale)
    assert all(np.array_equal(dep2[i], aligner(dep[i])) for i in dep)


@pytest.mark.parametrize("codec,depth_format", [("h264", "mkv"), ("mp4v", "png")])
def test_pair_round_trip(tmp_path, rec, codec, depth_format):
    path = write(rec, tmp_path / "w", "pair", codec=codec, depth_format=depth_format)
    assert path.name == "w_color.mp4"
    with open_recording(path) as r:
        info, col, dep = _read_all(r)
    assert info.kind == "pair"
    _check_index(info, rec)
    assert all(np.array_equal(dep[i], rec.depth[i]) for i in range(len(rec.depth)))  # lossless 16-bit
    # lossy colour, but every decoded frame is closest to the frame it should be (the texture moves per frame)
    for i in col:
        errs = [np.abs(col[i].astype(int) - ref).mean() for ref in rec.colour]
        assert int(np.argmin(errs)) == i and errs[i] < 25
    assert info.depth_intrinsics == rec.depth_intrinsics and info.depth_scale == rec.depth_scale


def test_pair_without_csv_uses_container_pts(tmp_path, rec):
    path = write(rec, tmp_path / "w", "pair", timestamps=False)
    with open_recording(path) as r:
        info = r.info
    # pts keep one clock for both files (ms resolution): the start offset survives without CSVs
    np.testing.assert_allclose(
        info.colour.ts_ms - info.colour.ts_ms[0], rec.colour_ts_ms - rec.colour_ts_ms[0], atol=0.6
    )
    np.testing.assert_allclose(
        info.depth.ts_ms - info.colour.ts_ms[0], rec.depth_ts_ms - rec.colour_ts_ms[0], atol=1.1
    )


def test_video_and_images(tmp_path, rec):
    with open_recording(write(rec, tmp_path / "v.mp4", "video")) as r:
        info, col, _ = _read_all(r)
    assert info.kind == "video" and len(col) == len(rec.colour) and not info.has_depth
    with open_recording(write(rec, tmp_path / "imgs", "images")) as r:
        info, col, _ = _read_all(r)
    assert info.kind == "images" and len(col) == len(rec.colour)
    assert all(np.array_equal(col[i], rec.colour[i]) for i in col)  # PNG: lossless
    np.testing.assert_allclose(info.colour.ts_ms, rec.colour_ts_ms, atol=1e-6)


def test_unknown_kind_is_rejected(tmp_path, rec):
    with pytest.raises(ValueError, match="unknown container kind"):
        write(rec, tmp_path / "x", "avi")


def test_pure_python_fallback_warns(tmp_path, rec, monkeypatch):
    import gaitdata.containers.realsense as rsmod

    path = write(rec, tmp_path / "a.bag", "bag")
    monkeypatch.setattr(rsmod, "pyrealsense2_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="pure-Python reader"):
        r = rsmod.open_realsense(path)
    with r:
        assert isinstance(r, BagRecording) and len(r.info.colour) == len(rec.colour)
