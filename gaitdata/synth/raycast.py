"""Exact ray casting of rounded-cone primitives with a z-buffer, plus shading.

Every body part is a *rounded cone* (the convex hull of two spheres of radii ``ra`` and ``rb``
whose centres lie ``length`` apart) in a local frame whose two cross-section axes may be squashed
by ``k2``/``k3``: this covers spheres and ellipsoids (length 0), tapered limbs (capsules) and
elliptical torso/pelvis sections. Rays are cast only inside each primitive's projected bounding
box; per pixel the nearest hit wins. Ray directions are ``(x, y, 1)`` in camera coordinates, so the
ray parameter of a hit IS its camera z (metres).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gaitdata.records import Intrinsics


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: intrinsics plus the world -> camera transform p_cam = R @ p_world + t."""

    intrinsics: Intrinsics
    R: np.ndarray
    t: np.ndarray

    @property
    def width(self) -> int:
        return self.intrinsics.width

    @property
    def height(self) -> int:
        return self.intrinsics.height

    def to_cam(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=np.float64) @ self.R.T + self.t

    def project(self, p_cam: np.ndarray) -> np.ndarray:
        """Camera coordinates (..., 3) -> pixel coordinates (..., 2), COCO convention (centre of pixel i is i + 0.5)."""
        k = self.intrinsics
        p = np.asarray(p_cam, dtype=np.float64)
        z = p[..., 2]
        return np.stack([k.fx * p[..., 0] / z + k.cx + 0.5, k.fy * p[..., 1] / z + k.cy + 0.5], axis=-1)

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalised ray coordinates of pixel centres: x (W,), y (H,) with direction (x, y, 1)."""
        k = self.intrinsics
        return (np.arange(k.width) - k.cx) / k.fx, (np.arange(k.height) - k.cy) / k.fy


@dataclass(frozen=True)
class Material:
    """Surface colour (RGB 0..1) with optional bands and a face/hair painter; ``spec`` = specular strength."""

    colour: tuple[float, float, float]
    spec: float = 0.08
    shininess: float = 24.0
    bands: tuple[
        tuple[str, float, float, tuple[float, float, float]], ...
    ] = ()  # (coordinate, lo, hi, colour)
    face: dict | None = None  # head painter parameters (see body.py)


@dataclass(frozen=True)
class Prim:
    """A rounded cone in world coordinates (see the module docstring)."""

    a: np.ndarray  # (3,) centre of the first sphere
    E: np.ndarray  # (3, 3) columns: axis (towards b), cross-section axis 2, cross-section axis 3
    length: float
    ra: float
    rb: float
    k2: float = 1.0
    k3: float = 1.0
    material: Material = field(default_factory=lambda: Material((0.5, 0.5, 0.5)))
    part: str = ""
    person: int = 0
    clip: str | None = None  # "hair": keep only the hair region of a shell (length 0 only)
    clip_param: float = 0.0


@dataclass
class Buffers:
    """Per-camera render targets. ``normal``/``albedo`` are None for depth-only renders."""

    z: np.ndarray  # (H, W) float64 camera z in metres (inf = nothing)
    ids: np.ndarray  # (H, W) int16 primitive index, -1 = background
    normal: np.ndarray | None = None  # (H, W, 3) camera-space unit normals
    albedo: np.ndarray | None = None  # (H, W, 3) float32
    spec: np.ndarray | None = None  # (H, W) float32
    box: list[int] = field(default_factory=lambda: [1 << 30, 1 << 30, -1, -1])  # y0, x0, y1, x1 drawn


def _bbox(cam: Camera, prim_c: tuple, margin: int = 1) -> tuple[int, int, int, int] | None:
    a_c, E_c, L, ra, rb, k2, k3 = prim_c
    grow = max(1.0, k2, k3)
    pts = []
    for c, r in ((a_c, ra * grow), (a_c + E_c[:, 0] * L, rb * grow)):
        corners = c + r * np.array(
            [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64
        )
        pts.append(corners)
    p = np.concatenate(pts)
    if np.any(p[:, 2] <= 1e-3):
        if np.all(p[:, 2] <= 1e-3):
            return None
        k = cam.intrinsics
        return 0, 0, k.height, k.width  # straddles the camera plane: cast everywhere
    k = cam.intrinsics
    u = k.fx * p[:, 0] / p[:, 2] + k.cx
    v = k.fy * p[:, 1] / p[:, 2] + k.cy
    x0 = max(int(np.floor(u.min())) - margin, 0)
    x1 = min(int(np.ceil(u.max())) + margin + 1, k.width)
    y0 = max(int(np.floor(v.min())) - margin, 0)
    y1 = min(int(np.ceil(v.max())) + margin + 1, k.height)
    if x0 >= x1 or y0 >= y1:
        return None
    return y0, x0, y1, x1


def _hair_keep(q: tuple[np.ndarray, np.ndarray, np.ndarray], r: float, long_hair: float) -> np.ndarray:
    """Hair region of a head-shaped shell; local axes (up, left, forward), normalised by the radius."""
    up, fw = q[0] / r, q[2] / r
    thr = np.where(fw >= 0, 0.30 + 0.22 * fw, 0.30 + (0.62 + long_hair) * fw)
    return up > thr


def cast(
    cam: Camera, prims: list[Prim], buf: Buffers, shade: bool, rays: tuple[np.ndarray, np.ndarray]
) -> None:
    """Cast every primitive into ``buf`` (nearest hit wins)."""
    xs, ys = rays
    for idx, prim in enumerate(prims):
        a_c = cam.R @ prim.a + cam.t
        E_c = cam.R @ prim.E
        pc = (a_c, E_c, prim.length, prim.ra, prim.rb, prim.k2, prim.k3)
        box = _bbox(cam, pc)
        if box is None:
            continue
        y0, x0, y1, x1 = box
        scale = np.array([1.0, 1.0 / prim.k2, 1.0 / prim.k3])
        A = scale[:, None] * E_c.T  # camera -> local (linear part)
        o = -(A @ a_c)
        X = xs[x0:x1][None, :]
        Y = ys[y0:y1][:, None]
        D = [A[i, 0] * X + A[i, 1] * Y + A[i, 2] for i in range(3)]
        t, comp = _intersect(o, D, prim)
        zwin = buf.z[y0:y1, x0:x1]
        hit = t < zwin
        if not hit.any():
            continue
        zwin[hit] = t[hit]
        buf.ids[y0:y1, x0:x1][hit] = idx
        b = buf.box
        b[0], b[1], b[2], b[3] = min(b[0], y0), min(b[1], x0), max(b[2], y1), max(b[3], x1)
        if not shade:
            continue
        th = t[hit]
        Dh = [d if d.shape == hit.shape else np.broadcast_to(d, hit.shape) for d in D]
        q = [o[i] + th * Dh[i][hit] for i in range(3)]
        c = comp[hit]
        L = prim.length
        n0, n1, n2 = q[0].copy(), q[1].copy(), q[2].copy()
        if L > 0:
            on_b = c == 1
            n0[on_b] -= L
            on_cone = c == 2
            if on_cone.any():
                sn = (prim.ra - prim.rb) / L
                cs = np.sqrt(max(1.0 - sn * sn, 0.0))
                rho = np.hypot(q[1][on_cone], q[2][on_cone]) + 1e-12
                n0[on_cone] = sn
                n1[on_cone] = cs * q[1][on_cone] / rho
                n2[on_cone] = cs * q[2][on_cone] / rho
        inner = c == 3  # inside of a clipped shell
        if inner.any():
            n0[inner], n1[inner], n2[inner] = -n0[inner], -n1[inner], -n2[inner]
        nl = np.stack([n0 * scale[0], n1 * scale[1], n2 * scale[2]], axis=-1)
        nc = nl @ E_c.T
        nc /= np.linalg.norm(nc, axis=-1, keepdims=True) + 1e-12
        buf.normal[y0:y1, x0:x1][hit] = nc
        alb, spec = _albedo(prim, q, c, th, X, Y, hit, cam)
        buf.albedo[y0:y1, x0:x1][hit] = alb
        buf.spec[y0:y1, x0:x1][hit] = spec


def _intersect(o: np.ndarray, D: list[np.ndarray], prim: Prim) -> tuple[np.ndarray, np.ndarray]:
    """Nearest positive ray parameter per pixel (inf = miss) and which surface was hit.

    comp: 0 sphere a, 1 sphere b, 2 cone, 3 inner side of a clipped shell.
    """
    D0, D1, D2 = D
    shape = np.broadcast_shapes(D0.shape, D1.shape, D2.shape)
    dd = D0 * D0 + D1 * D1 + D2 * D2
    od = o[0] * D0 + o[1] * D1 + o[2] * D2
    oo = float(o @ o)
    ra, rb, L = prim.ra, prim.rb, prim.length
    with np.errstate(invalid="ignore", divide="ignore"):
        disc = od * od - dd * (oo - ra * ra)
        sq = np.sqrt(np.maximum(disc, 0.0))
        t = np.where(disc >= 0, (-od - sq) / dd, np.inf)
        t = np.broadcast_to(t, shape).copy()
        comp = np.zeros(shape, dtype=np.int8)
        if prim.clip == "hair":
            far = np.where(disc >= 0, (-od + sq) / dd, np.inf)
            qn = [o[i] + t * D[i] for i in range(3)]
            keep = _hair_keep(qn, ra, prim.clip_param)
            qf = [o[i] + far * D[i] for i in range(3)]
            keep_far = _hair_keep(qf, ra, prim.clip_param)
            t = np.where(keep, t, np.where(keep_far, far, np.inf))
            comp = np.where(keep, 0, 3).astype(np.int8)
        if L > 0:
            odb = od - L * D0
            oob = oo - 2.0 * L * o[0] + L * L
            disc = odb * odb - dd * (oob - rb * rb)
            tb = np.where(disc >= 0, (-odb - np.sqrt(np.maximum(disc, 0.0))) / dd, np.inf)
            better = tb < t
            t = np.where(better, tb, t)
            comp[better] = 1
            sn = (ra - rb) / L
            cs2 = 1.0 - sn * sn
            os_, ds = o[0], D0
            k = ra - os_ * sn
            A2 = cs2 * (dd - ds * ds) - sn * sn * ds * ds
            B2 = cs2 * (od - os_ * ds) + k * ds * sn
            C2 = cs2 * (oo - os_ * os_) - k * k
            disc = B2 * B2 - A2 * C2
            sq = np.sqrt(np.maximum(disc, 0.0))
            lo, hi = ra * sn, L + rb * sn
            for sgn in (-1.0, 1.0):
                r = (-B2 + sgn * sq) / A2
                s = os_ + r * ds
                ok = (disc >= 0) & (r > 0) & (s >= lo) & (s <= hi) & (k - r * ds * sn > 0)
                rc = np.where(ok, r, np.inf)
                better = rc < t
                t = np.where(better, rc, t)
                comp[better] = 2
        t[~(t > 0)] = np.inf
    return t, comp


def _albedo(
    prim: Prim, q: list[np.ndarray], comp: np.ndarray, th: np.ndarray, X: np.ndarray, Y: np.ndarray,
    hit: np.ndarray, cam: Camera,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    m = prim.material
    n = len(th)
    col = np.empty((n, 3), dtype=np.float32)
    col[:] = m.colour
    spec = np.full(n, m.spec, dtype=np.float32)
    for coord, lo, hi, colour in m.bands:
        if coord == "axial":  # fraction along the axis (0 at a, 1 at b)
            v = q[0] / max(prim.length, 1e-9)
        elif coord == "axial_m":  # metres along the axis
            v = q[0]
        elif coord == "up2":  # normalised cross-section axis 2
            v = q[1] / (np.maximum(prim.ra, prim.rb))
        elif coord == "up3":
            v = q[2] / (np.maximum(prim.ra, prim.rb))
        else:
            raise ValueError(f"unknown band coordinate {coord!r}")
        sel = (v >= lo) & (v < hi)
        col[sel] = colour
    if m.face is not None:
        _paint_face(m.face, th, X, Y, hit, cam, col, spec)
    if prim.clip == "hair":
        col *= np.where(comp == 3, 0.55, 1.0)[:, None].astype(np.float32)
    return col, spec


def _paint_face(
    face: dict, th: np.ndarray, X: np.ndarray, Y: np.ndarray, hit: np.ndarray, cam: Camera,
    col: np.ndarray, spec: np.ndarray,
) -> None:  # fmt: skip
    """Eyes (sclera, iris, pupil), brows, mouth, nostril shade and hairline on a head-shaped surface."""
    Xh = np.broadcast_to(X, hit.shape)[hit]
    Yh = np.broadcast_to(Y, hit.shape)[hit]
    p = np.stack([Xh * th, Yh * th, th], axis=-1)  # camera coordinates of the hits
    pw = (p - cam.t) @ cam.R  # world
    rel = (pw - face["centre"]) @ face["frame"]  # (left, up, forward) metres in the head frame
    r = face["radii"]  # left, up, forward
    y, z = rel[:, 1] / r[1], rel[:, 2] / r[2]
    front = z > 0.2
    # hair on the skull (the hair shell adds volume); hairline a little above the brows
    thr = np.where(z >= 0, 0.30 + 0.22 * z, 0.30 + (0.62 + face["long_hair"]) * z)
    hair = (y > thr + 0.03) & face["has_hair"]
    col[hair] = face["hair"]
    spec[hair] = 0.15
    for ex in (-face["eye_x"], face["eye_x"]):
        dx = (rel[:, 0] - ex * r[0]) / face["eye_w"]
        dy = (rel[:, 1] - face["eye_y"] * r[1]) / face["eye_h"]
        d2 = dx * dx + dy * dy
        eye = front & (d2 < 1.0)
        col[eye] = (0.93, 0.92, 0.90)
        ri = np.hypot(dx * face["eye_w"], (rel[:, 1] - face["eye_y"] * r[1]))
        iris = eye & (ri < face["iris"])
        col[iris] = face["iris_col"]
        pupil = eye & (ri < face["iris"] * 0.45)
        col[pupil] = (0.03, 0.03, 0.03)
        spec[eye] = 0.4
        bx = (rel[:, 0] - ex * r[0]) / (face["eye_w"] * 1.25)
        by = (rel[:, 1] - (face["eye_y"] * r[1] + face["eye_h"] * 2.0)) / (face["eye_h"] * 0.55)
        brow = front & (bx * bx + by * by < 1.0)
        col[brow] = face["brow"]
    mx = rel[:, 0] / face["mouth_w"]
    my = (rel[:, 1] - face["mouth_y"] * r[1]) / face["mouth_h"]
    mouth = front & (mx * mx + my * my < 1.0)
    col[mouth] = face["lips"]


def shade(
    cam: Camera, buf: Buffers, image: np.ndarray, light_dir_cam: np.ndarray, up_cam: np.ndarray,
    rays: tuple[np.ndarray, np.ndarray],
) -> None:  # fmt: skip
    """Hemisphere ambient + wrap Lambert + Blinn specular for every drawn pixel, written into ``image`` (uint8)."""
    y0, x0, y1, x1 = buf.box
    if y1 <= y0:
        return
    ids = buf.ids[y0:y1, x0:x1]
    m = ids >= 0
    if not m.any():
        return
    n = buf.normal[y0:y1, x0:x1][m]
    alb = buf.albedo[y0:y1, x0:x1][m]
    sp = buf.spec[y0:y1, x0:x1][m]
    xs, ys = rays
    X = np.broadcast_to(xs[x0:x1][None, :], m.shape)[m]
    Y = np.broadcast_to(ys[y0:y1][:, None], m.shape)[m]
    v = -np.stack([X, Y, np.ones_like(X)], axis=-1)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    up = n @ up_cam
    hemi = 0.5 + 0.5 * up
    sky, ground = np.array([0.42, 0.44, 0.48]), np.array([0.22, 0.20, 0.18])
    amb = ground[None, :] * (1 - hemi[:, None]) + sky[None, :] * hemi[:, None]
    ndl = n @ light_dir_cam
    wrap = 0.35
    lam = np.clip((ndl + wrap) / (1 + wrap), 0, 1)
    h = light_dir_cam[None, :] + v
    h /= np.linalg.norm(h, axis=-1, keepdims=True)
    spec = sp * np.clip((n * h).sum(-1), 0, 1) ** 24 * (ndl > 0)
    light = np.array([0.95, 0.92, 0.86])
    rgb = alb * (amb + 0.78 * lam[:, None] * light[None, :]) * 1.25 + spec[:, None] * 0.9
    out = image[y0:y1, x0:x1]
    out[m] = np.clip(rgb * 255.0, 0, 255).astype(np.uint8)
