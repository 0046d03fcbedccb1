"""AlphaPose's pre- and post-processing for FastPose, reproduced step by step.

Coordinates: boxes go in and keypoints come out in the same image frame, passed to and from
AlphaPose's transforms unchanged (AlphaPose feeds COCO boxes and is scored against COCO keypoints
this way). An image pixel with index ``i`` is sampled at coordinate ``i`` (OpenCV convention).

Pre-processing, per person box ``(x, y, w, h)``:

1. :func:`box_to_center_scale`: centre ``(x + w/2, y + h/2)``; the box is widened or heightened to
   the input aspect ``192/256``, then both sides are multiplied by 1.25 (float32, as AlphaPose).
2. :func:`crop_affine`: the similarity that maps the centre to the crop centre ``(96, 128)`` and the
   scaled width to 192 pixels (built from the same three point pairs as AlphaPose, solved by
   ``cv2.getAffineTransform``); :func:`warp_crop` applies it with bilinear sampling and a zero
   border, giving a uint8 RGB crop of 256x192.
3. :func:`normalize_alphapose`: ``/255`` (AlphaPose skips this when a crop's maximum is <= 1, i.e. an
   all-black crop; reproduced), then subtract the per-channel means R 0.406, G 0.457, B 0.480.
   No division by a standard deviation.

Post-processing of the 17x64x48 heatmaps (:func:`heatmaps_to_image_coords`): per joint the arg-max cell
(first one on ties; a non-positive maximum gives cell (0, 0)); where the peak lies strictly inside
(``1 < u < 47`` and ``1 < v < 63``) it moves by ``0.25 * sign`` of the neighbour difference in u and
in v; the inverse crop affine maps it back: ``x = xmin + u * w / 48``, ``y = ymin + v * h / 64`` with
``(xmin, ymin, w, h)`` the scaled crop box (:func:`center_scale_to_box`). The score of a joint is
the raw peak value. Flip test (:func:`flip_heatmaps`): run the mirrored crop, mirror its heatmaps
back, swap the COCO left/right channels, shift them one cell to the right (column 0 is kept), and
average with the unflipped heatmaps.

One deliberate difference: AlphaPose shifts with the in-place assignment ``out[..., 1:] =
out[..., :-1]``, whose source and destination overlap in memory. Its result depends on PyTorch's
copy order (measured with torch 2.13 on CPU: columns are smeared in blocks, e.g. every column from
33 on repeats one value). We compute the evident intent, a clean one-cell shift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from gaitdata.schema import COCO17

if TYPE_CHECKING:  # pragma: no cover
    import torch

INPUT_HW = (256, 192)  # network input (height, width)
HEATMAP_HW = (64, 48)
SCALE_MULT = 1.25
ALPHAPOSE_MEAN_RGB = (0.406, 0.457, 0.480)
COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = COCO17.flip_pairs


def _as_boxes(boxes: Any) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] < 4:
        raise ValueError(f"boxes must have shape (N, 4) or (N, 5) as x, y, w, h[, score]; got {b.shape}")
    return b


def box_to_center_scale(
    boxes_xywh: Any, aspect_ratio: float = INPUT_HW[1] / INPUT_HW[0], scale_mult: float = SCALE_MULT
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) boxes ``x, y, w, h`` -> centres (N, 2) and scales (N, 2) = crop width/height, float32.

    The box is padded to ``aspect_ratio`` (width / height) around its centre, then scaled by
    ``scale_mult``. A single box (shape (4,)) gives (2,) arrays.
    """
    single = np.ndim(boxes_xywh) == 1
    b = _as_boxes(boxes_xywh)
    x, y, w, h = b[:, 0], b[:, 1], b[:, 2].copy(), b[:, 3].copy()
    center = np.stack([x + w * 0.5, y + h * 0.5], axis=1).astype(np.float32)
    wider = w > aspect_ratio * h
    taller = w < aspect_ratio * h
    h[wider] = w[wider] / aspect_ratio
    w[taller] = h[taller] * aspect_ratio
    scale = np.stack([w, h], axis=1).astype(np.float32) * np.float32(scale_mult)
    return (center[0], scale[0]) if single else (center, scale)


