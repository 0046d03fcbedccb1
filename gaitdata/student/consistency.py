"""Left/right consistency and temporal smoothing of one person's poses over a track.

A top-down pose model decides left and right in every frame on its own. In a side view that is
the hard part of the task: the legs look alike, so a model may label them by a cue that holds for
half the gait cycle only (the front leg, say) and hand the label over when the legs cross. Over a
track the identity of each limb is not ambiguous: a foot in stance stands still while the other
swings past it, so a label that jumps from one trajectory to the other shows up as a jump in
jump. :func:`swap_path` finds, per limb chain (leg, arm, head side), the per-frame assignment with
the least motion (a Viterbi search over "as predicted" / "swapped"), keeps only corrections that
are clearly better than the prediction, and :func:`consistent_track` applies them.

Smoothness alone fixes the relative identity; which of the two trajectories is the left one is
decided by evidence summed over the track: the model's own per-frame votes (``prior`` per frame
for keeping its assignment) and, in side views, which leg is nearer the camera: the camera-side
leg is the right one when the person faces image right (:func:`side_view_facing`), and it is the
leg measured nearer in registered depth (:func:`depth_votes`, RGB-D recordings) and the one imaged
larger by perspective (a few per cent at gait-lab distances, :func:`side_votes`). Other evidence
can be added per frame with ``anchor``.

Coordinates are pixels; costs are in units of the person's size (box height), so the settings do
not depend on the image resolution.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from gaitdata.errors import GaitdataError
from gaitdata.schema import COCO17, KeypointSchema

_LEG_WORDS = ("knee", "ankle", "heel", "toe", "foot")
_ARM_WORDS = ("elbow", "wrist", "hand", "thumb", "finger", "pinky", "index")
_TORSO_WORDS = ("hip", "shoulder")


@dataclass(frozen=True)
class ConsistencyConfig:
    """Settings of :func:`consistent_track` (recorded with every output that used them)."""

    fix_swaps: bool = True
    prior: float = 0.02  # cost (box heights) of overriding the model's own assignment in one frame
    max_gap: int = 3  # frames a track may skip and still be linked
    min_conf: float = 0.2  # joints below this confidence carry no motion evidence
    cap: float = 0.5  # per-joint motion cost cap (box heights): one wild joint cannot decide alone
    min_gain: float = 0.15  # box heights: a run of corrected frames must lower the total cost this much
    # zero-phase Gaussian smoothing over frames (sigma in frames; 0: off): 1 frame at 30 fps passes
    # gait kinematics and damps a pose model's jitter, like the ~6 Hz low-pass usual in gait analysis
    smooth_sigma: float = 1.0
    # side views: the limbs nearer the camera are imaged larger (perspective), so the per-frame
    # difference of left and right limb lengths (box heights) votes for the assignment, times this
    side_evidence: float = 3.0
    side_max_width: float = 0.1  # shoulder (else hip) width / box height below which a track is a side view
    # with registered depth: the leg measured nearer the camera is the camera-side one; a vote of
    # this weight (box heights) per frame where the legs' depths differ by at least depth_min_sep_m
    depth_evidence: float = 0.3
    depth_min_sep_m: float = 0.04
    depth_body_band_m: float = 0.4  # a limb depth further than this from the body's is background

    def __post_init__(self) -> None:
        if self.prior < 0 or self.cap <= 0 or self.max_gap < 1 or self.smooth_sigma < 0 or self.min_gain < 0:
            raise GaitdataError(
                f"consistency settings out of range ({self}); need prior >= 0, cap > 0, max_gap >= 1, "
                f"smooth_sigma >= 0, min_gain >= 0"
            )

    def to_dict(self) -> dict:
        return asdict(self)


def limb_chains(schema: KeypointSchema = COCO17) -> tuple[tuple[tuple[int, int], ...], ...]:
    """The schema's flip pairs grouped into chains that swap together: legs (knee down), arms
    (elbow down), torso (hips, shoulders), the rest (head)."""
    groups: dict[str, list[tuple[int, int]]] = {"legs": [], "arms": [], "torso": [], "rest": []}
    for a, b in schema.flip_pairs:
        name = schema.keypoints[a]
        kind = next((k for k, words in (("legs", _LEG_WORDS), ("arms", _ARM_WORDS), ("torso", _TORSO_WORDS))
                     if any(w in name for w in words)), "rest")  # fmt: skip
        groups[kind].append((a, b))
    return tuple(tuple(c) for c in groups.values() if c)


def is_leg_chain(schema: KeypointSchema, chain: tuple[tuple[int, int], ...]) -> bool:
    """Whether a chain is a leg: the limbs whose camera-side member is reliably seen in a side view
    (the far arm and the far half of the face hide behind the body, so their lengths are guesses)."""
    return any(w in schema.keypoints[chain[0][0]] for w in _LEG_WORDS)


def _pair_index(schema: KeypointSchema) -> dict[int, int]:
    out = {}
    for a, b in schema.flip_pairs:
        out[a], out[b] = b, a
    return out


def chain_edges(schema: KeypointSchema, chain: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """Skeleton edges of the chain's left side: both ends on the left, at least one in the chain
    (for a leg: knee-ankle and hip-knee); the right side's are their mirrors."""
    left = {a for a, _ in chain}
    mirror = _pair_index(schema)
    lefts = {a for a, _ in schema.flip_pairs}
    return tuple(
        (a, b) for a, b in schema.skeleton
        if (a in left or b in left) and a in lefts and b in lefts and a in mirror and b in mirror
    )  # fmt: skip


