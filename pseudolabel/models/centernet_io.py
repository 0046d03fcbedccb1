"""CenterNet multi-pose pre-processing, flip test and decoding (pure functions).

Pre-processing (CenterNet's default ``fix_res`` test mode at scale 1): the image (BGR) is mapped by
a uniform-scale affine that sends its centre to the centre of the 512x512 input and its longer side
to 512 pixels (letterbox, zero border before normalisation), then ``(img / 255 - mean) / std`` with
the BGR mean/std below. The network's outputs live on the stride-4 grid (128x128); the same affine
with output size 128 maps decoded coordinates back to the image (no half-pixel shift: CenterNet
maps annotation coordinates with this affine in training, so its outputs come back in the
annotation convention).

Decoding (CenterNet ``multi_pose_decode``): sigmoid on ``hm``/``hm_hp`` (done before the flip
average), 3x3 max-pool NMS, top-K centres; box = centre + ``reg`` +- ``wh``/2; keypoints = integer
centre + ``hps`` offsets, then each keypoint snaps to the nearest of its joint's top-K ``hm_hp``
peaks (+ ``hp_offset``) when that peak scores > 0.1, lies inside the box and is within
0.3 * max(box width, height) of the regressed point. Unlike the original, a per-joint confidence
is returned: the snapped peak's score; a joint that did not snap keeps its regressed position and
gets the keypoint-heatmap value at that position capped at :data:`UNSNAPPED_CONF_CAP` (0.1, below
the snapping threshold), so it always reads as low confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gaitdata.schema import COCO17

CENTERNET_MEAN_BGR = (0.408, 0.447, 0.470)
CENTERNET_STD_BGR = (0.289, 0.274, 0.278)
INPUT_SIZE = 512
DOWN_RATIO = 4
SNAP_THRESHOLD = 0.1  # hm_hp peak score needed for a keypoint to snap to it
SNAP_DISTANCE = 0.3  # fraction of max(box side) within which a peak may be snapped to
UNSNAPPED_CONF_CAP = 0.1  # confidence ceiling of joints that did not snap


# ---- affine ----------------------------------------------------------------------------------------
def letterbox_affine(center: tuple[float, float], scale: float, out_size: tuple[int, int]) -> np.ndarray:
    """2x3 affine sending ``center`` to the output centre and ``scale`` source pixels to ``out_size[0]``.

    This is the rotation-free case of CenterNet's ``get_affine_transform(c, s, 0, (w, h))``: uniform
    scale ``w / s``, translation ``(w/2, h/2) - center * w / s``.
    """
    ow, oh = out_size
    k = ow / float(scale)
    return np.array(
        [[k, 0.0, ow / 2.0 - center[0] * k], [0.0, k, oh / 2.0 - center[1] * k]], dtype=np.float64
    )


def invert_affine(m: np.ndarray) -> np.ndarray:
    a = np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(a)[:2]


def apply_affine(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (..., 2) points."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


@dataclass(frozen=True)
class Letterbox:
    """Where an image went: centre and scale of CenterNet's affine, and the input size."""

    center: tuple[float, float]
    scale: float
    input_size: int = INPUT_SIZE

    @classmethod
    def for_image(cls, height: int, width: int, input_size: int = INPUT_SIZE) -> Letterbox:
        return cls((width / 2.0, height / 2.0), float(max(height, width)), input_size)

    def to_input(self) -> np.ndarray:
        return letterbox_affine(self.center, self.scale, (self.input_size, self.input_size))

    def output_to_image(self, down_ratio: int = DOWN_RATIO) -> np.ndarray:
        o = self.input_size // down_ratio
        return invert_affine(letterbox_affine(self.center, self.scale, (o, o)))


