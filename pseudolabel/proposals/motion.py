"""Moving people in front of a static camera: a per-recording background model and person-shaped boxes.

The background is the per-pixel median of frames sampled evenly over the recording (over each
window of ``window`` frames in long recordings, so slow light changes are followed), computed at
a working resolution of about 320-480 pixels wide (JPEG frames are decoded directly at that size).
A pixel is foreground when one colour channel differs from the background by more than
``max(min_threshold, noise_k * noise)``, ``noise`` being the median absolute difference over the
samples. When the samples differ from their background over much of the frame, or the typical
difference is far above sensor noise, the camera moved (or the light changed) and the recording
gets no motion proposals (:attr:`MotionModel.static`).

Foreground blobs become person-shaped boxes (:func:`person_boxes`): low, thin or wide blobs that
no group of people could make are dropped, blobs wider than a person are split at the valleys of their column
profile, and, when the recording shows how tall people are at each image row (a line fitted to
the height of isolated upright blobs against their foot row: a flat floor seen by a fixed camera),
blobs taller than a person are split into people standing one behind the other.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# reads the frame at a position of the recording, decoded at 1/factor size (RGB), or None
ReadFn = Callable[[int, int], "np.ndarray | None"]
_CLOSE = np.ones((5, 3), np.uint8)  # joins a person's parts split by thin gaps (rows x columns)
REDUCED_READ = {2: "IMREAD_REDUCED_COLOR_2", 4: "IMREAD_REDUCED_COLOR_4", 8: "IMREAD_REDUCED_COLOR_8"}


@dataclass(frozen=True)
class MotionConfig:
    samples: int = 15  # frames per background window (odd: the median is one of them)
    window: int = 1200  # frames per background model in long recordings
    min_frames: int = 8  # fewer frames than this: no motion model
    target_width: int = 320  # working resolution: the largest 1/2^k of the frame at least this wide
    min_threshold: int = 22  # colour difference (0-255) always below foreground
    noise_k: float = 4.0  # ... and below this many times the median absolute difference
    max_moving_share: float = 0.3  # median foreground share of the samples above this: camera not static
    max_noise: float = 8.0  # ... or a median absolute difference to the background above this
    min_height: float = 0.035  # blobs lower than this share of the frame height are ignored
    min_fill: float = 0.2  # blob pixels / box area below this: not a person
    person_aspect: float = 0.45  # width / height of one upright walking person
    max_aspect: float = 1.6  # a part of a split blob wider than this (w / h) is dropped
    max_blob_aspect: float = 4.0  # a blob wider than this (w / h) is no group of people
    pad: float = 0.04  # box padding, share of the box height

    def __post_init__(self) -> None:
        if self.samples < 3:
            raise ValueError(f"MotionConfig.samples must be at least 3, got {self.samples}")
        if self.target_width < 32:
            raise ValueError(f"MotionConfig.target_width must be at least 32, got {self.target_width}")


def working_factor(width: int, target_width: int = 320) -> int:
    """Downscale factor (1, 2, 4 or 8) that keeps the working width at least ``target_width``."""
    f = 1
    while f < 8 and width / (2 * f) >= target_width:
        f *= 2
    return f


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` downscaled by ``factor`` (area average; sizes rounded down as JPEG reduced decoding does)."""
    import cv2

    if factor == 1:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (-(-w // factor), -(-h // factor)), interpolation=cv2.INTER_AREA)


def read_reduced(path: str | os.PathLike, factor: int) -> np.ndarray | None:
    """An image file decoded at 1/``factor`` size (RGB), or None when it cannot be read."""
    import cv2

    flag = getattr(cv2, REDUCED_READ[factor]) if factor in REDUCED_READ else cv2.IMREAD_COLOR
    bgr = cv2.imread(str(path), flag)
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def median_image(images: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel median (the lower middle value for an even count) of equally sized uint8 images."""
    shape = images[0].shape
    k = (len(images) - 1) // 2
    if len(images) <= 64:  # an odd-even transposition sorting network over whole images: n^2/2 min/max pairs
        rows = [np.asarray(im).reshape(-1) for im in images]
        for r in range(len(rows)):
            for i in range(r % 2, len(rows) - 1, 2):
                a, b = rows[i], rows[i + 1]
                rows[i], rows[i + 1] = np.minimum(a, b), np.maximum(a, b)
        return np.ascontiguousarray(rows[k]).reshape(shape)
    stack = np.stack([np.asarray(im).reshape(-1) for im in images], axis=1)  # pixels x samples
    return np.ascontiguousarray(np.partition(stack, k, axis=1)[:, k]).reshape(shape)


def difference(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Largest absolute channel difference (uint8, H x W)."""
    import cv2

    c0, c1, c2 = cv2.split(cv2.absdiff(image, background))
    return cv2.max(cv2.max(c0, c1), c2)


@dataclass(frozen=True)
class HeightPrior:
    """Expected person height (pixels) at a foot row: ``max(a + b * y_foot, 1)``, fitted per recording."""

    a: float
    b: float
    n: int  # blobs it was fitted to

    def height(self, y_foot: float) -> float:
        return max(self.a + self.b * float(y_foot), 1.0)


def fit_height_prior(
    feet: np.ndarray, heights: np.ndarray, min_blobs: int = 12, min_spread: float = 0.0
) -> HeightPrior | None:
    """Robust line ``height = a + b * foot_row`` (median of pairwise slopes).

    None with fewer than ``min_blobs`` blobs, or when their foot rows spread over less than
    ``min_spread`` pixels (one walker on one line tells nothing about other rows).
    """
    feet = np.asarray(feet, np.float64)
    heights = np.asarray(heights, np.float64)
    if len(feet) < min_blobs or np.ptp(feet) < max(min_spread, 1.0):
        return None
    if np.percentile(feet, 90) - np.percentile(feet, 10) < min_spread / 2:
        return None
    rng = np.random.default_rng(0)
    i = rng.integers(0, len(feet), 4000)
    j = rng.integers(0, len(feet), 4000)
    dy = feet[i] - feet[j]
    ok = np.abs(dy) > 0.05 * np.ptp(feet)
    if ok.sum() < 10:
        b = 0.0
    else:
        b = float(np.median((heights[i] - heights[j])[ok] / dy[ok]))
    b = max(b, 0.0)  # people lower in the image are nearer, never smaller
    a = float(np.median(heights - b * feet))
    return HeightPrior(a, b, len(feet))


def _split_columns(mask: np.ndarray, k: int) -> list[tuple[int, int]]:
    """``k`` column ranges of a blob mask, cut at the emptiest columns near the even split points."""
    w = mask.shape[1]
    prof = mask.sum(axis=0).astype(np.float64)
    if w >= 5:
        prof = np.convolve(prof, np.ones(3) / 3, mode="same")
    cuts = [0]
    for j in range(1, k):
        centre = j * w / k
        lo, hi = int(max(centre - 0.3 * w / k, cuts[-1] + 1)), int(min(centre + 0.3 * w / k, w - 1))
        cut = int(lo + np.argmin(prof[lo : hi + 1])) if hi >= lo else int(round(centre))
        cuts.append(cut)
    cuts.append(w)
    return [(cuts[i], cuts[i + 1]) for i in range(k) if cuts[i + 1] > cuts[i]]


def _valley_cuts(mask: np.ndarray, c0: int, c1: int, min_width: float, depth: int = 0) -> list[tuple[int, int]]:
    """Column ranges of ``mask[:, c0:c1]`` cut, recursively, where the column profile of the upper
    body (the upper 60% of the blob: feet and shadows of people side by side often touch, their
    heads and shoulders rarely) drops below a third of the peaks on both sides; each part at least
    ``min_width`` columns wide."""
    w = c1 - c0
    if w < 2 * min_width or depth > 3:
        return [(c0, c1)]
    prof = mask[: max(int(0.6 * mask.shape[0]), 1), c0:c1].sum(axis=0).astype(np.float64)
    lo, hi = int(np.ceil(min_width)), int(w - np.ceil(min_width))
    if hi <= lo:
        return [(c0, c1)]
    cut = lo + int(np.argmin(prof[lo:hi]))
    if prof[cut] >= 0.35 * min(float(prof[:cut].max()), float(prof[cut + 1 :].max())):
        return [(c0, c1)]
    return _valley_cuts(mask, c0, c0 + cut, min_width, depth + 1) + _valley_cuts(mask, c0 + cut, c1, min_width, depth + 1)


def _tight(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def person_boxes(
    mask: np.ndarray, cfg: MotionConfig = MotionConfig(), prior: HeightPrior | None = None, scale: float = 1.0
) -> np.ndarray:
    """Person boxes (N, 5: x, y, w, h, score) from a foreground mask, in the mask's pixels times ``scale``.

    The score is the blob's fill (foreground share of its box), capped to [0.3, 0.9].
    """
    import cv2

    m = cv2.medianBlur(mask.astype(np.uint8), 3)  # drops isolated pixels, keeps shapes in place
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, _CLOSE)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    H = mask.shape[0]
    min_h = max(cfg.min_height * H, 4.0)
    out: list[tuple[float, ...]] = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        if h < min_h:
            continue
        blob = np.zeros((h, w), np.uint8)
        cv2.drawContours(blob, [c], -1, 1, thickness=cv2.FILLED, offset=(-x, -y))
        blob = blob.astype(bool) & (m[y : y + h, x : x + w] > 0)
        if blob.sum() < 0.15 * min_h * min_h:
            continue
        parts: list[tuple[np.ndarray, int, int, bool]] = [(blob, x, y, False)]
        if prior is not None:  # people one behind the other: split tall blobs by the expected height
            parts = _split_rows(blob, x, y, prior, scale)
        for sub, sx, sy, with_prior in parts:
            t = _tight(sub)
            if t is None:
                continue
            tx, ty, tw, th = t
            sub = sub[ty : ty + th, tx : tx + tw]
            sx, sy = sx + tx, sy + ty
            if th < min_h:
                continue
            exp_h = prior.height((sy + th) * scale) / scale if (prior is not None and with_prior) else th
            if tw > cfg.max_blob_aspect * th or (with_prior and th < 0.4 * exp_h):
                continue  # a band across the scene (a tape, a shadow edge), or far too low for a person there
            ref_h = max(th, min(exp_h, 1.5 * th))
            k_est = tw / (cfg.person_aspect * ref_h)
            cols = [(0, tw)]
            if k_est >= 1.2:  # wider than one person: cut at deep valleys of the column profile, else evenly
                cols = _valley_cuts(sub, 0, tw, max(2.0, 0.2 * ref_h))
                if len(cols) == 1 and round(k_est) >= 2:
                    cols = _split_columns(sub, int(round(k_est)))
            if len(cols) > 1:  # people side by side are about as tall as each other: else it is one person's stride
                tall = [_tight(sub[:, c0:c1]) for c0, c1 in cols]
                if any(t is None or t[3] < 0.7 * th for t in tall):
                    cols = [(0, tw)]
            for c0, c1 in cols:
                part = _tight(sub[:, c0:c1])
                if part is None:
                    continue
                px, py, pw, ph = part
                if ph < min_h or pw > cfg.max_aspect * ph:
                    continue
                fill = float(sub[py : py + ph, c0 + px : c0 + px + pw].mean())
                if fill < cfg.min_fill:
                    continue
                p = cfg.pad * ph
                bx, by = sx + c0 + px - p, sy + py - p
                out.append((bx * scale, by * scale, (pw + 2 * p) * scale, (ph + 2 * p) * scale, float(np.clip(fill, 0.3, 0.9))))
    out.sort(key=lambda r: -r[3] * r[2])
    return np.asarray(out, np.float64).reshape(-1, 5)


def _split_rows(
    blob: np.ndarray, x: int, y: int, prior: HeightPrior, scale: float
) -> list[tuple[np.ndarray, int, int, bool]]:
    """Split a blob taller than 1.35 expected person heights: (part, x, y, prior applies) per part.

    The bottom part is the person whose feet are the blob's lowest row, as tall as the prior says;
    the rest is one person further away whose feet are hidden (the prior does not apply to it).
    """
    rows = np.flatnonzero(blob.any(1))
    if not len(rows):
        return []
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    exp_h = prior.height((y + bottom) * scale) / scale
    if bottom - top <= 1.35 * exp_h:
        return [(blob[top:bottom], x, y + top, True)]
    cut = max(int(round(bottom - 0.95 * exp_h)), top)
    return [(blob[cut:bottom], x, y + cut, True), (blob[top:cut], x, y + top, False)]


class MotionModel:
    """Background models of one recording (see the module docstring)."""

    def __init__(self, cfg: MotionConfig | None = None) -> None:
        self.cfg = cfg or MotionConfig()
        self.factor = 1
        self.backgrounds: list[np.ndarray] = []
        self.starts: list[int] = []  # first frame position each background serves
        self.threshold = float(self.cfg.min_threshold)
        self.static = False
        self.moving_share = float("nan")
        self.noise = float("nan")
        self.prior: HeightPrior | None = None
        self.max_people = 0  # most person boxes in one sampled frame
        self.size: tuple[int, int] = (0, 0)

    def windows(self, n_frames: int) -> list[tuple[int, np.ndarray]]:
        """(first position, sampled positions) of each background window of a recording."""
        cfg = self.cfg
        if n_frames < cfg.min_frames:
            return []
        n_win = max(int(np.ceil(n_frames / cfg.window)), 1)
        bounds = np.linspace(0, n_frames, n_win + 1).round().astype(int)
        out = []
        for w in range(n_win):
            lo, hi = int(bounds[w]), int(bounds[w + 1])
            out.append((lo, np.unique(np.linspace(lo, hi - 1, min(cfg.samples, hi - lo)).round().astype(int))))
        return out

    def fit(self, read: ReadFn, n_frames: int, width: int, height: int) -> None:
        """Build the backgrounds from ``read(position, factor)`` (RGB at 1/factor size or None).

        The positions read are those of :meth:`windows` (a caller may read them ahead, in parallel).
        """
        cfg = self.cfg
        self.size = (int(width), int(height))
        self.factor = working_factor(width, cfg.target_width)
        self.backgrounds, self.starts, self.static, self.prior = [], [], False, None
        self.max_people = 0
        shares: list[float] = []
        noise: list[float] = []
        feet: list[float] = []
        heights: list[float] = []
        for lo, pick in self.windows(n_frames):
            imgs = [im for im in (read(int(p), self.factor) for p in pick) if im is not None]
            shapes = {im.shape for im in imgs}
            if len(imgs) < 3 or len(shapes) != 1:
                return
            bg = median_image(imgs)
            diffs = [difference(im, bg) for im in imgs]
            noise.append(float(np.median(np.stack([d[::3, ::3] for d in diffs]))))
            thr = max(float(cfg.min_threshold), cfg.noise_k * noise[-1])
            for d in diffs:
                fg = d > thr
                shares.append(float(fg.mean()))
                found = person_boxes(fg, cfg)
                self.max_people = max(self.max_people, len(found))
                for _, by, bw, bh, _ in found:
                    if 1.8 <= bh / max(bw, 1e-6) <= 5.0:
                        feet.append((by + bh) * self.factor)
                        heights.append(bh * self.factor)
            self.backgrounds.append(bg)
            self.starts.append(lo)
        self.noise = float(np.median(noise)) if noise else float("nan")
        self.threshold = max(float(cfg.min_threshold), cfg.noise_k * self.noise) if noise else float(cfg.min_threshold)
        self.moving_share = float(np.median(shares)) if shares else float("nan")
        self.static = bool(shares) and self.moving_share <= cfg.max_moving_share and self.noise <= cfg.max_noise
        if self.static:
            self.prior = fit_height_prior(np.asarray(feet), np.asarray(heights), min_spread=0.15 * height)

    def background_at(self, position: int) -> np.ndarray | None:
        if not self.backgrounds:
            return None
        k = int(np.searchsorted(self.starts, position, side="right")) - 1
        return self.backgrounds[max(k, 0)]

    def foreground(self, position: int, image: np.ndarray) -> np.ndarray | None:
        """Foreground mask (working resolution) of a full-resolution RGB frame, None without a static model."""
        bg = self.background_at(position)
        if not self.static or bg is None:
            return None
        small = shrink(image, self.factor)
        if small.shape != bg.shape:
            return None
        return difference(small, bg) > self.threshold

    def boxes(self, position: int, image: np.ndarray) -> np.ndarray:
        """Person boxes (N, 5) of one frame, in full-resolution pixels."""
        fg = self.foreground(position, image)
        if fg is None:
            return np.zeros((0, 5))
        return person_boxes(fg, self.cfg, self.prior, float(self.factor))

    def describe(self) -> dict:
        return {
            "static": self.static, "factor": self.factor, "threshold": round(self.threshold, 2),
            "moving_share": None if np.isnan(self.moving_share) else round(self.moving_share, 4),
            "noise": None if np.isnan(self.noise) else round(self.noise, 2),
            "backgrounds": len(self.backgrounds), "max_people": self.max_people,
            "height_prior": None if self.prior is None else [round(self.prior.a, 2), round(self.prior.b, 4), self.prior.n],
        }  # fmt: skip

