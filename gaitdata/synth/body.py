"""The walker's body: seeded appearance, body volumes (primitives) and COCO-17 keypoints with visibility."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gaitdata.synth.gait import SHOE_R_HEEL, SHOE_R_TOE, SHOE_SQUASH, BodyDims, Skeleton
from gaitdata.synth.raycast import Buffers, Material, Prim

RGB = tuple[float, float, float]


def _rgb(h: str) -> RGB:
    return (int(h[0:2], 16) / 255.0, int(h[2:4], 16) / 255.0, int(h[4:6], 16) / 255.0)


SKIN = tuple(_rgb(h) for h in ("f1c8a8", "e3b08c", "d09b76", "b67f5a", "9a6646", "7a4d33", "5c3a27"))
SHIRT = tuple(
    _rgb(h)
    for h in (
        "2f5d9e",
        "b0302c",
        "3c7d45",
        "e0e0e0",
        "d9a441",
        "5a3f7a",
        "1f1f24",
        "cc6a2c",
        "3b8c9c",
        "8c8c8c",
    )
)
TROUSERS = tuple(_rgb(h) for h in ("27354f", "1d1d21", "6b5b45", "4a4f57", "34465e", "5e4634"))
SHOES = tuple(_rgb(h) for h in ("eeeeee", "161616", "5a3a22", "7a1d1d", "2c3e66"))
HAIR = tuple(_rgb(h) for h in ("1a1410", "3b2717", "6b4a2b", "b08a4c", "8f8f8f"))
IRIS = tuple(_rgb(h) for h in ("3a2a1a", "4d6b8a", "5a6b3a"))


@dataclass(frozen=True)
class Appearance:
    """How one subject looks; ``Appearance.from_seed`` draws a plausible person."""

    height: float = 1.75
    girth: float = 1.0
    skin: RGB = SKIN[1]
    shirt: RGB = SHIRT[0]
    trousers: RGB = TROUSERS[0]
    shoes: RGB = SHOES[0]
    sole: RGB = (0.85, 0.85, 0.82)
    belt: RGB = (0.12, 0.09, 0.07)
    hair: RGB = HAIR[0]
    iris: RGB = IRIS[0]
    long_hair: float = 0.0  # 0 short ... 0.6 long at the back

    @classmethod
    def from_seed(cls, seed: int) -> Appearance:
        rng = np.random.default_rng([seed, 0x6A17])
        shirt = SHIRT[rng.integers(len(SHIRT))]
        trousers = TROUSERS[rng.integers(len(TROUSERS))]
        if np.abs(np.subtract(shirt, trousers)).sum() < 0.25:  # keep shirt and trousers apart
            trousers = TROUSERS[(TROUSERS.index(trousers) + 2) % len(TROUSERS)]
        shoes = SHOES[rng.integers(len(SHOES))]
        sole = (0.85, 0.85, 0.82) if np.mean(shoes) < 0.5 else (0.20, 0.20, 0.20)
        skin = SKIN[rng.integers(len(SKIN))]
        jitter = rng.uniform(-0.03, 0.03, 3)
        skin = tuple(float(np.clip(c + j, 0, 1)) for c, j in zip(skin, jitter, strict=True))
        return cls(
            height=float(np.clip(rng.normal(1.73, 0.08), 1.55, 1.92)),
            girth=float(rng.uniform(0.92, 1.12)),
            skin=skin, shirt=shirt, trousers=trousers, shoes=shoes, sole=sole,
            hair=HAIR[rng.integers(len(HAIR))], iris=IRIS[rng.integers(len(IRIS))],
            long_hair=float(rng.choice([0.0, 0.0, 0.3, 0.6])),
        )  # fmt: skip

    @property
    def dims(self) -> BodyDims:
        return BodyDims(height=self.height, girth=self.girth)


# head geometry for a 1.75 m walker (metres): radii (left, up, forward)
HEAD_RADII = np.array([0.078, 0.112, 0.096])
EYE_X, EYE_Y = 0.40, 0.18  # eye centres as fractions of the head radii


def _perp_frame(axis: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Columns: unit ``axis``, unit vector nearest ``hint`` perpendicular to it, their cross product."""
    a = axis / np.linalg.norm(axis)
    h = hint - a * hint.dot(a)
    nh = np.linalg.norm(h)
    if nh < 1e-9:
        h = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(h) < 1e-9:
            h = np.cross(a, [0.0, 0.0, 1.0])
        nh = np.linalg.norm(h)
    h = h / nh
    return np.stack([a, h, np.cross(a, h)], axis=1)