def preprocess(image_rgb: np.ndarray, input_size: int = INPUT_SIZE) -> tuple[np.ndarray, Letterbox]:
    """RGB uint8 HxWx3 -> (3, S, S) float32 normalised BGR input, and its :class:`Letterbox`."""
    import cv2

    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    lb = Letterbox.for_image(img.shape[0], img.shape[1], input_size)
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    warped = cv2.warpAffine(bgr, lb.to_input(), (input_size, input_size), flags=cv2.INTER_LINEAR)
    x = (warped.astype(np.float32) / 255.0 - np.asarray(CENTERNET_MEAN_BGR, np.float32)) / np.asarray(
        CENTERNET_STD_BGR, np.float32
    )
    return np.ascontiguousarray(x.transpose(2, 0, 1)), lb


# ---- flip test ---------------------------------------------------------------------------------------
def _swap_channels(x: torch.Tensor, flip_pairs: tuple[tuple[int, int], ...], group: int = 1) -> torch.Tensor:
    """Swap channel groups (of size ``group``) pairwise along dim 1."""
    n = x.shape[1] // group
    perm = np.arange(n)
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    idx = torch.as_tensor((perm[:, None] * group + np.arange(group)[None]).reshape(-1), device=x.device)
    return x.index_select(1, idx)


def merge_flip(outputs: dict[str, torch.Tensor], flip_pairs=COCO17.flip_pairs) -> dict[str, torch.Tensor]:
    """Average a batch of (original, mirrored) pairs as CenterNet's flip test does.

    ``outputs`` holds 2N images: rows 0..N-1 original, N..2N-1 their mirrors; ``hm``/``hm_hp``
    must already be sigmoids. hm, wh: mirror back and average; hps: mirror back, negate the x
    offsets, swap left/right joints, average; hm_hp: mirror back, swap joints, average; reg and
    hp_offset: taken from the original only.
    """
    n = outputs["hm"].shape[0] // 2
    out: dict[str, torch.Tensor] = {}
    for name, t in outputs.items():
        a, b = t[:n], t[n:].flip(3)
        if name in ("hm", "wh"):
            out[name] = (a + b) / 2
        elif name == "hps":
            j = b.shape[1] // 2
            b = b.reshape(n, j, 2, *b.shape[2:]).clone()
            b[:, :, 0] *= -1
            b = _swap_channels(b.reshape(n, 2 * j, *b.shape[3:]), flip_pairs, group=2)
            out[name] = (a + b) / 2
        elif name == "hm_hp":
            out[name] = (a + _swap_channels(b, flip_pairs)) / 2
        else:  # reg, hp_offset
            out[name] = a
    return out


