"""AlphaPose pre/post-processing (pseudolabel.models.fastpose_io) on hand-made data: no network."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pseudolabel.models import fastpose_io as fio  # noqa: E402


def test_box_to_center_scale_aspect_and_margin():
    # tall box: width grows to 0.75 * height, then both x1.25
    c, s = fio.box_to_center_scale([100, 50, 60, 200])
    np.testing.assert_array_equal(c, [130, 150])
    np.testing.assert_allclose(s, [150 * 1.25, 200 * 1.25])
    assert c.dtype == s.dtype == np.float32
    # wide box: height grows to width / 0.75
    c, s = fio.box_to_center_scale(np.array([[0, 0, 300, 100], [10, 20, 75, 100]]))
    np.testing.assert_allclose(s, [[375, 500], [93.75, 125]])
    np.testing.assert_allclose(c, [[150, 50], [47.5, 70]])
    np.testing.assert_allclose(s[:, 0] / s[:, 1], 0.75)
    np.testing.assert_allclose(
        fio.center_scale_to_box(c, s)[1], [47.5 - 46.875, 70 - 62.5, 47.5 + 46.875, 132.5]
    )
    with pytest.raises(ValueError, match="x, y, w, h"):
        fio.box_to_center_scale(np.zeros((2, 3)))


@pytest.mark.parametrize("box", [(100, 50, 60, 200), (3.5, 7.25, 400, 90), (-20, -10, 50, 80)])
def test_crop_affine_maps_box_corners_and_inverts(box):
    c, s = fio.box_to_center_scale(box)
    xmin, ymin, xmax, ymax = fio.center_scale_to_box(c, s)
    a = fio.crop_affine(c, s)
    assert a.shape == (2, 3)
    corners = np.array([[xmin, ymin, 1], [xmax, ymin, 1], [xmin, ymax, 1], [xmax, ymax, 1], [c[0], c[1], 1]])
    np.testing.assert_allclose(corners @ a.T, [[0, 0], [192, 0], [0, 256], [192, 256], [96, 128]], atol=1e-3)
    inv = fio.crop_affine(c, s, inverse=True)
    np.testing.assert_allclose(np.vstack([a, [0, 0, 1]]) @ np.vstack([inv, [0, 0, 1]]), np.eye(3), atol=1e-6)
    # uniform scale, no rotation
    assert a[0, 0] == pytest.approx(a[1, 1]) and abs(a[0, 1]) < 1e-9 and abs(a[1, 0]) < 1e-9
    # the heatmap affine is the same map scaled to 48x64 cells
    h2i = fio.heatmap_to_image_affine([xmin, ymin, xmax, ymax])
    np.testing.assert_allclose(h2i @ [48, 64, 1], [xmax, ymax], atol=1e-3)
    np.testing.assert_allclose(
        fio.image_to_heatmap_affine([xmin, ymin, xmax, ymax]) @ [xmin, ymin, 1], [0, 0], atol=1e-4
    )


def test_prepare_crops_samples_the_right_pixels_with_zero_border():
    img = np.full((120, 160, 3), 200, np.uint8)
    img[40, 60] = (10, 20, 30)  # a marker pixel
    # a box whose crop is an exact 2x zoom: scale (96, 128) -> 192x256
    box = np.array([[60 - 38.4, 40 - 51.2, 76.8, 102.4]])
    crops, crop_boxes, affines = fio.prepare_crops(img, box)
    assert crops.shape == (1, 256, 192, 3) and crops.dtype == np.uint8
    np.testing.assert_allclose(crop_boxes[0], [12, -24, 108, 104], atol=1e-4)
    # image (60, 40) -> crop ((60 - 12) * 2, (40 + 24) * 2) = (96, 128)
    np.testing.assert_allclose(affines[0] @ [60, 40, 1], [96, 128], atol=1e-4)
    np.testing.assert_array_equal(crops[0, 128, 96], (10, 20, 30))
    # rows above the image (y < 0) are zero, inside it the grey value
    assert crops[0, :40].max() == 0 and crops[0, 60:120, 20].tolist() == [[200] * 3] * 60


def test_normalize_alphapose_means_no_std_and_black_rule():
    crop = np.zeros((2, 4, 3, 3), np.uint8)
    crop[0, ..., 0], crop[0, ..., 1], crop[0, ..., 2] = 255, 51, 0
    crop[1] = 1  # max <= 1: AlphaPose does not divide by 255
    x = fio.normalize_alphapose(crop)
    assert x.shape == (2, 3, 4, 3) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0, :, 0, 0], [1 - 0.406, 0.2 - 0.457, 0 - 0.480], atol=1e-6)
    np.testing.assert_allclose(x[1, :, 0, 0], [1 - 0.406, 1 - 0.457, 1 - 0.480], atol=1e-6)
    assert fio.normalize_alphapose(crop[0]).shape == (1, 3, 4, 3)
    with pytest.raises(ValueError, match="N, H, W, 3"):
        fio.normalize_alphapose(np.zeros((2, 3, 4, 4), np.uint8))


def _gaussian(u0: float, v0: float, sigma: float = 2.0, hw=(64, 48)) -> np.ndarray:
    v, u = np.mgrid[0 : hw[0], 0 : hw[1]]
    return np.exp(-((u - u0) ** 2 + (v - v0) ** 2) / (2 * sigma**2)).astype(np.float32)


CROP_BOX = np.array([36.25, 25.0, 223.75, 275.0], np.float32)  # w = 187.5 (3.90625 px/cell), h = 250


def _to_image(u: float, v: float) -> tuple[float, float]:
    return 36.25 + u * 187.5 / 48, 25.0 + v * 250 / 64


@pytest.mark.parametrize(
    ("u0", "v0", "cell"),
    [
        (20.3, 30.8, (20.25, 30.75)),  # peak (20, 31): right neighbour higher -> +0.25, upper higher -> -0.25
        (10.6, 12.2, (10.75, 12.25)),
        (33.0, 40.0, (33.0, 40.0)),  # symmetric neighbours: sign(0) = 0, no shift
    ],
)
def test_decode_gaussian_subpixel_peak(u0, v0, cell):
    hm = np.stack([_gaussian(u0, v0)] * 17)
    coords, peaks = fio.heatmaps_to_image_coords(hm[None], CROP_BOX[None])
    assert coords.shape == (1, 17, 2) and peaks.shape == (1, 17)
    np.testing.assert_allclose(coords[0, 0], _to_image(*cell), atol=1e-4)
    np.testing.assert_allclose(peaks[0], hm[0].max())
    # the 0.25 shift lands within a quarter cell of the true sub-pixel location
    assert abs(cell[0] - u0) <= 0.3 and abs(cell[1] - v0) <= 0.3


@pytest.mark.parametrize(
    ("u", "v", "shifted"),
    [
        (1, 30, False),  # u = 1 is not strictly inside (1 < u)
        (2, 30, True),
        (46, 30, True),
        (47, 30, False),  # u = W - 1
        (20, 1, False),
        (20, 62, True),
        (20, 63, False),
    ],
)
def test_decode_border_rule(u, v, shifted):
    hm = np.zeros((1, 17, 64, 48), np.float32)
    hm[0, :, v, u] = 1.0
    # a higher neighbour to the right and below wherever they exist
    if u + 1 < 48:
        hm[0, :, v, u + 1] = 0.5
    if v + 1 < 64:
        hm[0, :, v + 1, u] = 0.5
    coords, _ = fio.heatmaps_to_image_coords(hm, CROP_BOX[None])
    d = 0.25 if shifted else 0.0
    np.testing.assert_allclose(coords[0, 3], _to_image(u + d, v + d), atol=1e-4)


def test_decode_non_positive_peak_and_ties_and_single():
    hm = np.full((17, 64, 48), -1.0, np.float32)
    hm[1, 10, 10] = hm[1, 20, 30] = 2.0  # tie: the first in row-major order wins
    coords, peaks = fio.heatmaps_to_image_coords(hm, CROP_BOX)  # single map, single box
    assert coords.shape == (17, 2) and peaks.shape == (17,)
    np.testing.assert_allclose(coords[0], _to_image(0, 0))  # peak <= 0 -> cell (0, 0), as AlphaPose
    assert peaks[0] == -1.0
    np.testing.assert_allclose(coords[1], _to_image(10, 10))
    with pytest.raises(ValueError, match="crop boxes"):
        fio.heatmaps_to_image_coords(hm[None].repeat(2, 0), CROP_BOX[None])


def test_decode_accepts_tensors():
    hm = np.stack([_gaussian(20.3, 30.8)] * 17)[None]
    a = fio.heatmaps_to_image_coords(hm, CROP_BOX[None])
    b = fio.heatmaps_to_image_coords(torch.from_numpy(hm).half(), CROP_BOX[None])
    np.testing.assert_allclose(a[0], b[0], atol=1e-4)


def test_flip_heatmaps_mirror_swap_shift():
    rng = np.random.default_rng(0)
    hm = rng.random((2, 17, 64, 48)).astype(np.float32)
    out = fio.flip_heatmaps(hm)
    # left shoulder (5) of the result = right shoulder (6) mirrored, shifted one cell right
    np.testing.assert_array_equal(out[:, 5, :, 1:], hm[:, 6, :, ::-1][:, :, :-1])
    np.testing.assert_array_equal(out[:, 5, :, 0], hm[:, 6, :, -1])  # column 0 keeps its value
    np.testing.assert_array_equal(out[:, 0, :, 1:], hm[:, 0, :, ::-1][:, :, :-1])  # nose: no partner
    # without the shift the operation is an involution
    np.testing.assert_array_equal(fio.flip_heatmaps(fio.flip_heatmaps(hm, shift=False), shift=False), hm)
    # torch and numpy agree, also in fp16
    t = fio.flip_heatmaps(torch.from_numpy(hm))
    np.testing.assert_array_equal(t.numpy(), out)
    assert fio.flip_heatmaps(torch.from_numpy(hm).half()).dtype == torch.float16