def _cone(a, b, ra, rb, mat, part, person, hint, k2=1.0, k3=1.0) -> Prim:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = b - a
    length = float(np.linalg.norm(d))
    E = _perp_frame(d if length > 1e-9 else np.array([0.0, 1.0, 0.0]), np.asarray(hint, dtype=np.float64))
    return Prim(
        a=a,
        E=E,
        length=length,
        ra=float(ra),
        rb=float(rb),
        k2=k2,
        k3=k3,
        material=mat,
        part=part,
        person=person,
    )


def _ellipsoid(c, frame_cols, radii, mat, part, person, clip=None, clip_param=0.0) -> Prim:
    """``frame_cols``: 3x3 columns (axis1, axis2, axis3); ``radii`` along them."""
    r = np.asarray(radii, dtype=np.float64)
    return Prim(
        a=np.asarray(c, dtype=np.float64), E=np.asarray(frame_cols, dtype=np.float64), length=0.0,
        ra=float(r[0]), rb=float(r[0]), k2=float(r[1] / r[0]), k3=float(r[2] / r[0]),
        material=mat, part=part, person=person, clip=clip, clip_param=clip_param,
    )  # fmt: skip


def head_points(skel: Skeleton, dims: BodyDims) -> dict[str, np.ndarray]:
    """Face keypoints on the head surface (world): nose tip, eye centres, outer ear points."""
    s = dims.s
    c = skel.joints["head"]
    F = skel.frames["head"]  # columns left, up, forward
    r = HEAD_RADII * s
    out = {"nose": c + F @ (np.array([0.0, -0.028, 0.121]) * s)}
    zf = np.sqrt(1 - EYE_X**2 - EYE_Y**2)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        out[f"{side}_eye"] = c + F @ (np.array([sign * EYE_X, EYE_Y, zf]) * r)
        out[f"{side}_ear"] = c + F @ (np.array([sign * 0.091, -0.004, -0.010]) * s)
    return out


