"""Depth -> colour registration with ``rs.align`` semantics, in numpy (float32, like librealsense).

For every depth pixel with a value, its top-left and bottom-right corners are deprojected at the
pixel's depth, moved into the colour camera by the depth->colour extrinsic and projected with the
colour intrinsics in float32; corner pixels are ``int(p + 0.5)`` (truncation), and every colour pixel
of the rectangle that lies inside the image receives the raw depth value, the nearest one winning.
Distortion is handled as pyrealsense2 2.59's align does (measured, see :func:`deproject` and
:func:`project`). The output equals ``rs.align(rs.stream.color)`` bit for bit (tested when
pyrealsense2 is installed). Values stay raw uint16 in the recording's depth units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gaitdata.records import Extrinsics, Intrinsics, check_depth_scale

_F = np.float32
SUPPORTED_MODELS = ("none", "brown_conrady", "inverse_brown_conrady", "modified_brown_conrady")


def deproject(intr: Intrinsics, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel -> normalised ray (x, y) at z = 1 (float32), as librealsense's align deprojects depth pixels.

    Measured against pyrealsense2 2.59: ``inverse_brown_conrady`` depth intrinsics get the one-step
    (forward-formula) correction; every other model is deprojected as pinhole.
    """
    x = (px.astype(_F) - _F(intr.cx)) / _F(intr.fx)
    y = (py.astype(_F) - _F(intr.cy)) / _F(intr.fy)
    if intr.model == "inverse_brown_conrady":
        k = [_F(v) for v in intr.coeffs]
        r2 = x * x + y * y
        f = _F(1) + k[0] * r2 + k[1] * r2 * r2 + k[4] * r2 * r2 * r2
        x, y = (x * f + _F(2) * k[2] * x * y + k[3] * (r2 + _F(2) * x * x),
                y * f + _F(2) * k[3] * x * y + k[2] * (r2 + _F(2) * y * y))  # fmt: skip
    return x, y


