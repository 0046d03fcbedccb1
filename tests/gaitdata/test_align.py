"""Depth->colour registration: analytic plane, and bit-exactness with rs.align."""

from __future__ import annotations

import numpy as np
import pytest

from gaitdata.align import Aligner
from gaitdata.testing.recordings import expected_registered_depth, plane_recording


def _tolerance(expected: np.ndarray, rec) -> float:
    # a colour pixel takes the nearest of the depth pixels covering it: error up to ~2 depth pixels of slope
    g = max(np.abs(np.diff(expected, axis=0)).max(), np.abs(np.diff(expected, axis=1)).max())
    ratio = rec.colour_intrinsics.fx / rec.depth_intrinsics.fx
    return 2 * g * max(ratio, 1.0) + 1 + rec.meta["noise_units"]


@pytest.mark.parametrize("noise", [0, 6])
def test_registered_plane_matches_analytic_depth(noise):
    rec = plane_recording(n=1, noise_units=noise)
    aligner = Aligner(rec.depth_intrinsics, rec.colour_intrinsics, rec.depth_to_colour, rec.depth_scale)
    out = aligner(rec.depth[0])
    assert out.shape == (rec.colour_intrinsics.height, rec.colour_intrinsics.width) and out.dtype == np.uint16
    exp = expected_registered_depth(rec)
    inner = np.zeros_like(out, dtype=bool)
    inner[5:-5, 5:-5] = True
    assert (out[inner] > 0).mean() > 0.99
    err = np.abs(out.astype(float) - exp)[inner & (out > 0)]
    assert err.max() <= _tolerance(exp, rec)
    assert err.mean() <= 3 + noise / 2
    for y, x in [(10, 10), (60, 80), (100, 150)]:  # known pixels
        assert abs(int(out[y, x]) - exp[y, x]) <= _tolerance(exp, rec)


def test_translation_shifts_the_image():
    rec = plane_recording(n=1)
    a = Aligner(rec.depth_intrinsics, rec.colour_intrinsics, rec.depth_to_colour, rec.depth_scale)(
        rec.depth[0]
    )
    from dataclasses import replace

    from gaitdata.records import Extrinsics

    rec2 = replace(rec, depth_to_colour=Extrinsics())
    b = Aligner(rec2.depth_intrinsics, rec2.colour_intrinsics, rec2.depth_to_colour, rec2.depth_scale)(
        rec2.depth[0]
    )
    assert not np.array_equal(a, b)  # the extrinsic matters: registration is not trivial here


def test_zero_depth_stays_empty_and_shape_is_checked():
    rec = plane_recording(n=1)
    aligner = Aligner(rec.depth_intrinsics, rec.colour_intrinsics, rec.depth_to_colour, rec.depth_scale)
    assert not aligner(np.zeros_like(rec.depth[0])).any()
    holes = rec.depth[0].copy()
    holes[:, :40] = 0
    out = aligner(holes)
    assert (out == 0).sum() > (aligner(rec.depth[0]) == 0).sum()
    with pytest.raises(ValueError, match="intrinsics"):
        aligner(np.zeros((5, 5), np.uint16))


@pytest.mark.realsense
@pytest.mark.parametrize("model", ["none", "brown_conrady", "modified_brown_conrady"])
def test_numpy_registration_equals_rs_align_with_distortion(tmp_path, model):
    """Distorted colour intrinsics and a rotated extrinsic: still bit-exact with librealsense."""
    from dataclasses import replace

    from gaitdata.containers import write
    from gaitdata.containers.realsense import PyRealSenseRecording
    from gaitdata.records import Intrinsics

    rec = plane_recording(n=3, noise_units=3)
    ci = rec.colour_intrinsics
    rec = replace(rec, colour_intrinsics=Intrinsics(ci.width, ci.height, ci.fx, ci.fy, ci.cx, ci.cy,
                                                      model, (0.05, -0.02, 0.001, 0.0005, 0.0)))  # fmt: skip
    path = write(rec, tmp_path / "d.bag", "bag")
    with PyRealSenseRecording(path) as r:
        info = r.info
        items = list(r.frames(range(3), range(3)))
    got = {p: a for s, p, a in items if s == "depth"}
    aligner = Aligner(info.depth_intrinsics, info.colour_intrinsics, info.depth_to_colour, info.depth_scale)
    for i in range(3):
        np.testing.assert_array_equal(got[i], aligner(rec.depth[i]))


@pytest.mark.realsense
@pytest.mark.parametrize("model", ["brown_conrady", "inverse_brown_conrady"])
def test_numpy_registration_equals_rs_align_with_depth_distortion(tmp_path, model):
    from dataclasses import replace

    from gaitdata.containers import write
    from gaitdata.containers.realsense import PyRealSenseRecording
    from gaitdata.records import Intrinsics

    rec = plane_recording(n=2, noise_units=3)
    di = rec.depth_intrinsics
    coeffs = (0.05, -0.02, 0.001, 0.0005, 0.0)
    rec = replace(
        rec, depth_intrinsics=Intrinsics(di.width, di.height, di.fx, di.fy, di.cx, di.cy, model, coeffs)
    )
    with PyRealSenseRecording(write(rec, tmp_path / "d.bag", "bag")) as r:
        info = r.info
        got = {p: a for s, p, a in r.frames(range(2), range(2)) if s == "depth"}
    aligner = Aligner(info.depth_intrinsics, info.colour_intrinsics, info.depth_to_colour, info.depth_scale)
    for i in range(2):
        np.testing.assert_array_equal(got[i], aligner(rec.depth[i]))