def body_prims(skel: Skeleton, app: Appearance, person: int = 0) -> list[Prim]:
    """Shaded volumes of a clothed person at the skeleton's pose."""
    dims = app.dims
    s, g = dims.s, app.girth
    J = skel.joints
    pel, tho, head = skel.frames["pelvis"], skel.frames["thorax"], skel.frames["head"]
    skin = Material(app.skin, spec=0.10)
    shirt = Material(app.shirt, spec=0.05)
    trousers = Material(app.trousers, spec=0.04)
    shoes = Material(app.shoes, spec=0.25, bands=(("up3", -9.0, -0.50, app.sole),))
    out: list[Prim] = []
    up_t = tho[:, 1]
    l_t, f_t = tho[:, 0], tho[:, 2]
    l_p, f_p = pel[:, 0], pel[:, 2]
    # pelvis (trousers) as a lateral rounded cone between the hip joints
    lift = 0.025 * s * np.array([0.0, 1.0, 0.0])
    out.append(_cone(J["right_hip"] + lift, J["left_hip"] + lift, 0.100 * s * g, 0.100 * s * g, trousers, "pelvis",
                     person, f_p, k2=0.95, k3=1.0))  # fmt: skip
    # torso: waist to chest, elliptical section; trousers below the waist, a belt, then the shirt
    torso_mat = Material(
        app.shirt,
        spec=0.05,
        bands=(("axial_m", -9.0, 0.0, app.trousers), ("axial_m", 0.0, 0.035 * s, app.belt)),
    )
    out.append(_cone(J["pelvis"] + 0.085 * s * up_t, J["pelvis"] + 0.37 * s * up_t, 0.142 * s * g, 0.163 * s * g, torso_mat,
                     "torso", person, f_t, k2=0.62, k3=1.0))  # fmt: skip
    # shoulder girdle: a lateral rounded cone through both shoulder joints (squashed front to back)
    out.append(_cone(J["right_shoulder"] - 0.012 * s * up_t, J["left_shoulder"] - 0.012 * s * up_t, 0.056 * s * g,
                     0.056 * s * g, shirt, "girdle", person, up_t, k2=1.0, k3=0.85))  # fmt: skip
    # neck and head
    out.append(_cone(J["neck"] - 0.03 * s * up_t, J["head"] - 0.06 * s * head[:, 1], 0.056 * s * g, 0.05 * s * g, skin,
                     "neck", person, f_t))  # fmt: skip
    r = HEAD_RADII * s
    face = {
        "centre": J["head"], "frame": head, "radii": r, "eye_x": EYE_X, "eye_y": EYE_Y,
        "eye_w": 0.0135 * s, "eye_h": 0.0072 * s, "iris": 0.0062 * s, "iris_col": app.iris,
        "brow": tuple(0.7 * c for c in app.hair), "mouth_w": 0.022 * s, "mouth_h": 0.0062 * s, "mouth_y": -0.52,
        "lips": tuple(float(np.clip(c * f, 0, 1)) for c, f in zip(app.skin, (0.80, 0.52, 0.52), strict=True)),
        "hair": app.hair, "long_hair": app.long_hair, "has_hair": True,
    }  # fmt: skip
    head_mat = Material(app.skin, spec=0.12, face=face)
    upf = head[:, [1, 0, 2]]  # up, left, forward
    out.append(_ellipsoid(J["head"], upf, (r[1], r[0], r[2]), head_mat, "head", person))
    jaw_c = J["head"] + head @ (np.array([0.0, -0.055, 0.026]) * s)
    out.append(_ellipsoid(jaw_c, upf, (0.048 * s, 0.058 * s, 0.062 * s), head_mat, "jaw", person))
    nose_mat = Material(
        tuple(float(c * f) for c, f in zip(app.skin, (1.0, 0.93, 0.90), strict=True)), spec=0.2
    )
    out.append(_cone(J["head"] + head @ (np.array([0.0, 0.004, 0.080]) * s), J["head"] + head @ (np.array([0.0, -0.028, 0.109]) * s),
                     0.0095 * s, 0.012 * s, nose_mat, "nose", person, head[:, 1]))  # fmt: skip
    for side, sign in (("left", 1.0), ("right", -1.0)):
        ear_c = J["head"] + head @ (np.array([sign * 0.079, -0.004, -0.010]) * s)
        out.append(_ellipsoid(ear_c, upf, (0.030 * s, 0.012 * s, 0.020 * s), skin, f"ear_{side}", person))
    hair_mat = Material(app.hair, spec=0.15)
    hc = J["head"] + head @ (np.array([0.0, 0.012, -0.010]) * s)
    out.append(_ellipsoid(hc, upf, (r[1] * 1.09, r[0] * 1.10, r[2] * 1.10), hair_mat, "hair", person, clip="hair",
                          clip_param=app.long_hair))  # fmt: skip
    # arms
    for side, sign in (("left", 1.0), ("right", -1.0)):
        sh, el, wr = J[f"{side}_shoulder"], J[f"{side}_elbow"], J[f"{side}_wrist"]
        out.append(_cone(sh, sh, 0.054 * s * g, 0.054 * s * g, shirt, f"shoulder_{side}", person, f_t))
        out.append(_cone(sh, el, 0.050 * s * g, 0.041 * s * g, shirt, f"upperarm_{side}", person, f_t))
        out.append(_cone(el, wr, 0.037 * s * g, 0.027 * s * g, skin, f"forearm_{side}", person, f_t))
        fore = skel.vectors[f"{side}_forearm"]
        hand_end = wr + 0.085 * s * fore
        out.append(
            _cone(wr, hand_end, 0.031 * s, 0.026 * s, skin, f"hand_{side}", person, f_t, k2=1.0, k3=0.55)
        )
        del sign
    # legs
    for side in ("left", "right"):
        hip, kn, an = J[f"{side}_hip"], J[f"{side}_knee"], J[f"{side}_ankle"]
        out.append(_cone(hip, kn, 0.080 * s * g, 0.054 * s * g, trousers, f"thigh_{side}", person, f_p))
        out.append(_cone(kn, an, 0.053 * s * g, 0.038 * s * g, trousers, f"shank_{side}", person, f_p))
        foot_up = skel.vectors[f"{side}_foot_up"]
        out.append(_cone(J[f"{side}_heel_c"], J[f"{side}_toe_c"], SHOE_R_HEEL * s, SHOE_R_TOE * s, shoes,
                         f"shoe_{side}", person, l_p, k2=1.0, k3=SHOE_SQUASH))  # fmt: skip
        # frame check: the shoe's third axis should be its "up" (for the sole band)
        p = out[-1]
        if p.E[:, 2].dot(foot_up) < 0:
            E = p.E.copy()
            E[:, 1], E[:, 2] = -E[:, 1], -E[:, 2]
            out[-1] = Prim(a=p.a, E=E, length=p.length, ra=p.ra, rb=p.rb, k2=p.k2, k3=p.k3, material=p.material,
                           part=p.part, person=p.person)  # fmt: skip
    del l_t, l_p
    return out


COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)  # fmt: skip

# parts that count as "the joint itself" for visibility, and the depth tolerance (joint radius + 2 cm)
_OWN_PARTS: dict[str, tuple[str, ...]] = {
    "nose": ("nose",), "left_eye": (), "right_eye": (), "left_ear": ("ear_left",), "right_ear": ("ear_right",),
}  # fmt: skip
_TOL: dict[str, float] = {"nose": 0.02, "eye": 0.015, "ear": 0.02, "shoulder": 0.08, "elbow": 0.065, "wrist": 0.055,
                          "hip": 0.14, "knee": 0.08, "ankle": 0.065}  # fmt: skip
for _side in ("left", "right"):
    _OWN_PARTS[f"{_side}_shoulder"] = (f"shoulder_{_side}", f"upperarm_{_side}")
    _OWN_PARTS[f"{_side}_elbow"] = (f"upperarm_{_side}", f"forearm_{_side}")
    _OWN_PARTS[f"{_side}_wrist"] = (f"forearm_{_side}", f"hand_{_side}")
    _OWN_PARTS[f"{_side}_hip"] = (f"thigh_{_side}",)
    _OWN_PARTS[f"{_side}_knee"] = (f"thigh_{_side}", f"shank_{_side}")
    _OWN_PARTS[f"{_side}_ankle"] = (f"shank_{_side}", f"shoe_{_side}")


def coco_joints_world(skel: Skeleton, app: Appearance) -> np.ndarray:
    """(17, 3) COCO-17 keypoints in world metres (joint centres; face points on the surface)."""
    pts = dict(skel.joints)
    pts.update(head_points(skel, app.dims))
    return np.stack([pts[n] for n in COCO_JOINTS])


def visibility(
    uv: np.ndarray, z: np.ndarray, buf: Buffers, prims: list[Prim], person: int, width: int, height: int,
) -> np.ndarray:  # fmt: skip
    """COCO v per joint: 0 outside the image (or behind the camera), 2 seen, 1 hidden.

    Seen: the z-buffer at the keypoint's pixel is within the joint's radius + 2 cm of the joint, or
    the pixel shows one of that joint's own parts of the same person.
    """
    v = np.zeros(len(COCO_JOINTS), dtype=np.int64)
    for j, name in enumerate(COCO_JOINTS):
        x, y = uv[j]
        if not (z[j] > 0 and 0 <= x < width and 0 <= y < height):
            continue
        px, py = int(x), int(y)
        kind = name.split("_")[-1]
        tol = _TOL[kind]
        zb = buf.z[py, px]
        pid = int(buf.ids[py, px])
        own = pid >= 0 and prims[pid].person == person and prims[pid].part in _OWN_PARTS[name]
        v[j] = 2 if (own or zb >= z[j] - tol) else 1
    return v
