"""Modulated deformable convolution: the pure-PyTorch op against an explicit per-pixel reference."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from pseudolabel.models.dcn import DCN, deform_conv2d, deform_conv2d_torch  # noqa: E402


def _bilinear(img: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """Sample (C, H, W) at (y, x) bilinearly, each of the four corners zero outside the image."""
    c, h, w = img.shape
    y0, x0 = math.floor(y), math.floor(x)
    out = torch.zeros(c, dtype=img.dtype)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * img[:, yy, xx]
    return out


def naive_deform_conv(x, offset, weight, bias, stride, pad, dil, mask):
    """Explicit loop over images, output pixels and kernel taps (DCNv2 definition, one group)."""
    n, c, h, w = x.shape
    co, _, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    out = torch.zeros(n, co, ho, wo, dtype=x.dtype)
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                acc = bias.clone()
                for u in range(kh):
                    for v in range(kw):
                        k = u * kw + v
                        py = i * stride - pad + u * dil + float(offset[b, 2 * k, i, j])
                        px = j * stride - pad + v * dil + float(offset[b, 2 * k + 1, i, j])
                        val = _bilinear(x[b], py, px) * float(mask[b, k, i, j])
                        acc = acc + weight[:, :, u, v] @ val
                out[b, :, i, j] = acc
    return out


@pytest.mark.parametrize(("stride", "pad", "dil"), [(1, 1, 1), (2, 1, 1), (1, 2, 2)])
def test_matches_naive_reference(stride: int, pad: int, dil: int) -> None:
    g = torch.Generator().manual_seed(stride * 10 + dil)
    x = torch.randn(2, 3, 6, 7, generator=g, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(4, generator=g, dtype=torch.float64)
    ho = (6 + 2 * pad - dil * 2 - 1) // stride + 1
    wo = (7 + 2 * pad - dil * 2 - 1) // stride + 1
    # offsets up to +-3 px: many samples straddle or leave the border
    offset = torch.rand(2, 18, ho, wo, generator=g, dtype=torch.float64) * 6 - 3
    mask = torch.rand(2, 9, ho, wo, generator=g, dtype=torch.float64)
    got = deform_conv2d_torch(x, offset, weight, bias, stride, pad, dil, mask)
    want = naive_deform_conv(x, offset, weight, bias, stride, pad, dil, mask)
    assert got.shape == want.shape == (2, 4, ho, wo)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_zero_offset_unit_mask_is_plain_conv() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 5, 9, 8, generator=g)
    weight = torch.randn(6, 5, 3, 3, generator=g)
    bias = torch.randn(6, generator=g)
    for stride in (1, 2):
        ref = torch.nn.functional.conv2d(x, weight, bias, stride=stride, padding=1)
        off = torch.zeros(1, 18, *ref.shape[-2:])
        got = deform_conv2d_torch(x, off, weight, bias, stride=stride, padding=1, mask=None)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_integer_offset_shifts_the_input() -> None:
    x = torch.arange(25.0).view(1, 1, 5, 5)
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 1, 1] = 1.0  # centre tap only: output = input sampled at (i + dy, j + dx)
    off = torch.zeros(1, 18, 5, 5)
    off[:, 8], off[:, 9] = 1.0, -2.0  # centre tap k = 4: dy = +1, dx = -2
    got = deform_conv2d_torch(x, off, weight, None, padding=1)[0, 0]
    want = torch.zeros(5, 5)
    want[:4, 2:] = x[0, 0, 1:, :3]
    torch.testing.assert_close(got, want)


def test_dcn_module_layout_and_mask() -> None:
    m = DCN(4, 8)
    keys = list(m.state_dict())
    assert keys == ["weight", "bias", "conv_offset_mask.weight", "conv_offset_mask.bias"]
    assert m.conv_offset_mask.out_channels == 27
    # zero-initialised offset predictor -> offsets 0, mask sigmoid(0) = 0.5: half a plain conv
    x = torch.randn(1, 4, 6, 6)
    ref = torch.nn.functional.conv2d(x, m.weight, None, padding=1) * 0.5 + m.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(m(x), ref, rtol=1e-5, atol=1e-5)
    # the last third is the mask logit: a large value opens it fully
    with torch.no_grad():
        m.conv_offset_mask.bias[18:] = 50.0
    ref = torch.nn.functional.conv2d(x, m.weight, m.bias, padding=1)
    torch.testing.assert_close(m(x), ref, rtol=1e-5, atol=1e-5)
    # first two thirds: (dy, dx) per tap; dx = +1 for every tap shifts the input left by one
    # (column 0 differs: its left tap now reads x[..., 0] instead of the zero padding)
    with torch.no_grad():
        m.conv_offset_mask.bias[1:18:2] = 1.0
    shifted = torch.zeros_like(x)
    shifted[..., :-1] = x[..., 1:]
    ref = torch.nn.functional.conv2d(shifted, m.weight, m.bias, padding=1)
    torch.testing.assert_close(m(x)[..., 1:], ref[..., 1:], rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # dy instead: shifts up by one
        m.conv_offset_mask.bias[1:18:2] = 0.0
        m.conv_offset_mask.bias[0:18:2] = 1.0
    shifted = torch.zeros_like(x)
    shifted[..., :-1, :] = x[..., 1:, :]
    ref = torch.nn.functional.conv2d(shifted, m.weight, m.bias, padding=1)
    torch.testing.assert_close(m(x)[..., 1:, :], ref[..., 1:, :], rtol=1e-5, atol=1e-5)


def test_gradients_flow_to_offsets() -> None:
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    off = (torch.rand(1, 18, 5, 5, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    mask = torch.rand(1, 9, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: deform_conv2d_torch(a[0], a[1], a[2], None, 1, 1, 1, a[3]),
                                    (x, off, w, mask), eps=1e-6, atol=1e-5)  # fmt: skip


def test_against_torchvision_when_available() -> None:
    try:
        from torchvision.ops import deform_conv2d as tv_deform
    except Exception:  # noqa: BLE001 - absent or built for another torch
        pytest.skip("torchvision.ops not importable with this torch (the pure-PyTorch path is used)")
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 8, 8, generator=g)
    w = torch.randn(5, 4, 3, 3, generator=g)
    b = torch.randn(5, generator=g)
    off = torch.randn(2, 18, 8, 8, generator=g) * 2
    mask = torch.rand(2, 9, 8, 8, generator=g)
    want = tv_deform(x, off, w, b, padding=(1, 1), mask=mask)
    torch.testing.assert_close(deform_conv2d_torch(x, off, w, b, 1, 1, 1, mask), want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(deform_conv2d(x, off, w, b, 1, 1, 1, mask, backend="torchvision"), want)


def test_bad_backend_name() -> None:
    x = torch.zeros(1, 1, 3, 3)
    with pytest.raises(ValueError, match="backend"):
        deform_conv2d(x, torch.zeros(1, 18, 3, 3), torch.zeros(1, 1, 3, 3), backend="cuda-magic")