# ---- decoding ------------------------------------------------------------------------------------------
def heatmap_nms(heat: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """Keep only local maxima of a (N, C, H, W) heatmap (3x3 max-pool equality), zero elsewhere."""
    hmax = F.max_pool2d(heat, kernel, stride=1, padding=(kernel - 1) // 2)
    return heat * (hmax == heat).to(heat.dtype)


def _gather(feat: torch.Tensor, inds: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) and (N, K) flat indices -> (N, K, C)."""
    n, c = feat.shape[:2]
    f = feat.reshape(n, c, -1)
    return f.gather(2, inds.unsqueeze(1).expand(n, c, inds.shape[1])).permute(0, 2, 1)


def decode_multi_pose(out: dict[str, torch.Tensor], k: int = 100) -> dict[str, torch.Tensor]:
    """Decode sigmoided outputs on the output grid.

    Returns per image K detections: ``boxes`` (N, K, 4) x1, y1, x2, y2; ``scores`` (N, K);
    ``keypoints`` (N, K, J, 2); ``kp_conf`` (N, K, J); ``snapped`` (N, K, J) bool. Coordinates are
    output-grid units (multiply by the down ratio via the inverse affine to get image pixels).
    """
    heat = out["hm"]
    n, _, h, w = heat.shape
    k = min(k, h * w)
    heat = heatmap_nms(heat)
    scores, inds = heat.reshape(n, -1).topk(k)
    inds = inds % (h * w)  # single class
    ys = (inds // w).to(heat.dtype)
    xs = (inds % w).to(heat.dtype)
    j = out["hps"].shape[1] // 2
    kps = _gather(out["hps"], inds).reshape(n, k, j, 2)
    kps = kps + torch.stack([xs, ys], -1)[:, :, None, :]  # integer centre + offsets
    if "reg" in out:
        reg = _gather(out["reg"], inds)
        cx, cy = xs + reg[..., 0], ys + reg[..., 1]
    else:
        cx, cy = xs + 0.5, ys + 0.5
    wh = _gather(out["wh"], inds)
    boxes = torch.stack(
        [cx - wh[..., 0] / 2, cy - wh[..., 1] / 2, cx + wh[..., 0] / 2, cy + wh[..., 1] / 2], -1
    )

    kp_conf = torch.zeros(n, k, j, dtype=heat.dtype, device=heat.device)
    snapped = torch.zeros(n, k, j, dtype=torch.bool, device=heat.device)
    if "hm_hp" in out:
        raw_hp = out["hm_hp"]
        hm_hp = heatmap_nms(raw_hp)
        kk = min(k, h * w)
        hp_scores, hp_inds = hm_hp.reshape(n, j, -1).topk(kk)  # (N, J, kk)
        hys = (hp_inds // w).to(heat.dtype)
        hxs = (hp_inds % w).to(heat.dtype)
        if "hp_offset" in out:
            off = _gather(out["hp_offset"], hp_inds.reshape(n, -1)).reshape(n, j, kk, 2)
            hxs, hys = hxs + off[..., 0], hys + off[..., 1]
        else:
            hxs, hys = hxs + 0.5, hys + 0.5
        valid = hp_scores > SNAP_THRESHOLD
        hxs = torch.where(valid, hxs, torch.full_like(hxs, -10000.0))
        hys = torch.where(valid, hys, torch.full_like(hys, -10000.0))
        hp_scores = torch.where(valid, hp_scores, torch.full_like(hp_scores, -1.0))
        peaks = torch.stack([hxs, hys], -1)  # (N, J, kk, 2)
        reg_kps = kps.permute(0, 2, 1, 3)  # (N, J, K, 2)
        dist = ((reg_kps.unsqueeze(3) - peaks.unsqueeze(2)) ** 2).sum(-1).sqrt()  # (N, J, K, kk)
        min_dist, min_ind = dist.min(dim=3)
        best_score = hp_scores.gather(2, min_ind)  # (N, J, K)
        best = peaks.gather(2, min_ind.unsqueeze(-1).expand(n, j, k, 2))  # (N, J, K, 2)
        x1, y1, x2, y2 = (boxes[..., i].unsqueeze(1) for i in range(4))  # (N, 1, K)
        side = torch.maximum(y2 - y1, x2 - x1)
        reject = (
            (best[..., 0] < x1) | (best[..., 0] > x2) | (best[..., 1] < y1) | (best[..., 1] > y2)
            | (best_score < SNAP_THRESHOLD) | (min_dist > side * SNAP_DISTANCE)
        )  # fmt: skip
        snap = ~reject  # (N, J, K)
        kps_t = torch.where(snap.unsqueeze(-1), best, reg_kps)
        # confidence of unsnapped joints: the keypoint heatmap at the regressed cell, capped low
        gx = kps_t[..., 0].round().clamp(0, w - 1).long()
        gy = kps_t[..., 1].round().clamp(0, h - 1).long()
        local = raw_hp.reshape(n, j, -1).gather(2, gy * w + gx)
        conf = torch.where(snap, best_score, local.clamp(max=UNSNAPPED_CONF_CAP))
        kps = kps_t.permute(0, 2, 1, 3)
        kp_conf = conf.permute(0, 2, 1).clamp(0, 1)
        snapped = snap.permute(0, 2, 1)
    return {"boxes": boxes, "scores": scores, "keypoints": kps, "kp_conf": kp_conf, "snapped": snapped}


def sigmoid_outputs(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Sigmoid on the heatmap heads (``hm``, ``hm_hp``), others unchanged (CenterNet clamps nothing here)."""
    return {k: (v.sigmoid() if k in ("hm", "hm_hp") else v) for k, v in out.items()}
