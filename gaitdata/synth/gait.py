"""A periodic gait model: joint-angle curves and the 3-D skeleton of a walker at any time.

World frame (metres, right-handed): X to the camera's right, Y up (the floor is Y = 0), Z towards
the camera. A walker's own frame is ``forward`` (heading), ``up`` and ``left = up x forward``.

Joint curves are smooth periodic Fourier fits (5 harmonics) through keys of normal walking
(cycle fraction: degrees). The left leg runs half a cycle behind the right one. The pelvis height
is set every frame so that the lowest sole point touches the floor: the vertical bob follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# cycle fraction -> degrees (right leg; heel strike at 0)
HIP_KEYS = ((0.0, 25.0), (0.10, 22.0), (0.30, 5.0), (0.50, -12.0), (0.60, -6.0), (0.75, 16.0), (0.87, 27.0))
KNEE_KEYS = (
    (0.0, 3.0), (0.15, 18.0), (0.30, 8.0), (0.42, 4.0), (0.60, 38.0), (0.72, 62.0), (0.85, 30.0), (0.95, 5.0),
)  # fmt: skip
ANKLE_KEYS = (
    (0.0, 0.0), (0.07, -6.0), (0.30, 7.0), (0.45, 10.0), (0.60, -15.0), (0.65, -18.0), (0.75, -5.0), (0.87, 2.0),
)  # fmt: skip

N_HARMONICS = 5
REFERENCE_HEIGHT = 1.75


@dataclass(frozen=True)
class FourierCurve:
    """f(p) = a0 + sum_k a_k cos(2 pi k p) + b_k sin(2 pi k p), p = cycle fraction."""

    coeffs: tuple[float, ...]  # a0, a1, b1, a2, b2, ...

    @classmethod
    def fit(
        cls, keys: tuple[tuple[float, float], ...], harmonics: int = N_HARMONICS, smooth: float = 1e-4
    ) -> FourierCurve:
        """Least-squares fit through the keys with a small curvature penalty (keys < parameters)."""
        p = np.array([k[0] for k in keys], dtype=np.float64)
        y = np.array([k[1] for k in keys], dtype=np.float64)
        basis = _basis(p, harmonics)
        # penalise the k-th harmonic by k^4 (smooth curves), never the mean
        w = np.concatenate([[0.0], np.repeat(np.arange(1, harmonics + 1, dtype=np.float64) ** 2, 2)])
        lhs = basis.T @ basis + smooth * np.diag(w**2)
        coef = np.linalg.solve(lhs + 1e-12 * np.eye(len(w)), basis.T @ y)
        return cls(tuple(float(c) for c in coef))

    def __call__(self, p: np.ndarray | float) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        harmonics = (len(self.coeffs) - 1) // 2
        return _basis(p.ravel(), harmonics).dot(np.asarray(self.coeffs)).reshape(p.shape)


def _basis(p: np.ndarray, harmonics: int) -> np.ndarray:
    cols = [np.ones_like(p)]
    for k in range(1, harmonics + 1):
        cols += [np.cos(2 * np.pi * k * p), np.sin(2 * np.pi * k * p)]
    return np.stack(cols, axis=-1)


@dataclass(frozen=True)
class GaitCurves:
    hip: FourierCurve
    knee: FourierCurve
    ankle: FourierCurve

    @classmethod
    def default(cls) -> GaitCurves:
        return cls(FourierCurve.fit(HIP_KEYS), FourierCurve.fit(KNEE_KEYS), FourierCurve.fit(ANKLE_KEYS))


@dataclass(frozen=True)
class BodyDims:
    """Segment lengths and girths (metres) for a person of ``height`` (scaled from 1.75 m)."""

    height: float = REFERENCE_HEIGHT
    girth: float = 1.0  # multiplies radii (build)

    @property
    def s(self) -> float:
        return self.height / REFERENCE_HEIGHT

    @property
    def thigh(self) -> float:
        return 0.43 * self.s

    @property
    def shank(self) -> float:
        return 0.42 * self.s

    @property
    def upper_arm(self) -> float:
        return 0.29 * self.s

    @property
    def forearm(self) -> float:
        return 0.25 * self.s

    @property
    def hip_half(self) -> float:
        return 0.09 * self.s

    @property
    def shoulder_half(self) -> float:
        return 0.18 * self.s

    @property
    def spine(self) -> float:  # hip-joint centre to shoulder line
        return 0.51 * self.s

    @property
    def head_centre(self) -> float:  # hip-joint centre to head centre, along the trunk
        return 0.70 * self.s


# shoe geometry (metres for a 1.75 m walker): end-sphere centres relative to the ankle, radii, vertical squash
SHOE_HEEL_BACK, SHOE_HEEL_DOWN, SHOE_TOE_FWD, SHOE_TOE_DOWN = 0.045, 0.036, 0.150, 0.046
SHOE_R_HEEL, SHOE_R_TOE, SHOE_SQUASH = 0.045, 0.040, 0.89


def shoe_lowest(heel_c: np.ndarray, toe_c: np.ndarray, lateral: np.ndarray, s: float) -> float:
    """Height of the lowest point of a shoe (the hull of two vertically squashed end spheres)."""
    axis = toe_c - heel_c
    axis = axis / np.linalg.norm(axis)
    lat = lateral - axis * lateral.dot(axis)
    lat = lat / np.linalg.norm(lat)
    third = np.cross(axis, lat)
    # support function of an ellipsoid with semi-axes r, r, r * squash along (axis, lat, third), direction -Y
    ext = np.sqrt(axis[1] ** 2 + lat[1] ** 2 + (SHOE_SQUASH * third[1]) ** 2)
    return float(min(heel_c[1] - SHOE_R_HEEL * s * ext, toe_c[1] - SHOE_R_TOE * s * ext))


@dataclass(frozen=True)
class GaitParams:
    cycle_s: float = 1.1
    speed: float = 1.2  # m/s for a 1.75 m walker (scaled by height)
    pelvis_yaw_deg: float = 5.0
    thorax_counter: float = 1.3  # thorax yaw = -counter * pelvis yaw
    sway_m: float = 0.02
    lean_deg: float = 4.0
    arm_swing: float = 0.7  # shoulder flexion = -arm_swing * (hip flexion - mean)
    arm_abduction_deg: float = 7.0


def rot_axis(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix for ``angle`` radians about the unit ``axis`` (Rodrigues)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


@dataclass(frozen=True)
class Skeleton:
    """World positions (metres) of the walker's joints and the frames of its body parts at one instant."""

    joints: dict[str, np.ndarray]
    frames: dict[str, np.ndarray]  # name -> 3x3, columns (left, up, forward) of that body part
    vectors: dict[str, np.ndarray]  # extra directions: foot axes, limb directions


