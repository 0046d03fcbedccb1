"""Person crops from a COCO keypoints export: affine crops, augmentation, Gaussian heatmap targets.

The export contract (``gaitdata.coco.export_coco``): standard COCO person-keypoints JSON, image
``file_name`` relative to an image root (the dataset root by default), per-annotation ``bbox``
(x, y, w, h), ``keypoints`` (x, y, v) x K and, from a teacher, per-joint ``keypoint_scores``.

Crops follow AlphaPose: box -> centre and size, widened or heightened to the input aspect, size
x 1.25, one uniform affine warp (zero border). Flip, scale, rotation and half-body augmentation are
folded into that one affine matrix, so keypoints and pixels can never disagree. Photometric
augmentation (brightness, contrast, saturation, channel shuffle, grayscale) then acts on the crop,
so that a small network cannot learn a subject's clothing colours instead of the body.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gaitdata.errors import GaitdataError
from gaitdata.schema import COCO17, KeypointSchema

# AlphaPose input normalisation: RGB / 255 minus these means, no division by a std
PIXEL_MEAN = (0.406, 0.457, 0.480)
BOX_SCALE = 1.25


@dataclass(frozen=True)
class Instance:
    """One person annotation: paths and numbers only (pixels are read on demand)."""

    image_path: str  # absolute
    image_id: int
    ann_id: int
    bbox: tuple[float, float, float, float]  # x, y, w, h
    keypoints: np.ndarray  # (K, 3) x, y, v
    scores: np.ndarray  # (K,) teacher confidence (1 where the export carries none)
    score: float  # person score
    file_name: str
    video_id: str | None = None  # gaitdata exports name the recording, frame and track of each person
    frame_index: int | None = None
    track_id: int | None = None


@dataclass(frozen=True)
class AugmentConfig:
    # horizontal flip (labels swapped with the schema's flip pairs); None: decided from the data by
    # :func:`scene_flip_prob` (a mirrored side view is only needed when the data lacks that direction)
    flip_prob: float | None = None
    scale_factor: float = 0.15  # scale ~ 1 + clip(N(0, sf), -sf, sf)
    rot_factor: float = 10.0  # degrees, applied with probability rot_prob
    rot_prob: float = 0.6
    half_body_prob: float = 0.1
    half_body_min_joints: int = 8
    color_jitter: float = 0.3  # brightness, contrast and saturation factors drawn from [1 - j, 1 + j]
    channel_shuffle_prob: float = 0.2  # permute R, G, B (clothing colour must not identify a joint)
    grayscale_prob: float = 0.1


def scene_flip_prob(instances: list[Instance], schema: KeypointSchema = COCO17, default: float = 0.5) -> tuple[float, str]:
    """The flip probability that respects the scene, and why.

    A mirrored side view is a person walking the other way, with left and right exchanged. When the
    training data already shows people walking both ways in side views, mirrors add nothing the
    scene needs and blur what tells the legs apart (measured on held-out synthetic subjects: flips
    halved the students' side-view angle correlation): no flips. When side views go one way only,
    mirrors supply the other direction (``default``); without side views, ``default`` as usual.
    """
    from gaitdata.student.consistency import side_view_facing

    tracks: dict[tuple[str, int], list[Instance]] = {}
    for it in instances:
        if it.video_id is not None and it.frame_index is not None:
            tracks.setdefault((it.video_id, -1 if it.track_id is None else it.track_id), []).append(it)
    facings = set()
    for rows in tracks.values():
        if len(rows) < 3:
            continue
        kp = np.stack([r.keypoints for r in rows]).astype(np.float64)
        kp[..., 2] = np.where(kp[..., 2] > 0, np.stack([r.scores for r in rows]), 0.0)
        f = side_view_facing(kp, np.array([r.bbox[3] for r in rows]), schema)
        if f:
            facings.add(f)
    if facings == {1, -1}:
        return 0.0, "side views walk both ways: no mirrors needed"
    if facings:
        return default, "side views walk one way only: mirrors supply the other direction"
    return default, "no side views"


def color_params(rng: np.random.Generator, aug: AugmentConfig) -> dict[str, Any]:
    j = aug.color_jitter
    return {
        "b": rng.uniform(1 - j, 1 + j),
        "c": rng.uniform(1 - j, 1 + j),
        "s": rng.uniform(1 - j, 1 + j),
        "perm": rng.permutation(3) if rng.random() < aug.channel_shuffle_prob else None,
        "gray": bool(rng.random() < aug.grayscale_prob),
    }


def apply_color(crop: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """Photometric augmentation of a uint8 RGB crop (same parameters for student and teacher crops)."""
    x = crop.astype(np.float32)
    gray = x.mean(-1, keepdims=True)
    x = gray if p["gray"] else (x - gray) * p["s"] + gray
    x = np.broadcast_to(x, crop.shape)
    m = x.mean()
    x = ((x - m) * p["c"] + m) * p["b"]
    if p["perm"] is not None:
        x = x[..., p["perm"]]
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# COCO loading


def resolve_image_root(coco_file: Path, data: dict, image_root: str | Path | None) -> Path:
    """``image_root`` when given, else the file's ``info.image_root`` (relative to the JSON's folder),
    else the dataset root the export lives in (``<root>/exports/coco/...``)."""
    if image_root is not None:
        return Path(image_root)
    info = data.get("info") or {}
    if info.get("image_root") is not None:
        return (coco_file.parent / str(info["image_root"])).resolve()
    for parent in coco_file.resolve().parents:
        if (parent / "dataset.json").is_file():
            return parent
    raise GaitdataError(
        f"{coco_file}: cannot tell where its images are (no info.image_root, no dataset root above it); "
        f"pass --image-root"
    )


def load_coco_instances(
    coco_file: str | Path,
    image_root: str | Path | None,
    schema: KeypointSchema = COCO17,
    *,
    min_visible: int = 1,
    require: bool = True,
) -> tuple[list[Instance], dict]:
    """Read person instances with at least ``min_visible`` labelled joints from a COCO keypoints file."""
    coco_file = Path(coco_file)
    if not coco_file.is_file():
        raise FileNotFoundError(
            f"COCO export {coco_file} not found; create it with: gaitdata export coco ROOT --labels SET --split NAME"
        )
    try:
        data = json.loads(coco_file.read_text())
    except json.JSONDecodeError as exc:
        raise GaitdataError(f"{coco_file} is not valid JSON ({exc}); re-run gaitdata export") from exc
    for key in ("images", "annotations"):
        if key not in data:
            raise GaitdataError(
                f"{coco_file} has no {key!r} list: not a COCO keypoints file; re-run gaitdata export"
            )
    k = schema.num_keypoints
    cats = data.get("categories") or []
    for c in cats:
        names = c.get("keypoints")
        if names and len(names) != k:
            raise GaitdataError(
                f"{coco_file}: category {c.get('name')!r} has {len(names)} keypoints but the model expects "
                f"{k} ({schema.name}); export with the {schema.name} schema or train a model with "
                f"num_keypoints={len(names)}"
            )
    images = {int(im["id"]): im for im in data["images"]}
    root = resolve_image_root(coco_file, data, image_root)
    out: list[Instance] = []
    for ann in data["annotations"]:
        kp = np.asarray(ann.get("keypoints") or [], dtype=np.float64)
        if kp.size != 3 * k:
            raise GaitdataError(
                f"{coco_file}: annotation {ann.get('id')} has {kp.size // 3} keypoints, the model expects {k} "
                f"({schema.name}); export with the matching schema"
            )
        kp = kp.reshape(k, 3)
        if int((kp[:, 2] > 0).sum()) < min_visible or ann.get("iscrowd", 0):
            continue
        bbox = ann.get("bbox")
        if not bbox or len(bbox) != 4 or bbox[2] <= 1 or bbox[3] <= 1:
            continue
        im = images.get(int(ann["image_id"]))
        if im is None:
            raise GaitdataError(
                f"{coco_file}: annotation {ann.get('id')} refers to missing image {ann['image_id']}"
            )
        scores = np.asarray(ann.get("keypoint_scores") or np.where(kp[:, 2] > 0, 1.0, 0.0), dtype=np.float64)
        if scores.size != k:
            raise GaitdataError(
                f"{coco_file}: annotation {ann.get('id')} has {scores.size} keypoint_scores, expected {k}"
            )
        track = ann.get("track_id")
        out.append(
            Instance(
                image_path=str(root / im["file_name"]),
                image_id=int(im["id"]),
                ann_id=int(ann.get("id", len(out))),
                bbox=tuple(float(v) for v in bbox),  # type: ignore[arg-type]
                keypoints=kp.astype(np.float32),
                scores=np.clip(scores, 0.0, 1.0).astype(np.float32),
                score=float(ann.get("score", 1.0)),
                file_name=str(im["file_name"]),
                video_id=None if im.get("video_id") is None else str(im["video_id"]),
                frame_index=None if im.get("frame_index") is None else int(im["frame_index"]),
                track_id=None if track is None else int(track),
            )
        )
    if require and not out:
        raise GaitdataError(
            f"{coco_file} has no usable person annotations ({len(data['annotations'])} annotations, "
            f"{len(data['images'])} images); label the frames (gaitdata label) and re-export"
        )
    return out, data


def consistent_instances(
    instances: list[Instance], schema: KeypointSchema = COCO17, cfg: Any = None
) -> tuple[list[Instance], int]:
    """Training labels with left/right kept consistent along each (recording, track).

    Uses :func:`gaitdata.student.consistency.consistent_persons` on the instances that name their
    recording and frame (gaitdata exports do); persons without a track id form one track per
    recording when each frame has one of them. Returns the instances (same order) and how many had
    a limb chain swapped.
    """
    from gaitdata.student.consistency import ConsistencyConfig, consistent_persons, limb_chains

    cfg = cfg or ConsistencyConfig(smooth_sigma=0.0)  # training targets keep their own positions
    idx = [i for i, it in enumerate(instances) if it.video_id is not None and it.frame_index is not None]
    if not idx:
        return list(instances), 0
    vids = np.array([instances[i].video_id for i in idx])
    frames = np.array([instances[i].frame_index for i in idx], np.int64)
    tracks = np.array([-1 if instances[i].track_id is None else instances[i].track_id for i in idx])
    kp = np.stack([instances[i].keypoints for i in idx]).astype(np.float64)
    conf = np.where(kp[..., 2] > 0, np.stack([instances[i].scores for i in idx]), 0.0)
    scale = np.array([instances[i].bbox[3] for i in idx], np.float64)
    fixed, flags = consistent_persons(vids, tracks, frames, np.concatenate([kp[..., :2], conf[..., None]], -1),
                                      scale, schema, cfg)  # fmt: skip
    out = list(instances)
    perm_src = np.arange(schema.num_keypoints)
    n = 0
    for row, i in enumerate(idx):
        if not flags[row].any():
            continue
        n += 1
        # carry visibility and confidence with the swapped joints: find each joint's source
        src = perm_src.copy()
        for c, chain in enumerate(limb_chains(schema)):
            if flags[row, c]:
                for a, b in chain:
                    src[a], src[b] = b, a
        it = instances[i]
        new_kp = it.keypoints[src].copy()
        new_kp[:, :2] = fixed[row, :, :2]
        out[i] = replace(it, keypoints=new_kp.astype(np.float32), scores=it.scores[src].copy())
    return out, n


# ------------------------------------------------------------------------------------------------
# geometry


def box_to_center_scale(
    bbox: tuple[float, float, float, float] | np.ndarray, aspect: float, scale: float = BOX_SCALE
) -> tuple[np.ndarray, np.ndarray]:
    """AlphaPose box -> centre and (w, h): fixed to ``aspect`` = w / h, enlarged x ``scale`` (1.25)."""
    x, y, w, h = (float(v) for v in bbox)
    c = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float64)
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return c, np.array([w, h], dtype=np.float64) * scale


def affine_matrix(
    center: np.ndarray, size: np.ndarray, rot_deg: float, out_hw: tuple[int, int], flip: bool = False
) -> np.ndarray:
    """2x3 matrix mapping image pixels to crop pixels: the box (centre, size) fills the crop,
    rotated by ``rot_deg`` (counter-clockwise) and optionally mirrored."""
    oh, ow = out_hw
    sx = ow / size[0]
    sy = oh / size[1]
    a = math.radians(rot_deg)
    cos, sin = math.cos(a), math.sin(a)
    # crop = S R (img - c) + out_c
    r = np.array([[cos, sin], [-sin, cos]])
    m = np.diag([sx, sy]) @ r
    t = np.array([ow * 0.5, oh * 0.5]) - m @ center
    mat = np.concatenate([m, t[:, None]], axis=1)
    if flip:
        f = np.array([[-1.0, 0.0, ow - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        mat = (f @ np.vstack([mat, [0, 0, 1]]))[:2]
    return mat


def invert_affine(mat: np.ndarray) -> np.ndarray:
    full = np.vstack([mat, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def apply_affine(points: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """(..., 2) points through a 2x3 (or batched (..., 2, 3)) matrix."""
    pts = np.asarray(points, dtype=np.float64)
    return (
        pts @ mat[..., :2].swapaxes(-1, -2) + mat[..., None, :, 2]
        if mat.ndim == 3
        else pts @ mat[:, :2].T + mat[:, 2]
    )


def warp(image: np.ndarray, mat: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    return cv2.warpAffine(
        image,
        mat,
        (out_hw[1], out_hw[0]),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def normalize(
    crop: np.ndarray, mean: tuple[float, ...] = PIXEL_MEAN, std: tuple[float, ...] = (1.0, 1.0, 1.0),
    pixel_scale: float = 1.0 / 255.0,
) -> np.ndarray:  # fmt: skip
    """uint8 RGB (H, W, 3) -> float32 (3, H, W): (x * pixel_scale - mean) / std (default: /255 minus
    the AlphaPose means, no std)."""
    x = crop.astype(np.float32) * np.float32(pixel_scale)
    x -= np.asarray(mean, dtype=np.float32)
    x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def gaussian_heatmaps(
    points: np.ndarray, weights: np.ndarray, hm_hw: tuple[int, int], sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) heatmap-pixel coordinates -> (K, H, W) Gaussians (peak 1) and the weights, zeroed for
    joints whose peak falls outside the map (more than 3 sigma off)."""
    h, w = hm_hw
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    k = len(points)
    out = np.zeros((k, h, w), dtype=np.float32)
    wt = weights.astype(np.float32).copy()
    for j in range(k):
        x, y = points[j]
        if wt[j] <= 0 or not (np.isfinite(x) and np.isfinite(y)):
            wt[j] = 0.0
            continue
        if x < -3 * sigma or y < -3 * sigma or x > w - 1 + 3 * sigma or y > h - 1 + 3 * sigma:
            wt[j] = 0.0
            continue
        out[j] = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma * sigma))
    return out, wt


