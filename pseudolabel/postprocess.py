"""Post-processing of one recording's raw teacher output; every setting is recorded with the label set.

Steps, in order (:func:`postprocess_recording`):

1. **Tracks**: poses are linked frame to frame (box IoU with the track's box predicted at constant
   velocity, or centre distance relative to the box height; a change of height is penalised),
   allowing short gaps; ``track_id`` numbers tracks in order of appearance.
2. **Temporal smoothing** (optional, off by default): a One-Euro filter per track, joint and axis,
   over the joints with visibility > 0.
3. **COCO visibility** from the per-joint confidence: ``v = 0`` below ``vis_thresholds[0]``,
   ``1`` below ``vis_thresholds[1]``, else ``2``; joints with ``v == 0`` keep their coordinates.
4. **Subject selection** over the whole recording: each track is scored by coverage (share of the
   recording's frames), size (median box height / image height), gait motion (travel of the box
   centre, change of scale, swing of the ankles; saturating, so any walker counts fully and a
   person standing still counts 0.3), mean person score and whether its median depth lies inside
   ``depth_band_m``; the best track is the gait subject, plus tracks that never
   overlap it in time and score at least half as well per frame. Other people keep their rows
   with ``is_subject = False``.
5. **QA flags** per pose (strings in ``qa_flags``):
   ``background:<joint>`` a visible joint whose registered depth equals the recording's background
   depth (it lies on the wall/floor, not on the person); ``lr_swap`` the left/right joints swapped
   relative to the track's previous unswapped frame; ``bone:<a>-<b>`` a limb length (relative to
   the torso) far from the track's median; ``jitter:<joint>`` a one-frame spike of a joint
   (second difference above ``qa_jitter`` box heights).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from gaitdata.geometry import iou_matrix, match_greedy
from gaitdata.labels import decode_keypoints, encode_keypoints
from gaitdata.schema import COCO17, KeypointSchema

# limbs checked for length: upper arms, forearms, thighs, shanks (COCO-17 indices)
LIMBS: tuple[tuple[int, int], ...] = ((5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16))
# left/right pairs compared for swaps: shoulders, elbows, wrists, hips, knees, ankles
SWAP_PAIRS: tuple[tuple[int, int], ...] = ((5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
TORSO: tuple[int, ...] = (5, 6, 11, 12)
_SWAP_A, _SWAP_B = (np.array(side) for side in zip(*SWAP_PAIRS, strict=True))
# gait motion (box travel / height + log-scale change + ankle swing) at which a track counts as walking
MOTION_SATURATION = 0.25


@dataclass(frozen=True)
class PostprocessConfig:
    vis_thresholds: tuple[float, float] = (0.2, 0.5)
    # tracking
    track_iou: float = 0.3
    track_centre_dist: float = 0.5  # centre distance / box height that still links two poses
    track_max_gap: int = 5  # frames a track may miss
    # subject selection
    select_subject: bool = True
    depth_band_m: tuple[float, float] = (0.3, 8.0)
    # smoothing (None or "one_euro")
    smooth: str | None = None
    one_euro_min_cutoff: float = 1.0  # Hz
    one_euro_beta: float = 0.3
    one_euro_d_cutoff: float = 1.0  # Hz
    # QA
    qa: bool = True
    qa_background_tol_m: float = 0.08  # |joint depth - background depth| below this: on background
    qa_background_rel: float = 0.02  # ... or below this fraction of the background depth
    qa_bone_ratio: float = 1.6  # bone/median above this (or below its inverse): flagged
    qa_swap_ratio: float = 0.5  # swapped-assignment cost below this share of the direct cost: swap
    qa_swap_min_shift: float = 0.05  # ... and the direct cost per pair above this share of the box height
    qa_swap_max_gap: int = 3  # frames back a swap check may look for its reference
    qa_jitter: float = 0.12  # second difference above this share of the box height: jitter

    def __post_init__(self) -> None:
        lo, hi = self.vis_thresholds
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"vis_thresholds must satisfy 0 <= low <= high <= 1, got {self.vis_thresholds}")
        if self.smooth not in (None, "one_euro"):
            raise ValueError(f"smooth must be None or 'one_euro', got {self.smooth!r}")
        object.__setattr__(self, "vis_thresholds", (float(lo), float(hi)))
        object.__setattr__(self, "depth_band_m", tuple(float(v) for v in self.depth_band_m))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["vis_thresholds"] = list(self.vis_thresholds)
        d["depth_band_m"] = list(self.depth_band_m)
        return d


# ---- visibility ---------------------------------------------------------------------------------
def visibility_from_confidence(conf: np.ndarray, thresholds: tuple[float, float] = (0.2, 0.5)) -> np.ndarray:
    """COCO visibility 0/1/2 from confidences: < t0 -> 0, < t1 -> 1, else 2 (int8, same shape)."""
    c = np.nan_to_num(np.asarray(conf, dtype=np.float64), nan=0.0)
    lo, hi = thresholds
    return np.where(c < lo, 0, np.where(c < hi, 1, 2)).astype(np.int8)


# ---- boxes and tracks ---------------------------------------------------------------------------
def assign_tracks(frame_index: np.ndarray, boxes: np.ndarray, cfg: PostprocessConfig = PostprocessConfig()) -> np.ndarray:
    """Greedy frame-to-frame association; returns a track id (0, 1, ...) per pose, in order of appearance.

    ``frame_index`` (N,) and ``boxes`` (N, 4) list the poses of one recording (no-person rows excluded).
    Each track's box is predicted at the new frame from its last two boxes (constant velocity);
    a pose links to the track whose prediction it overlaps best (IoU) or whose centre is close
    (relative to the box height), penalised by the change of height, so that two people who cross
    keep their tracks when their sizes differ.
    """
    frame_index = np.asarray(frame_index, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    tracks = np.full(len(frame_index), -1, dtype=np.int64)
    last_box: list[np.ndarray] = []
    last_frame: list[int] = []
    velocity: list[np.ndarray] = []  # box change per frame (x, y, w, h)
    for f in np.unique(frame_index):
        idx = np.flatnonzero(frame_index == f)
        active = [t for t in range(len(last_box)) if f - last_frame[t] <= cfg.track_max_gap + 1 and last_frame[t] < f]
        used_det: set[int] = set()
        if active:
            tb = np.stack([last_box[t] + velocity[t] * (f - last_frame[t]) for t in active])
            tb[:, 2:] = np.maximum(tb[:, 2:], 1.0)
            iou = iou_matrix(boxes[idx], tb)
            c_det = boxes[idx, :2] + boxes[idx, 2:] / 2
            c_tr = tb[:, :2] + tb[:, 2:] / 2
            dist = np.linalg.norm(c_det[:, None] - c_tr[None], axis=-1)
            scale = np.maximum(np.maximum(boxes[idx, 3][:, None], tb[:, 3][None]), 1.0)
            nd = dist / scale
            size = np.abs(np.log(np.maximum(boxes[idx, 3], 1.0)[:, None] / tb[:, 3][None]))
            allowed = (iou >= cfg.track_iou) | (nd <= cfg.track_centre_dist)
            for i, j in match_greedy(iou - nd - 2.0 * size, allowed):
                used_det.add(i)
                tracks[idx[i]] = active[j]
        for i in range(len(idx)):
            if i not in used_det:
                last_box.append(boxes[idx[i]])
                last_frame.append(int(f))
                velocity.append(np.zeros(4))
                tracks[idx[i]] = len(last_box) - 1
            else:
                t = int(tracks[idx[i]])
                step = (boxes[idx[i]] - last_box[t]) / max(int(f) - last_frame[t], 1)
                velocity[t] = 0.5 * velocity[t] + 0.5 * step
                last_box[t] = boxes[idx[i]]
                last_frame[t] = int(f)
    return tracks


def track_features(
    frame_index: np.ndarray,
    boxes: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    depth_m: np.ndarray,
    tracks: np.ndarray,
    n_frames: int,
    image_height: float,
    cfg: PostprocessConfig = PostprocessConfig(),
) -> pd.DataFrame:
    """One row per track: coverage, size, motion, score, depth, in_band, per_frame and total subject score."""
    rows = []
    for t in np.unique(tracks):
        m = tracks == t
        fi, bx, kp = frame_index[m], boxes[m], keypoints[m]
        h = np.maximum(bx[:, 3], 1.0)
        hmed = float(np.median(h))
        coverage = len(np.unique(fi)) / max(n_frames, 1)
        size = hmed / max(image_height, 1.0)
        centre = bx[:, :2] + bx[:, 2:] / 2
        travel = float(np.ptp(centre[:, 0]) + np.ptp(centre[:, 1])) / hmed if len(fi) > 1 else 0.0
        scale_change = float(np.ptp(np.log(h))) if len(fi) > 1 else 0.0
        ok = (kp[:, 15, 2] > cfg.vis_thresholds[0]) & (kp[:, 16, 2] > cfg.vis_thresholds[0])
        swing = float(np.std((kp[ok, 15, 0] - kp[ok, 16, 0]) / h[ok])) if ok.sum() > 2 else 0.0
        motion = float(min((travel + scale_change + 4 * swing) / MOTION_SATURATION, 1.0))
        d = depth_m[m]
        d = d[np.isfinite(d)]
        depth = float(np.median(d)) if len(d) else float("nan")
        in_band = bool(np.isnan(depth) or cfg.depth_band_m[0] <= depth <= cfg.depth_band_m[1])
        score = float(np.mean(scores[m]))
        per_frame = size * (0.3 + 0.7 * motion) * score * (1.0 if in_band else 0.1)
        rows.append(
            {
                "track_id": int(t), "n": int(m.sum()), "first": int(fi.min()), "last": int(fi.max()),
                "coverage": coverage, "size": size, "motion": motion, "score": score, "depth_m": depth,
                "in_band": in_band, "per_frame": per_frame, "total": per_frame * coverage,
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def select_subject(features: pd.DataFrame, frame_index: np.ndarray, tracks: np.ndarray) -> set[int]:
    """Track ids of the gait subject: the best track plus non-overlapping tracks at least half as good."""
    if features.empty:
        return set()
    order = features.sort_values(["total", "track_id"], ascending=[False, True])
    best = order.iloc[0]
    chosen = {int(best.track_id)}
    taken = set(frame_index[tracks == int(best.track_id)].tolist())
    for r in order.iloc[1:].itertuples(index=False):
        frames = set(frame_index[tracks == r.track_id].tolist())
        if r.per_frame >= 0.5 * best.per_frame and not (frames & taken):
            chosen.add(int(r.track_id))
            taken |= frames
    return chosen


# ---- smoothing ----------------------------------------------------------------------------------
def one_euro(t: np.ndarray, x: np.ndarray, min_cutoff: float = 1.0, beta: float = 0.3, d_cutoff: float = 1.0) -> np.ndarray:
    """One-Euro filter (Casiez et al. 2012) of samples ``x`` (N, D) at times ``t`` (N,) seconds."""
    t = np.asarray(t, np.float64)
    x = np.asarray(x, np.float64).reshape(len(t), -1)
    out = x.copy()
    if len(t) < 2:
        return out

    def alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    dx_prev = np.zeros(x.shape[1])
    for i in range(1, len(t)):
        dt = max(t[i] - t[i - 1], 1e-6)
        dx = (x[i] - out[i - 1]) / dt
        a_d = alpha(d_cutoff, dt)
        dx_hat = a_d * dx + (1 - a_d) * dx_prev
        cutoff = min_cutoff + beta * np.abs(dx_hat)
        tau = 1.0 / (2 * np.pi * cutoff)
        a = 1.0 / (1.0 + tau / dt)
        out[i] = a * x[i] + (1 - a) * out[i - 1]
        dx_prev = dx_hat
    return out


def smooth_keypoints(
    frame_index: np.ndarray, keypoints: np.ndarray, tracks: np.ndarray, fps: float, cfg: PostprocessConfig
) -> np.ndarray:
    """Smooth x, y of confident joints per track (One-Euro); confidences are unchanged."""
    out = keypoints.copy()
    fps = fps if fps and np.isfinite(fps) and fps > 0 else 30.0
    for t in np.unique(tracks):
        rows = np.flatnonzero(tracks == t)
        rows = rows[np.argsort(frame_index[rows], kind="stable")]
        for j in range(keypoints.shape[1]):
            ok = rows[keypoints[rows, j, 2] >= cfg.vis_thresholds[0]]
            if len(ok) < 2:
                continue
            out[ok, j, :2] = one_euro(
                frame_index[ok] / fps, keypoints[ok, j, :2],
                cfg.one_euro_min_cutoff, cfg.one_euro_beta, cfg.one_euro_d_cutoff,
            )  # fmt: skip
    return out


# ---- QA flags -----------------------------------------------------------------------------------
def depth_at(depth: np.ndarray, x: float, y: float, radius: int = 2, reduce: str = "median") -> float:
    """Median (or ``min``: nearest) of the valid (non-zero) depth values around (x, y); NaN if none."""
    h, w = depth.shape[:2]
    xi, yi = int(np.floor(x)), int(np.floor(y))
    if not (0 <= xi < w and 0 <= yi < h):
        return float("nan")
    win = depth[max(yi - radius, 0) : yi + radius + 1, max(xi - radius, 0) : xi + radius + 1]
    v = win[win > 0]
    if not v.size:
        return float("nan")
    return float(v.min()) if reduce == "min" else float(np.median(v))


def depth_windows(depth: np.ndarray, xy: np.ndarray, radius: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Median and minimum of the valid depth values in the window around each point (N, 2); NaN where none.

    The same values as :func:`depth_at` per point (windows cut at the image border, NaN for points
    outside the image), for all points at once.
    """
    h, w = depth.shape[:2]
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    xi = np.floor(np.nan_to_num(xy[:, 0], nan=-1e9)).astype(np.int64)
    yi = np.floor(np.nan_to_num(xy[:, 1], nan=-1e9)).astype(np.int64)
    off = np.arange(-radius, radius + 1)
    yy = (yi[:, None, None] + off[None, :, None]).repeat(len(off), 2)
    xx = (xi[:, None, None] + off[None, None, :]).repeat(len(off), 1)
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    inside &= ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h))[:, None, None]
    v = depth[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)].astype(np.float64)
    v = np.sort(np.where(inside & (v > 0), v, np.inf).reshape(len(xy), -1), axis=1)  # invalid last
    n = np.isfinite(v).sum(axis=1)
    rows = np.arange(len(xy))
    lo_mid, hi_mid = np.maximum(n - 1, 0) // 2, n // 2
    med = np.where(n > 0, (v[rows, lo_mid] + v[rows, np.minimum(hi_mid, v.shape[1] - 1)]) / 2, np.nan)
    low = np.where(n > 0, v[:, 0], np.nan)
    return med, low