UP = np.array([0.0, 1.0, 0.0])


def _frame(forward: np.ndarray, up: np.ndarray = UP) -> np.ndarray:
    f = forward - up * forward.dot(up)
    f = f / np.linalg.norm(f)
    left = np.cross(up, f)
    return np.stack([left, up, f], axis=1)


def skeleton_at(
    t: float,
    dims: BodyDims,
    origin: np.ndarray,
    heading: np.ndarray,
    phase0: float = 0.0,
    curves: GaitCurves | None = None,
    gait: GaitParams | None = None,
) -> Skeleton:
    """The walker's skeleton at time ``t`` seconds.

    ``origin`` is the ground point under the pelvis at t = 0; the walker advances along ``heading``.
    """
    curves = curves or GaitCurves.default()
    gait = gait or GaitParams()
    s = dims.s
    cycle = gait.cycle_s * np.sqrt(s)
    speed = gait.speed * np.sqrt(s)
    p_r = (t / cycle + phase0) % 1.0
    phases = {"right": p_r, "left": (p_r + 0.5) % 1.0}
    base = _frame(np.asarray(heading, dtype=np.float64))
    left0, up, fwd0 = base[:, 0], base[:, 1], base[:, 2]

    yaw = np.radians(gait.pelvis_yaw_deg) * np.cos(2 * np.pi * p_r)
    pel = rot_axis(up, yaw) @ base
    tho = rot_axis(up, -gait.thorax_counter * yaw) @ base
    l_p, f_p = pel[:, 0], pel[:, 2]
    l_t, f_t = tho[:, 0], tho[:, 2]

    sway = -gait.sway_m * s * np.sin(2 * np.pi * p_r)
    pelvis_xz = np.asarray(origin, dtype=np.float64) + speed * t * fwd0 + sway * left0

    joints: dict[str, np.ndarray] = {}
    vectors: dict[str, np.ndarray] = {}
    # legs relative to the hip-joint centre (pelvis origin at height 0 for now)
    lows = []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        p = phases[side]
        h = np.radians(float(curves.hip(p)))
        k = np.radians(float(curves.knee(p)))
        a = np.radians(float(curves.ankle(p)))
        hip = sign * dims.hip_half * l_p
        thigh = np.cos(h) * -up + np.sin(h) * f_p
        knee = hip + dims.thigh * thigh
        beta = h - k
        shank = np.cos(beta) * -up + np.sin(beta) * f_p
        ankle = knee + dims.shank * shank
        gamma = beta + a
        foot = np.cos(gamma) * f_p + np.sin(gamma) * up
        foot_up = np.cross(foot, l_p)  # perpendicular to the foot, pointing up when the foot is flat
        foot_up = foot_up / np.linalg.norm(foot_up)
        heel_c = ankle - SHOE_HEEL_BACK * s * foot - SHOE_HEEL_DOWN * s * foot_up
        toe_c = ankle + SHOE_TOE_FWD * s * foot - SHOE_TOE_DOWN * s * foot_up
        joints[f"{side}_hip"], joints[f"{side}_knee"], joints[f"{side}_ankle"] = hip, knee, ankle
        joints[f"{side}_heel_c"], joints[f"{side}_toe_c"] = heel_c, toe_c
        vectors[f"{side}_foot"], vectors[f"{side}_foot_up"] = foot, foot_up
        lows.append(shoe_lowest(heel_c, toe_c, l_p, s))
    lift = -min(lows)
    pelvis = np.array([pelvis_xz[0], lift, pelvis_xz[2]])
    for name in list(joints):
        joints[name] = joints[name] + pelvis
    joints["pelvis"] = pelvis

    # trunk, leaning forward
    # (left, up, forward) is right-handed: a positive rotation about ``left`` tilts up towards forward
    trunk_axis = rot_axis(l_t, np.radians(gait.lean_deg)) @ up
    tho_frame = np.stack([l_t, trunk_axis, np.cross(l_t, trunk_axis)], axis=1)
    neck_base = pelvis + dims.spine * trunk_axis
    joints["neck"] = neck_base
    for side, sign in (("left", 1.0), ("right", -1.0)):
        joints[f"{side}_shoulder"] = neck_base + sign * dims.shoulder_half * l_t - 0.01 * s * trunk_axis
    head_c = pelvis + dims.head_centre * trunk_axis + 0.01 * s * f_t
    joints["head"] = head_c
    head_frame = _frame(fwd0)

    # arms: swing opposite to the same-side hip, elbow flexes more in forward swing
    hip_mean = float(np.mean(curves.hip(np.linspace(0, 1, 64, endpoint=False))))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        p = phases[side]
        flex = -gait.arm_swing * (float(curves.hip(p)) - hip_mean)
        elbow_flex = 14.0 + 0.9 * max(0.0, flex) + 4.0 * np.cos(2 * np.pi * p)
        down = -trunk_axis
        abd = rot_axis(f_t, sign * np.radians(gait.arm_abduction_deg))  # away from the body
        # a negative rotation about ``left`` swings a downward limb forward
        upper = rot_axis(l_t, -np.radians(flex)) @ (abd @ down)
        fore = rot_axis(l_t, -np.radians(flex + elbow_flex)) @ (abd @ down)
        sh = joints[f"{side}_shoulder"]
        el = sh + dims.upper_arm * upper
        wr = el + dims.forearm * fore
        joints[f"{side}_elbow"], joints[f"{side}_wrist"] = el, wr
        vectors[f"{side}_forearm"] = fore
    frames = {"pelvis": pel, "thorax": tho_frame, "head": head_frame, "base": base}
    return Skeleton(joints=joints, frames=frames, vectors=vectors)