def center_scale_to_box(center: Any, scale: Any) -> np.ndarray:
    """Centre(s) and scale(s) -> crop box(es) ``xmin, ymin, xmax, ymax`` (float32)."""
    c = np.asarray(center, dtype=np.float32)
    s = np.asarray(scale, dtype=np.float32)
    xmin = c[..., 0] - s[..., 0] * np.float32(0.5)
    ymin = c[..., 1] - s[..., 1] * np.float32(0.5)
    return np.stack([xmin, ymin, xmin + s[..., 0], ymin + s[..., 1]], axis=-1)


def crop_affine(
    center: Any, scale: Any, output_wh: tuple[int, int] = (INPUT_HW[1], INPUT_HW[0]), inverse: bool = False
) -> np.ndarray:
    """2x3 affine (float64) from image pixels to the ``output_wh`` crop (or back with ``inverse``).

    Uniform scale ``output_w / scale[0]``; ``center`` lands on ``(output_w/2, output_h/2)``. Built
    from AlphaPose's three point pairs (centre, a point half a crop width above it, and the
    perpendicular third point) so that the matrix is the same to the last bit.
    """
    # float64 arithmetic, float32 point storage: the precision path of AlphaPose's own code
    c = np.asarray(center, dtype=np.float64).reshape(2)
    src_w = float(np.asarray(scale, dtype=np.float64).reshape(-1)[0])
    dst_w, dst_h = float(output_wh[0]), float(output_wh[1])
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = c
    src[1] = c + np.array([0.0, src_w * -0.5])
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0.0, dst_w * -0.5])
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inverse:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def warp_crop(image: np.ndarray, affine: np.ndarray, output_wh: tuple[int, int] = (INPUT_HW[1], INPUT_HW[0])):
    """Bilinear affine crop with a zero border (``cv2.warpAffine`` defaults), same dtype as input."""
    return cv2.warpAffine(image, affine, (int(output_wh[0]), int(output_wh[1])), flags=cv2.INTER_LINEAR)