def project(intr: Intrinsics, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera point -> pixel (float32), as librealsense's align projects into the target stream.

    Measured against pyrealsense2 2.59: only ``modified_brown_conrady`` target intrinsics are
    distorted; ``brown_conrady`` and ``inverse_brown_conrady`` targets are projected as pinhole.
    """
    x = x / z
    y = y / z
    if intr.model == "modified_brown_conrady":
        k = [_F(v) for v in intr.coeffs]
        r2 = x * x + y * y
        f = _F(1) + k[0] * r2 + k[1] * r2 * r2 + k[4] * r2 * r2 * r2
        x, y = x * f, y * f
        x, y = (x + _F(2) * k[2] * x * y + k[3] * (r2 + _F(2) * x * x),
                y + _F(2) * k[3] * x * y + k[2] * (r2 + _F(2) * y * y))  # fmt: skip
    return x * _F(intr.fx) + _F(intr.cx), y * _F(intr.fy) + _F(intr.cy)


def check_models(depth_intrinsics: Intrinsics, colour_intrinsics: Intrinsics) -> None:
    """ValueError unless both distortion models are ones this registration reproduces."""
    for name, intr in (("depth", depth_intrinsics), ("colour", colour_intrinsics)):
        if intr is None:
            raise ValueError(f"no {name} intrinsics: cannot register depth to colour")
        if intr.model not in SUPPORTED_MODELS:
            raise ValueError(
                f"{name} intrinsics: distortion model {intr.model!r} is not supported for registration "
                f"(supported: {', '.join(SUPPORTED_MODELS)})"
            )


@dataclass
class Aligner:
    """Reusable depth->colour registration for one recording (precomputes the per-pixel rays)."""

    depth_intrinsics: Intrinsics
    colour_intrinsics: Intrinsics
    depth_to_colour: Extrinsics
    depth_scale: float
    _rays: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_models(self.depth_intrinsics, self.colour_intrinsics)
        check_depth_scale(self.depth_scale)
        d = self.depth_intrinsics
        gx, gy = np.meshgrid(np.arange(d.width, dtype=_F), np.arange(d.height, dtype=_F))
        gx, gy = gx.reshape(-1), gy.reshape(-1)
        half = _F(0.5)
        x0, y0 = deproject(d, gx - half, gy - half)
        x1, y1 = deproject(d, gx + half, gy + half)
        self._rays = (x0, y0, x1, y1)

    def __call__(self, depth: np.ndarray) -> np.ndarray:
        return self.align(depth)

    def _corner(self, rx: np.ndarray, ry: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.asarray(self.depth_to_colour.R, dtype=_F)
        t = np.asarray(self.depth_to_colour.t, dtype=_F)
        px, py = z * rx, z * ry
        ox = r[0, 0] * px + r[0, 1] * py + r[0, 2] * z + t[0]
        oy = r[1, 0] * px + r[1, 1] * py + r[1, 2] * z + t[1]
        oz = r[2, 0] * px + r[2, 1] * py + r[2, 2] * z + t[2]
        u, v = project(self.colour_intrinsics, ox, oy, oz)
        with np.errstate(invalid="ignore"):
            return (u + _F(0.5)).astype(np.int64), (v + _F(0.5)).astype(np.int64)  # C cast: truncation

    def align(self, depth: np.ndarray) -> np.ndarray:
        """Register one raw depth image (Hd, Wd) uint16 to the colour frame: (H, W) uint16."""
        d, c = self.depth_intrinsics, self.colour_intrinsics
        if depth.shape != (d.height, d.width):
            raise ValueError(
                f"depth image is {depth.shape[1]}x{depth.shape[0]}, its intrinsics say {d.width}x{d.height}"
            )
        flat = np.ascontiguousarray(depth, dtype=np.uint16).reshape(-1)
        idx = np.flatnonzero(flat)
        empty = np.iinfo(np.uint16).max
        best = np.full(c.height * c.width, empty, dtype=np.uint16)
        if idx.size:
            raw = flat[idx]
            z = raw.astype(_F) * _F(self.depth_scale)
            x0, y0, x1, y1 = (a[idx] for a in self._rays)
            u0, v0 = self._corner(x0, y0, z)
            u1, v1 = self._corner(x1, y1, z)
            w = np.clip(u1 - u0 + 1, 0, c.width).astype(np.int32)
            h = np.clip(v1 - v0 + 1, 0, c.height).astype(np.int32)
            u0, v0 = u0.astype(np.int32), v0.astype(np.int32)
            inside = bool(
                u0.min() >= 0 and v0.min() >= 0 and (u0 + w).max() <= c.width and (v0 + h).max() <= c.height
            )
            rows = np.arange(len(raw))
            for dy in range(int(h.max())):
                if dy:
                    rows = rows[h[rows] > dy]
                for dx in range(int(w.max())):
                    sel = rows if dx == 0 and dy == 0 else rows[w[rows] > dx]
                    x, y, val = u0[sel] + dx, v0[sel] + dy, raw[sel]
                    if dx == 0 and dy == 0:
                        keep = (w[sel] > 0) & (h[sel] > 0)
                        x, y, val = x[keep], y[keep], val[keep]
                    if not inside:
                        m = (x >= 0) & (y >= 0) & (x < c.width) & (y < c.height)
                        x, y, val = x[m], y[m], val[m]
                    if x.size:
                        np.minimum.at(best, y * c.width + x, val)
        best[best == empty] = 0
        return best.reshape(c.height, c.width)


def align_depth_to_colour(depth: np.ndarray, depth_intrinsics: Intrinsics, colour_intrinsics: Intrinsics,
                          depth_to_colour: Extrinsics, depth_scale: float) -> np.ndarray:  # fmt: skip
    """One-off registration; use :class:`Aligner` for many frames of one recording."""
    return Aligner(depth_intrinsics, colour_intrinsics, depth_to_colour, depth_scale).align(depth)