def joint_depths(keypoints: np.ndarray, depth: np.ndarray, depth_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per joint: median and nearest valid depth (metres) in a 5x5 window; NaN where none."""
    kp = np.asarray(keypoints, np.float64)
    d, near = depth_windows(depth, kp[:, :2])
    return d * depth_scale, near * depth_scale


def torso_depth(keypoints: np.ndarray, d: np.ndarray, cfg: PostprocessConfig = PostprocessConfig()) -> float:
    kp = np.asarray(keypoints, np.float64)
    torso = [d[j] for j in TORSO if kp[j, 2] >= cfg.vis_thresholds[0] and np.isfinite(d[j])]
    return float(np.median(torso)) if torso else float("nan")


def background_joints(
    keypoints: np.ndarray,
    near: np.ndarray,
    background: np.ndarray | None,
    depth_scale: float,
    cfg: PostprocessConfig = PostprocessConfig(),
) -> list[int]:
    """Visible joints whose nearest depth around them is within tolerance of the background model.

    Using the nearest depth in a 5x5 window, a joint at the body's silhouette edge is not flagged.
    """
    return background_joints_of_poses(np.asarray(keypoints)[None], np.asarray(near)[None], background, depth_scale, cfg)[0]


def background_joints_of_poses(
    keypoints: np.ndarray,
    near: np.ndarray,
    background: np.ndarray | None,
    depth_scale: float,
    cfg: PostprocessConfig = PostprocessConfig(),
) -> list[list[int]]:
    """:func:`background_joints` of many poses at once: keypoints (N, K, 3), nearest depths (N, K)."""
    kp = np.asarray(keypoints, np.float64)
    if background is None or not len(kp):
        return [[] for _ in range(len(kp))]
    near = np.asarray(near, np.float64).reshape(kp.shape[:2])
    check = (kp[..., 2] >= cfg.vis_thresholds[0]) & np.isfinite(near)
    b = np.full(kp.shape[:2], np.nan)
    if check.any():
        b[check] = depth_windows(background, kp[check][:, :2])[0] * depth_scale
    with np.errstate(invalid="ignore"):
        on_bg = check & np.isfinite(b) & (b - near <= np.maximum(cfg.qa_background_tol_m, cfg.qa_background_rel * b))
    return [np.flatnonzero(row).tolist() for row in on_bg]


def depth_features(
    keypoints: np.ndarray,
    depth: np.ndarray | None,
    background: np.ndarray | None,
    depth_scale: float,
    cfg: PostprocessConfig = PostprocessConfig(),
) -> tuple[float, list[int]]:
    """For one pose: median depth (m) of its torso joints, and the joints lying on the background depth."""
    if depth is None or not depth_scale or not np.isfinite(depth_scale):
        return float("nan"), []
    d, near = joint_depths(keypoints, depth, depth_scale)
    return torso_depth(keypoints, d, cfg), background_joints(keypoints, near, background, depth_scale, cfg)


def _scale(kp: np.ndarray, box_h: float, lo: float) -> float:
    """Torso length (mid-shoulder to mid-hip) when its joints are visible, else a third of the box height."""
    if all(kp[j, 2] >= lo for j in TORSO):
        s = np.linalg.norm((kp[5, :2] + kp[6, :2]) / 2 - (kp[11, :2] + kp[12, :2]) / 2)
        if s > 1:
            return float(s)
    return max(box_h / 3.0, 1.0)


def qa_flags(
    frame_index: np.ndarray,
    keypoints: np.ndarray,
    box_h: np.ndarray,
    tracks: np.ndarray,
    background_joints: list[list[int]] | None = None,
    cfg: PostprocessConfig = PostprocessConfig(),
    schema: KeypointSchema = COCO17,
) -> list[list[str]]:
    """QA flags per pose (see the module docstring). Inputs list the poses of one recording."""
    n = len(frame_index)
    flags: list[list[str]] = [[] for _ in range(n)]
    names = schema.keypoints
    lo = cfg.vis_thresholds[0]
    kp = np.asarray(keypoints, np.float64)
    if background_joints is not None:
        for i, joints in enumerate(background_joints):
            flags[i].extend(f"background:{names[j]}" for j in joints if kp[i, j, 2] >= lo)
    for t in np.unique(tracks):
        rows = np.flatnonzero(tracks == t)
        rows = rows[np.argsort(frame_index[rows], kind="stable")]
        fi = frame_index[rows]
        # bone lengths relative to the torso, against the track's median
        scale = np.array([_scale(kp[r], box_h[r], lo) for r in rows])
        for a, b in LIMBS:
            ok = (kp[rows, a, 2] >= lo) & (kp[rows, b, 2] >= lo)
            if ok.sum() < 3:
                continue
            rel = np.linalg.norm(kp[rows, a, :2] - kp[rows, b, :2], axis=-1) / scale
            med = float(np.median(rel[ok]))
            if med <= 0:
                continue
            ratio = rel / med
            for k in np.flatnonzero(ok & ((ratio > cfg.qa_bone_ratio) | (ratio < 1 / cfg.qa_bone_ratio))):
                flags[rows[k]].append(f"bone:{names[a]}-{names[b]}")
        # left/right swaps against the previous unswapped frame of the track
        sa, sb = _SWAP_A, _SWAP_B
        ref = -1
        for k, r in enumerate(rows):
            if ref >= 0 and fi[k] - fi[ref] <= cfg.qa_swap_max_gap:
                p, q = kp[r], kp[rows[ref]]
                ok = np.minimum(np.minimum(p[sa, 2], p[sb, 2]), np.minimum(q[sa, 2], q[sb, 2])) >= lo
                used = int(ok.sum())
                if used >= 2:
                    pa, pb, qa, qb = p[sa[ok], :2], p[sb[ok], :2], q[sa[ok], :2], q[sb[ok], :2]
                    direct = float(np.hypot(*(pa - qa).T).sum() + np.hypot(*(pb - qb).T).sum())
                    swapped = float(np.hypot(*(pa - qb).T).sum() + np.hypot(*(pb - qa).T).sum())
                    h = max(box_h[r], 1.0)
                    if swapped < cfg.qa_swap_ratio * direct and direct / (2 * used) > cfg.qa_swap_min_shift * h:
                        flags[r].append("lr_swap")
                        continue
            ref = k
        # jitter: one-frame spikes on consecutive frames
        if len(rows) >= 3:
            a, r, c = kp[rows[:-2]], kp[rows[1:-1]], kp[rows[2:]]
            consecutive = (fi[1:-1] - fi[:-2] == 1) & (fi[2:] - fi[1:-1] == 1)
            conf = np.minimum(np.minimum(a[..., 2], r[..., 2]), c[..., 2]) >= lo
            second = a[..., :2] - 2 * r[..., :2] + c[..., :2]
            h = np.maximum(box_h[rows[1:-1]], 1.0)
            spike = consecutive[:, None] & conf & (np.hypot(second[..., 0], second[..., 1]) > cfg.qa_jitter * h[:, None])
            for m, j in np.argwhere(spike):
                flags[rows[m + 1]].append(f"jitter:{names[j]}")
    return flags


# ---- one recording ------------------------------------------------------------------------------
def postprocess_recording(
    df: pd.DataFrame,
    *,
    n_frames: int | None = None,
    image_height: float = 480.0,
    fps: float = 30.0,
    depth_m: np.ndarray | None = None,
    background_joints: list[list[int]] | None = None,
    cfg: PostprocessConfig = PostprocessConfig(),
    schema: KeypointSchema = COCO17,
) -> pd.DataFrame:
    """Fill ``track_id``, ``visibility``, ``num_visible``, ``is_subject``, ``qa_flags`` (and smooth).

    ``df``: the label rows (LABEL_COLUMNS) of ONE recording with raw ``keypoints``; ``depth_m`` and
    ``background_joints`` are per row (from :func:`depth_features`), optional. Returns a new frame.
    """
    df = df.reset_index(drop=True).copy()
    k = schema.num_keypoints
    person = df["has_person"].fillna(False).to_numpy(dtype=bool)
    idx = np.flatnonzero(person)
    fi = df["frame_index"].to_numpy(dtype=np.int64)
    n_frames = n_frames if n_frames is not None else len(np.unique(fi))
    track_col = pd.array([pd.NA] * len(df), dtype="Int64")
    subject_col = pd.array([pd.NA] * len(df), dtype="boolean")
    flags_col: list[list[str]] = [[] for _ in range(len(df))]
    vis_col: list[list[int] | None] = [None] * len(df)
    nvis_col = pd.array([pd.NA] * len(df), dtype="Int64")
    if len(idx):
        kp = np.stack([decode_keypoints(df.at[i, "keypoints"], k) for i in idx])
        boxes = df.loc[idx, ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(np.float64)
        scores = df.loc[idx, "score"].to_numpy(np.float64)
        pfi = fi[idx]
        tracks = assign_tracks(pfi, boxes, cfg)
        if cfg.smooth == "one_euro":
            kp = smooth_keypoints(pfi, kp, tracks, fps, cfg)
        vis = visibility_from_confidence(kp[..., 2], cfg.vis_thresholds)
        dm = np.asarray(depth_m, np.float64)[idx] if depth_m is not None else np.full(len(idx), np.nan)
        if cfg.select_subject:
            feats = track_features(pfi, boxes, kp, scores, dm, tracks, n_frames, image_height, cfg)
            subject = select_subject(feats, pfi, tracks)
        else:
            subject = set(np.unique(tracks).tolist())
        flags = (
            qa_flags(pfi, kp, boxes[:, 3], tracks, [background_joints[i] for i in idx] if background_joints else None, cfg, schema)
            if cfg.qa
            else [[] for _ in idx]
        )
        kp_col = df["keypoints"].tolist()
        for n, i in enumerate(idx):
            kp_col[i] = encode_keypoints(kp[n])
            vis_col[i] = vis[n].astype(int).tolist()
            flags_col[i] = flags[n]
        df["keypoints"] = pd.Series(kp_col, dtype=object)
        nvis_col[idx] = (vis > 0).sum(axis=1)
        track_col[idx] = tracks.astype(np.int64)
        subject_col[idx] = np.isin(tracks, list(subject))
    df["track_id"] = track_col
    df["is_subject"] = subject_col
    df["visibility"] = pd.Series(vis_col, dtype=object)
    df["num_visible"] = nvis_col
    df["qa_flags"] = pd.Series(flags_col, dtype=object)
    return df