def prepare_crops(
    image: np.ndarray, boxes_xywh: Any, input_hw: tuple[int, int] = INPUT_HW
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One RGB image and its (N, 4) person boxes -> crops (N, H, W, 3) uint8, crop boxes (N, 4)
    ``xmin, ymin, xmax, ymax`` float32, and image->crop affines (N, 2, 3) float64."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    b = _as_boxes(boxes_xywh)
    out_wh = (input_hw[1], input_hw[0])
    centers, scales = box_to_center_scale(b, aspect_ratio=input_hw[1] / input_hw[0])
    crops = np.zeros((len(b), input_hw[0], input_hw[1], 3), dtype=image.dtype)
    affines = np.zeros((len(b), 2, 3), dtype=np.float64)
    for i in range(len(b)):
        affines[i] = crop_affine(centers[i], scales[i], out_wh)
        crops[i] = warp_crop(image, affines[i], out_wh)
    return crops, center_scale_to_box(centers, scales).reshape(-1, 4), affines


def normalize_alphapose(crops: Any, mean: Sequence[float] = ALPHAPOSE_MEAN_RGB) -> torch.Tensor:
    """RGB crops (N, H, W, 3) or (H, W, 3), uint8 numpy or tensor -> float32 (N, 3, H, W).

    ``x / 255 - mean`` per channel, no std; a crop whose maximum is <= 1 is not divided by 255
    (AlphaPose's ``im_to_torch`` rule). Runs on the tensor's device.
    """
    import torch

    t = torch.as_tensor(crops)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected crops of shape (N, H, W, 3), got {tuple(t.shape)}")
    t = t.permute(0, 3, 1, 2).float()
    peak = t.amax(dim=(1, 2, 3), keepdim=True)
    t = torch.where(peak > 1, t / 255, t)
    m = torch.tensor(mean, dtype=t.dtype, device=t.device).view(1, 3, 1, 1)
    return (t - m).contiguous()


def flip_heatmaps(
    heatmaps: Any, flip_pairs: Sequence[tuple[int, int]] = COCO_FLIP_PAIRS, shift: bool = True
) -> Any:
    """Heatmaps of a mirrored crop -> heatmaps in the unmirrored frame (numpy or torch, (..., K, H, W)).

    Mirror along width, swap the left/right channels of ``flip_pairs``, and with ``shift`` move
    everything one cell to the right (column 0 keeps its value), as AlphaPose's flip test does
    (a clean shift; see the module docstring on AlphaPose's overlapping in-place copy).
    """
    perm = list(range(heatmaps.shape[-3]))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    if isinstance(heatmaps, np.ndarray):
        out = heatmaps[..., ::-1][..., perm, :, :].copy()
        if shift:
            out[..., 1:] = out[..., :-1].copy()
        return out
    import torch

    out = torch.flip(heatmaps, dims=(-1,))[..., perm, :, :]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
    return out


def heatmaps_to_image_coords(heatmaps: Any, crop_boxes: Any) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, H, W) heatmaps + (N, 4) crop boxes ``xmin, ymin, xmax, ymax`` -> image coordinates
    (N, K, 2) float64 and raw peak values (N, K) float32.

    AlphaPose's ``heatmap_to_coord_simple``: arg-max, 0.25-cell shift towards the larger neighbour
    where the peak is strictly inside, inverse affine of the crop box. Also accepts a single
    (K, H, W) map with a (4,) box (the N axis is then dropped).
    """
    hm = heatmaps.detach().float().cpu().numpy() if hasattr(heatmaps, "detach") else np.asarray(heatmaps)
    hm = hm.astype(np.float32, copy=False)
    single = hm.ndim == 3
    if single:
        hm = hm[None]
    boxes = np.asarray(crop_boxes, dtype=np.float32).reshape(-1, 4)
    if hm.ndim != 4 or len(boxes) != hm.shape[0]:
        raise ValueError(
            f"heatmaps_to_image_coords: {hm.shape} heatmaps need {hm.shape[0]} crop boxes, got {len(boxes)}"
        )
    n, k, hh, ww = hm.shape
    flat = hm.reshape(n, k, -1)
    idx = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    px = idx % ww
    py = idx // ww
    positive = maxvals > 0
    px = np.where(positive, px, 0)
    py = np.where(positive, py, 0)
    coords = np.stack([px, py], axis=-1).astype(np.float32)
    inside = (px > 1) & (px < ww - 1) & (py > 1) & (py < hh - 1)
    ni, ki = np.nonzero(inside)
    if len(ni):
        x, y = px[ni, ki], py[ni, ki]
        dx = hm[ni, ki, y, x + 1] - hm[ni, ki, y, x - 1]
        dy = hm[ni, ki, y + 1, x] - hm[ni, ki, y - 1, x]
        coords[ni, ki, 0] += np.sign(dx) * np.float32(0.25)
        coords[ni, ki, 1] += np.sign(dy) * np.float32(0.25)
    preds = np.zeros((n, k, 2), dtype=np.float64)
    for i in range(n):
        t = heatmap_to_image_affine(boxes[i], (ww, hh))
        preds[i, :, 0] = t[0, 0] * coords[i, :, 0] + t[0, 1] * coords[i, :, 1] + t[0, 2]
        preds[i, :, 1] = t[1, 0] * coords[i, :, 0] + t[1, 1] * coords[i, :, 1] + t[1, 2]
    if single:
        return preds[0], maxvals[0]
    return preds, maxvals


def heatmap_to_image_affine(crop_box: Any, heatmap_wh: tuple[int, int] = (HEATMAP_HW[1], HEATMAP_HW[0])):
    """2x3 affine from heatmap cells (u, v) to image pixels for one crop box ``xmin, ymin, xmax, ymax``:
    ``x = xmin + u * w / heatmap_w``, ``y = ymin + v * h / heatmap_h`` (AlphaPose's inverse transform)."""
    # the crop box is float32 (AlphaPose keeps it in a FloatTensor), the arithmetic float64
    xmin, ymin, xmax, ymax = np.asarray(crop_box, dtype=np.float32).astype(np.float64).reshape(4)
    w, h = xmax - xmin, ymax - ymin
    center = np.array([xmin + w * 0.5, ymin + h * 0.5])
    return crop_affine(center, np.array([w, h]), heatmap_wh, inverse=True)


def image_to_heatmap_affine(crop_box: Any, heatmap_wh: tuple[int, int] = (HEATMAP_HW[1], HEATMAP_HW[0])):
    """Inverse of :func:`heatmap_to_image_affine`: image pixels -> heatmap cells."""
    return cv2.invertAffineTransform(heatmap_to_image_affine(crop_box, heatmap_wh))