def decode_heatmaps(heatmaps: np.ndarray, refine: str = "gaussian") -> tuple[np.ndarray, np.ndarray]:
    """(N, K, H, W) -> (N, K, 2) heatmap coordinates and (N, K) peak values.

    ``refine="quarter"``: argmax + a quarter pixel towards the larger neighbour (AlphaPose).
    ``refine="gaussian"`` (default): argmax + the sub-pixel peak of a parabola through the log of
    the (Gaussian-smoothed) map at the peak and its two neighbours, per axis; exact for Gaussian
    peaks such as the training targets (in the spirit of DARK's Taylor step), it matters when a
    heatmap pixel covers many image pixels (small inputs, gait angles).
    """
    if refine not in ("gaussian", "quarter"):
        raise ValueError(f"refine must be 'gaussian' or 'quarter', got {refine!r}")
    hm = np.asarray(heatmaps, dtype=np.float32)
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, -1)
    idx = flat.argmax(-1)
    maxv = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    px = (idx % w).astype(np.int64)
    py = (idx // w).astype(np.int64)
    coords = np.stack([px, py], -1).astype(np.float32)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    inner_x = (px > 0) & (px < w - 1)
    inner_y = (py > 0) & (py < h - 1)
    xr, xl = np.clip(px + 1, 0, w - 1), np.clip(px - 1, 0, w - 1)
    yd, yu = np.clip(py + 1, 0, h - 1), np.clip(py - 1, 0, h - 1)
    if refine == "quarter":
        dx = hm[ni, ki, py, xr] - hm[ni, ki, py, xl]
        dy = hm[ni, ki, yd, px] - hm[ni, ki, yu, px]
        coords[..., 0] += np.where(inner_x, 0.25 * np.sign(dx), 0.0)
        coords[..., 1] += np.where(inner_y, 0.25 * np.sign(dy), 0.0)
        return coords, maxv
    sigma = max(1.0, 2.0 * w / 48.0)
    ksize = 2 * int(math.ceil(2 * sigma)) + 1
    sm = np.empty_like(hm)
    for i in range(n):
        for j in range(k):
            sm[i, j] = cv2.GaussianBlur(hm[i, j], (ksize, ksize), sigma, borderType=cv2.BORDER_CONSTANT)
    peak = np.maximum(sm[ni, ki, py, px], 1e-10)
    lg = np.log(np.maximum(sm, 1e-10 * peak[..., None, None]))
    c = lg[ni, ki, py, px]
    for axis, (a, b, inner) in enumerate(((lg[ni, ki, py, xl], lg[ni, ki, py, xr], inner_x),
                                          (lg[ni, ki, yu, px], lg[ni, ki, yd, px], inner_y))):  # fmt: skip
        den = a - 2 * c + b
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.where(den < 0, 0.5 * (a - b) / den, 0.0)
        off = np.clip(np.nan_to_num(off), -0.5, 0.5)
        coords[..., axis] += np.where(inner, off, 0.0).astype(np.float32)
    return coords, maxv


def heatmaps_to_image(
    heatmaps: np.ndarray, mats: np.ndarray, input_hw: tuple[int, int], refine: str = "gaussian"
) -> tuple[np.ndarray, np.ndarray]:
    """Decode (N, K, h, w) heatmaps of crops made with ``mats`` (N, 2, 3) back to image pixels."""
    coords, maxv = decode_heatmaps(heatmaps, refine)
    stride_x = input_hw[1] / heatmaps.shape[-1]
    stride_y = input_hw[0] / heatmaps.shape[-2]
    crop = coords.astype(np.float64) * np.array([stride_x, stride_y])
    inv = np.stack([invert_affine(m) for m in mats])
    return apply_affine(crop, inv), maxv


# ------------------------------------------------------------------------------------------------
# the dataset


def _half_body(
    kp: np.ndarray, vis: np.ndarray, schema: KeypointSchema, rng: np.random.Generator, aspect: float
):
    """Centre and size of the upper or lower half of the body (joints with v > 0), or None."""
    names = schema.keypoints
    upper = [
        i
        for i, n in enumerate(names)
        if not any(s in n for s in ("hip", "knee", "ankle", "heel", "toe", "foot"))
    ]
    lower = [i for i in range(len(names)) if i not in upper]
    up = [i for i in upper if vis[i] > 0]
    lo = [i for i in lower if vis[i] > 0]
    sel = up if (rng.random() < 0.5 and len(up) > 2) else lo
    if len(sel) < 2:
        sel = up if len(up) >= 2 else lo
    if len(sel) < 2:
        return None
    pts = kp[sel, :2]
    lo_xy, hi_xy = pts.min(0), pts.max(0)
    w, h = hi_xy - lo_xy
    c = (lo_xy + hi_xy) / 2
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return c, np.array([w, h]) * 1.5


class CropDataset:
    """A torch-style map dataset of person crops with heatmap targets.

    Each item is a dict: ``image`` (3, H, W) float32, ``target`` (K, h, w), ``weight`` (K,) (teacher
    confidence x labelled x inside the crop), ``mat`` (2, 3) image->crop affine, ``keypoints`` (K, 3)
    image coordinates + v, ``bbox`` (4,), ``index``; and ``teacher_image`` when a teacher input size
    is set (the same region at the teacher's resolution, for distillation).

    Augmentation draws from ``numpy.random.default_rng((seed, epoch, index))``, so an item is the same
    whatever the worker or the order: CPU runs repeat exactly.
    """

    def __init__(
        self,
        instances: list[Instance],
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        schema: KeypointSchema = COCO17,
        *,
        train: bool = False,
        augment: AugmentConfig | None = None,
        sigma: float | None = None,
        seed: int = 0,
        teacher_input_size: tuple[int, int] | None = None,
        image_cache: bool = True,
    ) -> None:
        self.instances = instances
        self.input_size = tuple(input_size)
        self.heatmap_size = tuple(heatmap_size)
        self.schema = schema
        self.train = train
        self.aug = augment or AugmentConfig()
        if self.train and self.aug.flip_prob is None:
            self.aug = replace(self.aug, flip_prob=scene_flip_prob(instances, schema)[0])
        self.sigma = sigma if sigma is not None else max(1.0, 2.0 * self.heatmap_size[1] / 48.0)
        self.seed = seed
        self.epoch = 0
        self.teacher_input_size = tuple(teacher_input_size) if teacher_input_size else None
        self.flip_perm = schema.flip_permutation()
        self._cache: dict[str, np.ndarray] | None = {} if image_cache else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.instances)

    def read_image(self, path: str) -> np.ndarray:
        if self._cache is not None and path in self._cache:
            return self._cache[path]
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(
                f"cannot read image {path}; the COCO file_name is relative to the image root (the dataset "
                f"root by default): pass the right --image-root"
            )
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self._cache is not None and len(self._cache) < 256:
            self._cache[path] = rgb
        return rgb

    def crop_params(self, idx: int) -> tuple[np.ndarray, np.ndarray, float, bool]:
        inst = self.instances[idx]
        aspect = self.input_size[1] / self.input_size[0]
        c, s = box_to_center_scale(inst.bbox, aspect)
        rot, flip = 0.0, False
        if self.train:
            rng = np.random.default_rng((self.seed, self.epoch, idx))
            a = self.aug
            vis = inst.keypoints[:, 2]
            if rng.random() < a.half_body_prob and (vis > 0).sum() > a.half_body_min_joints:
                hb = _half_body(inst.keypoints, vis, self.schema, rng, aspect)
                if hb is not None:
                    c, s = hb
            sf = a.scale_factor
            s = s * float(np.clip(rng.normal() * sf + 1, 1 - sf, 1 + sf))
            if rng.random() < a.rot_prob:
                rot = float(np.clip(rng.normal() * a.rot_factor, -2 * a.rot_factor, 2 * a.rot_factor))
            flip = bool(rng.random() < a.flip_prob)
        return c, s, rot, flip

    def __getitem__(self, idx: int) -> dict[str, Any]:
        inst = self.instances[idx]
        img = self.read_image(inst.image_path)
        c, s, rot, flip = self.crop_params(idx)
        mat = affine_matrix(c, s, rot, self.input_size, flip)
        crop = warp(img, mat, self.input_size)
        colour = None
        if self.train and (
            self.aug.color_jitter > 0 or self.aug.channel_shuffle_prob > 0 or self.aug.grayscale_prob > 0
        ):
            colour = color_params(np.random.default_rng((self.seed, self.epoch, idx, 1)), self.aug)
            crop = apply_color(crop, colour)
        kp = inst.keypoints.copy()
        pts = apply_affine(kp[:, :2], mat)
        weight = np.where(kp[:, 2] > 0, inst.scores, 0.0).astype(np.float32)
        if flip:
            pts = pts[self.flip_perm]
            weight = weight[self.flip_perm]
        hm_scale = np.array(
            [self.heatmap_size[1] / self.input_size[1], self.heatmap_size[0] / self.input_size[0]]
        )
        target, weight = gaussian_heatmaps(pts * hm_scale, weight, self.heatmap_size, self.sigma)
        item: dict[str, Any] = {
            "image": normalize(crop),
            "target": target,
            "weight": weight,
            "mat": mat.astype(np.float64),
            "keypoints": kp,
            "bbox": np.asarray(inst.bbox, dtype=np.float64),
            "index": idx,
        }
        if self.teacher_input_size is not None:
            tmat = affine_matrix(c, s, rot, self.teacher_input_size, flip)
            tcrop = warp(img, tmat, self.teacher_input_size)
            item["teacher_image"] = normalize(apply_color(tcrop, colour) if colour is not None else tcrop)
        return item


def crops_for_boxes(
    image: np.ndarray, boxes: np.ndarray, input_size: tuple[int, int], flip: bool = False, *,
    aspect: float | None = None, box_scale: float = BOX_SCALE, mean: tuple[float, ...] = PIXEL_MEAN,
    std: tuple[float, ...] = (1.0, 1.0, 1.0), pixel_scale: float = 1.0 / 255.0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Inference crops: (N, 4) boxes -> (N, 3, H, W) normalised crops and (N, 2, 3) matrices
    (mirrored crops with ``flip``; their matrices include the mirror). The keyword arguments are
    the preprocessing a model's metadata names (defaults: this package's students)."""
    aspect = aspect if aspect is not None else input_size[1] / input_size[0]
    crops, mats = [], []
    for b in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        c, s = box_to_center_scale(b, aspect, box_scale)
        m = affine_matrix(c, s, 0.0, input_size, flip)
        crops.append(normalize(warp(image, m, input_size), mean, std, pixel_scale))
        mats.append(m)
    if not crops:
        return np.zeros((0, 3, *input_size), np.float32), np.zeros((0, 2, 3))
    return np.stack(crops), np.stack(mats)