def side_view_facing(
    kp: np.ndarray, scale: np.ndarray, schema: KeypointSchema = COCO17, cfg: ConsistencyConfig | None = None
) -> int:
    """+1 / -1 when the track is a side view of a person facing image right / left, 0 otherwise.

    A side view: the median shoulder (else hip) width is below ``cfg.side_max_width`` box heights.
    Facing: the nose ahead of the ears' midpoint; without those joints, the direction of travel of
    the hips (a person walking forwards).
    """
    cfg = cfg or ConsistencyConfig()
    kp = np.asarray(kp, np.float64)
    sc = np.maximum(np.asarray(scale, np.float64), 1.0)
    names = schema.keypoints

    def idx(n: str) -> int | None:
        return names.index(n) if n in names else None

    def conf_ok(*js: int) -> np.ndarray:
        return np.all(kp[:, list(js), 2] >= cfg.min_conf, axis=1)

    width = None
    for a, b in (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")):
        ia, ib = idx(a), idx(b)
        if ia is None or ib is None:
            continue
        m = conf_ok(ia, ib)
        if m.sum() >= 3:
            width = float(np.median(np.abs(kp[m, ia, 0] - kp[m, ib, 0]) / sc[m]))
            break
    if width is None or width >= cfg.side_max_width:
        return 0
    nose, le, re = idx("nose"), idx("left_ear"), idx("right_ear")
    if None not in (nose, le, re):
        m = conf_ok(nose, le) | conf_ok(nose, re)
        if m.sum() >= 3:
            with warnings.catch_warnings():  # frames with neither ear: NaN, dropped below
                warnings.simplefilter("ignore", RuntimeWarning)
                ears = np.nanmean(
                    np.where(kp[:, [le, re], 2] >= cfg.min_conf, kp[:, [le, re], 0], np.nan), axis=1
                )
            d = (kp[:, nose, 0] - ears)[m & np.isfinite(ears)] / sc[m & np.isfinite(ears)]
            if len(d) >= 3 and abs(float(np.median(d))) > 0.01:
                return 1 if float(np.median(d)) > 0 else -1
    lh, rh = idx("left_hip"), idx("right_hip")
    if lh is not None and rh is not None:
        m = conf_ok(lh, rh)
        if m.sum() >= 3:
            x = (kp[m, lh, 0] + kp[m, rh, 0]) / 2
            travel = (x[-1] - x[0]) / float(np.median(sc[m]))
            if abs(travel) > 0.25:
                return 1 if travel > 0 else -1
    return 0


def side_votes(
    kp: np.ndarray, scale: np.ndarray, chain: tuple[tuple[int, int], ...], facing: int,
    schema: KeypointSchema = COCO17, cfg: ConsistencyConfig | None = None,
) -> np.ndarray:  # fmt: skip
    """Per frame, the perspective vote for the chain's predicted assignment (box heights; positive:
    the limb labelled as the camera side is the longer one, as it should be).

    A person facing image right (``facing`` +1) turns the right side towards the camera; facing
    left, the left side.
    """
    cfg = cfg or ConsistencyConfig()
    kp = np.asarray(kp, np.float64)
    sc = np.maximum(np.asarray(scale, np.float64), 1.0)
    if facing == 0:
        return np.zeros(len(kp))
    mirror = _pair_index(schema)
    diff = np.zeros(len(kp))
    for a, b in chain_edges(schema, chain):
        ra, rb = mirror[a], mirror[b]
        ok = np.all(kp[:, [a, b, ra, rb], 2] >= cfg.min_conf, axis=1)
        left = np.linalg.norm(kp[:, a, :2] - kp[:, b, :2], axis=-1)
        right = np.linalg.norm(kp[:, ra, :2] - kp[:, rb, :2], axis=-1)
        diff += np.where(ok, (left - right) / sc, 0.0)
    # facing right: the right limbs are nearer and should be the longer ones
    return -diff if facing > 0 else diff


def sample_joint_depths(kp: np.ndarray, depth: np.ndarray, depth_scale: float, radius: int = 3) -> np.ndarray:
    """(K,) depth in metres at each keypoint of one pose: the nearest valid pixel in a
    (2 radius + 1)^2 window of a registered 16-bit depth image (a limb is in front of what is
    behind it, so a keypoint a few pixels off the limb still finds it); NaN where there is none."""
    h, w = depth.shape[:2]
    out = np.full(len(kp), np.nan)
    for j, (x, y) in enumerate(np.asarray(kp, np.float64)[:, :2]):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        xi, yi = int(np.floor(x)), int(np.floor(y))
        if not (0 <= xi < w and 0 <= yi < h):
            continue
        win = depth[max(yi - radius, 0) : yi + radius + 1, max(xi - radius, 0) : xi + radius + 1]
        v = win[win > 0]
        if v.size:
            out[j] = float(v.min()) * depth_scale
    return out


def depth_votes(
    kp: np.ndarray, joint_depth: np.ndarray, scale: np.ndarray, chain: tuple[tuple[int, int], ...], facing: int,
    schema: KeypointSchema = COCO17, cfg: ConsistencyConfig | None = None,
) -> np.ndarray:  # fmt: skip
    """Per frame, the depth vote for the chain's predicted assignment: ``+cfg.depth_evidence`` when
    the limb labelled as the camera side is the one measured nearer, the negative when it is the
    farther one, 0 where depth cannot tell (missing, the limbs overlapping in the image, or their
    depths closer than ``cfg.depth_min_sep_m``)."""
    cfg = cfg or ConsistencyConfig()
    if facing == 0 or joint_depth is None:
        return np.zeros(len(kp))
    kp = np.asarray(kp, np.float64)
    jd = np.asarray(joint_depth, np.float64).copy()
    left = [a for a, _ in chain]
    right = [b for _, b in chain]
    # a limb's depth must lie near the body's (else the keypoint sampled the background behind it)
    torso = [i for i, n in enumerate(schema.keypoints) if "hip" in n] or [
        i for i, n in enumerate(schema.keypoints) if "shoulder" in n
    ]
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # frames without depth: all-NaN rows
        warnings.simplefilter("ignore", RuntimeWarning)
        body = np.nanmedian(jd[:, torso], axis=1) if torso else np.nanmedian(jd, axis=1)
        jd[np.abs(jd - body[:, None]) > cfg.depth_body_band_m] = np.nan
        dl = np.nanmedian(np.where(kp[:, left, 2] >= cfg.min_conf, jd[:, left], np.nan), axis=1)
        dr = np.nanmedian(np.where(kp[:, right, 2] >= cfg.min_conf, jd[:, right], np.nan), axis=1)
    apart = np.linalg.norm(kp[:, left, :2] - kp[:, right, :2], axis=-1).min(1) >= 0.03 * np.maximum(scale, 1.0)
    ok = np.isfinite(dl) & np.isfinite(dr) & (np.abs(dl - dr) >= cfg.depth_min_sep_m) & apart
    right_nearer = dr < dl
    camera_right = facing > 0
    vote = np.where(right_nearer == camera_right, cfg.depth_evidence, -cfg.depth_evidence)
    return np.where(ok, vote, 0.0)


def _hypotheses(kp: np.ndarray, chain: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2, 2n, 2) positions and (T, 2n) pair validity under "as predicted" (0) and "swapped" (1)."""
    left = np.array([a for a, _ in chain])
    right = np.array([b for _, b in chain])
    direct = np.concatenate([kp[:, left, :2], kp[:, right, :2]], axis=1)
    swapped = np.concatenate([kp[:, right, :2], kp[:, left, :2]], axis=1)
    return np.stack([direct, swapped], axis=1), np.concatenate([left, right])


def swap_path(
    kp: np.ndarray,
    frames: np.ndarray,
    scale: np.ndarray,
    chain: tuple[tuple[int, int], ...],
    cfg: ConsistencyConfig = ConsistencyConfig(),
    unary: np.ndarray | None = None,
) -> np.ndarray:
    """Per frame, whether the chain's left/right labels should be swapped (bool (T,)).

    ``kp`` (T, K, 3) x, y, confidence of one track sorted by ``frames``; ``scale`` (T,) the person's
    size in pixels. ``unary`` (T,): cost of the swapped state per frame (positive: keep the
    prediction); by default ``cfg.prior`` for every frame.

    A Viterbi search over the two states per frame with the motion cost between consecutive frames
    (joint displacement in box heights, capped at ``cfg.cap`` per joint) finds the cheapest path;
    then each run of swapped frames is kept only if it lowers the total cost by ``cfg.min_gain``
    (a correction must be clearly better than the prediction, not a coin toss in noise).
    """
    kp = np.asarray(kp, np.float64)
    t_len = len(kp)
    if t_len == 0:
        return np.zeros(0, bool)
    frames = np.asarray(frames, np.int64)
    if np.any(np.diff(frames) <= 0):
        raise GaitdataError("swap_path: frames must be strictly increasing (one pose per frame per track)")
    pos, joints = _hypotheses(kp, chain)
    n = len(chain)
    conf = kp[:, joints, 2]
    pair_ok = (conf[:, :n] >= cfg.min_conf) & (conf[:, n:] >= cfg.min_conf)  # (T, n): symmetric in L/R
    ok = np.concatenate([pair_ok, pair_ok], axis=1)  # (T, 2n)
    sc = np.maximum(np.asarray(scale, np.float64), 1.0)
    u = np.full(t_len, cfg.prior) if unary is None else np.asarray(unary, np.float64)
    unary2 = np.stack([np.zeros(t_len), u], axis=1)  # (T, 2)
    # motion[t, a, b]: cost of state a at t-1 followed by state b at t (0 across a gap)
    motion = np.zeros((t_len, 2, 2))
    linked = np.r_[False, np.diff(frames) <= cfg.max_gap]
    for t in np.flatnonzero(linked):
        valid = ok[t] & ok[t - 1]
        d = np.linalg.norm(pos[t][None, :, :, :] - pos[t - 1][:, None, :, :], axis=-1) / sc[t]  # (2, 2, 2n)
        motion[t] = (np.minimum(d, cfg.cap) * valid).sum(-1)
    path = _viterbi(unary2, motion)
    return _significant(path, unary2, motion, cfg.min_gain)


def _viterbi(unary2: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """The cheapest two-state path: sum of unary2[t, s_t] + motion[t, s_(t-1), s_t]."""
    t_len = len(unary2)
    cost = unary2[0].copy()
    back = np.zeros((t_len, 2), np.int64)
    for t in range(1, t_len):
        total = cost[:, None] + motion[t]  # (from, to)
        back[t] = total.argmin(0)
        cost = total.min(0) + unary2[t]
    path = np.zeros(t_len, np.int64)
    path[-1] = int(cost.argmin())
    for t in range(t_len - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path.astype(bool)


def _path_cost(path: np.ndarray, unary2: np.ndarray, motion: np.ndarray) -> float:
    s = path.astype(np.int64)
    return float(unary2[np.arange(len(s)), s].sum() + motion[np.arange(1, len(s)), s[:-1], s[1:]].sum())


def _significant(path: np.ndarray, unary2: np.ndarray, motion: np.ndarray, min_gain: float) -> np.ndarray:
    """Revert each run of swapped frames whose correction gains less than ``min_gain``."""
    path = path.copy()
    if not path.any() or min_gain <= 0:
        return path
    edges = np.flatnonzero(np.diff(np.r_[0, path.astype(np.int8), 0]))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        without = path.copy()
        without[a:b] = False
        if _path_cost(without, unary2, motion) - _path_cost(path, unary2, motion) < min_gain:
            path = without
    return path


def apply_swaps(kp: np.ndarray, swapped: np.ndarray, chain: tuple[tuple[int, int], ...]) -> np.ndarray:
    """A copy of (T, K, C) keypoints with the chain's left/right joints exchanged where ``swapped``."""
    out = np.array(kp, copy=True)
    rows = np.flatnonzero(swapped)
    for a, b in chain:
        out[rows, a], out[rows, b] = kp[rows, b], kp[rows, a]
    return out


def smooth_track(kp: np.ndarray, frames: np.ndarray, sigma: float, min_conf: float = 0.0) -> np.ndarray:
    """Zero-phase smoothing of (T, K, 3) keypoints over frames: a local linear fit with Gaussian
    weights (sigma in frames, gaps respected) around each frame, each sample weighted by its
    confidence. A joint moving at constant speed is left exactly where it is, at the ends of a
    track too; confidences are left as they are."""
    kp = np.asarray(kp, np.float64)
    if sigma <= 0 or len(kp) < 3:
        return kp.copy()
    f = np.asarray(frames, np.float64)
    dt = f[None, :] - f[:, None]  # (T, S): sample s relative to frame t
    w = np.exp(-0.5 * (dt / sigma) ** 2)
    w[np.abs(dt) > 3 * sigma] = 0.0
    c = np.where(kp[..., 2] >= min_conf, np.maximum(kp[..., 2], 1e-3), 0.0)  # (S, K)
    wk = w[:, :, None] * c[None, :, :]  # (T, S, K)
    sw = wk.sum(1)  # (T, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        mt = np.einsum("tsk,ts->tk", wk, dt) / sw  # weighted mean offset of the samples
        var = np.einsum("tsk,ts->tk", wk, dt**2) / sw - mt**2
        out = kp.copy()
        for d in range(2):
            x = kp[..., d]  # (S, K)
            mx = np.einsum("tsk,sk->tk", wk, x) / sw
            cov = np.einsum("tsk,ts,sk->tk", wk, dt, x) / sw - mt * mx
            slope = np.where(var > 1e-9, cov / np.where(var > 1e-9, var, 1.0), 0.0)
            fit = mx - slope * mt  # the local line evaluated at the frame itself (offset 0)
            out[..., d] = np.where(sw > 0, fit, kp[..., d])
    return out


@dataclass(frozen=True)
class TrackResult:
    keypoints: np.ndarray  # (T, K, 3) corrected (and smoothed) keypoints
    swapped: np.ndarray  # (T, n_chains) bool: labels exchanged per chain


def consistent_track(
    kp: np.ndarray,
    frames: np.ndarray,
    scale: np.ndarray,
    schema: KeypointSchema = COCO17,
    cfg: ConsistencyConfig = ConsistencyConfig(),
    anchor: np.ndarray | None = None,
    joint_depth: np.ndarray | None = None,
) -> TrackResult:
    """Left/right-consistent (and optionally smoothed) keypoints of one track sorted by frame.

    ``joint_depth`` (T, K): registered depth (metres, NaN unknown) at each keypoint, for the depth
    votes of side views. ``anchor`` (T, n_chains): other per-frame votes for each chain (positive:
    the prediction's assignment is right, negative: it is swapped, 0: no opinion), in box-height
    units; they are added to the per-frame prior.
    """
    kp = np.asarray(kp, np.float64)
    if kp.ndim != 3 or kp.shape[1] != schema.num_keypoints or kp.shape[2] < 3:
        raise GaitdataError(
            f"consistent_track: expected keypoints (T, {schema.num_keypoints}, 3), got {kp.shape}"
        )
    chains = limb_chains(schema)
    swapped = np.zeros((len(kp), len(chains)), bool)
    out = kp.copy()
    if cfg.fix_swaps:
        facing = side_view_facing(kp, scale, schema, cfg)
        for i, chain in enumerate(chains):
            unary = np.full(len(kp), cfg.prior)
            if facing and is_leg_chain(schema, chain):
                if chain_edges(schema, chain):
                    unary = unary + cfg.side_evidence * side_votes(kp, scale, chain, facing, schema, cfg)
                if joint_depth is not None:
                    unary = unary + depth_votes(kp, joint_depth, scale, chain, facing, schema, cfg)
            if anchor is not None:
                unary = unary + np.asarray(anchor, np.float64)[:, i]
            swapped[:, i] = swap_path(kp, frames, scale, chain, cfg, unary)
            out = apply_swaps(out, swapped[:, i], chain)
    if cfg.smooth_sigma > 0:
        out = smooth_track(out, frames, cfg.smooth_sigma, cfg.min_conf)
    return TrackResult(keypoints=out, swapped=swapped)


def consistent_persons(
    video_id: np.ndarray,
    track: np.ndarray,
    frames: np.ndarray,
    kp: np.ndarray,
    scale: np.ndarray,
    schema: KeypointSchema = COCO17,
    cfg: ConsistencyConfig = ConsistencyConfig(),
    joint_depth: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`consistent_track` over every (video, track) of a flat list of poses.

    ``joint_depth`` (N, K): optional registered depth at each keypoint (metres, NaN unknown).
    Returns the corrected (N, K, 3) keypoints in the input order and the per-pose swap flags
    (N, n_chains). Poses of a track that share a frame keep the first one's place in the chain and
    are left as they are.
    """
    kp = np.asarray(kp, np.float64)
    out = kp.copy()
    n_chains = len(limb_chains(schema))
    flags = np.zeros((len(kp), n_chains), bool)
    keys = np.array([f"{v}\x00{t}" for v, t in zip(video_id, track, strict=True)])
    for key in np.unique(keys):
        rows = np.flatnonzero(keys == key)
        rows = rows[np.argsort(frames[rows], kind="stable")]
        _, first = np.unique(frames[rows], return_index=True)
        rows = rows[first]
        jd = None if joint_depth is None else np.asarray(joint_depth, np.float64)[rows]
        res = consistent_track(kp[rows], frames[rows], scale[rows], schema, cfg, joint_depth=jd)
        out[rows] = res.keypoints
        flags[rows] = res.swapped
    return out, flags
