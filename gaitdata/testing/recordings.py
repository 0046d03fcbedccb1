"""Small synthetic RGB-D recordings with analytically known geometry, for tests and benchmarks.

The depth camera looks at a tilted plane; colour is a textured image. Because the plane is known,
the depth registered to any colour pixel can be computed exactly (:func:`expected_registered_depth`),
independently of :mod:`gaitdata.align`.
"""

from __future__ import annotations

import numpy as np

from gaitdata.containers.data import RecordingData
from gaitdata.records import Extrinsics, Intrinsics

DEPTH_SCALE = 0.0010000000474974513


def _rot_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def plane_recording(
    n: int = 10,
    size: tuple[int, int] = (160, 120),
    depth_size: tuple[int, int] = (128, 96),
    fps: float = 30.0,
    *,
    drop_colour: tuple[int, ...] = (),
    drop_depth: tuple[int, ...] = (),
    offset_ms: float = 0.0,
    jitter_ms: float = 0.0,
    noise_units: int = 0,
    with_depth: bool = True,
    plane_normal: tuple[float, float, float] = (0.25, -0.15, 1.0),
    plane_distance_m: float = 1.5,
    t0_ms: float = 1000.0,
    seed: int = 0,
    name: str = "plane",
) -> RecordingData:
    """``n`` frame slots; ``drop_*`` remove slots from a stream (frame numbers keep the gap)."""
    rng = np.random.default_rng(seed)
    w, h = size
    dw, dh = depth_size
    ci = Intrinsics(w, h, fx=0.9 * w, fy=0.9 * w, cx=w / 2 - 0.3, cy=h / 2 + 0.2)
    di = Intrinsics(dw, dh, fx=0.75 * dw, fy=0.75 * dw, cx=dw / 2 + 0.1, cy=dh / 2 - 0.4)
    ext = Extrinsics(rotation=tuple(_rot_y(1.5).reshape(-1)), translation=(0.015, 0.001, -0.002))
    slots = np.arange(n)
    jitter = rng.uniform(-jitter_ms, jitter_ms, size=(2, n)) if jitter_ms else np.zeros((2, n))
    period = 1000.0 / fps
    keep_c = np.array([i for i in slots if i not in set(drop_colour)], dtype=np.int64)
    keep_d = np.array([i for i in slots if i not in set(drop_depth)], dtype=np.int64)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in keep_c:  # a moving checkerboard with a gradient and noise: JPEG-realistic texture
        cb = (((xx + 3 * i) // 8 + yy // 8) % 2).astype(np.float32)
        img = np.stack(
            [cb * 180 + xx * 60 / w, (1 - cb) * 150 + yy * 80 / h, 90 + 40 * np.sin(xx / 7.0 + i)], -1
        )
        img += rng.normal(0, 4, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    depth = None
    if with_depth:
        z = plane_depth(di, plane_normal, plane_distance_m)
        depth = []
        for _ in keep_d:
            d = np.round(z / DEPTH_SCALE).astype(np.int64)
            if noise_units:
                d = d + rng.integers(-noise_units, noise_units + 1, size=d.shape)
            depth.append(np.clip(d, 0, 65535).astype(np.uint16))
        depth = np.stack(depth)
    return RecordingData(
        name=name, fps=fps, colour=np.stack(frames), colour_ts_ms=t0_ms + keep_c * period + jitter[0, keep_c],
        colour_frame_numbers=keep_c + 1, colour_intrinsics=ci,
        depth=depth, depth_ts_ms=t0_ms + offset_ms + keep_d * period + jitter[1, keep_d] if with_depth else None,
        depth_frame_numbers=keep_d + 1 if with_depth else None, depth_intrinsics=di if with_depth else None,
        depth_to_colour=ext, depth_scale=DEPTH_SCALE,
        meta={"plane_normal": plane_normal, "plane_distance_m": plane_distance_m, "noise_units": noise_units},
    )  # fmt: skip


def plane_depth(intr: Intrinsics, normal, distance_m: float) -> np.ndarray:
    """Z (metres) of the plane n.p = d seen through ``intr`` at every pixel centre."""
    n = np.asarray(normal, dtype=np.float64)
    yy, xx = np.mgrid[0 : intr.height, 0 : intr.width].astype(np.float64)
    rays = np.stack([(xx - intr.cx) / intr.fx, (yy - intr.cy) / intr.fy, np.ones_like(xx)], -1)
    return distance_m / (rays @ n)


def expected_registered_depth(rec: RecordingData) -> np.ndarray:
    """Depth-camera Z (raw units, float) of the plane point seen at every colour pixel centre.

    ``rs.align`` keeps the depth camera's values, so this is what registration must produce
    (up to the depth pixel footprint and the injected noise).
    """
    n = np.asarray(rec.meta["plane_normal"], dtype=np.float64)
    d = float(rec.meta["plane_distance_m"])
    r, t = rec.depth_to_colour.R, rec.depth_to_colour.t
    n_c = r @ n
    d_c = d + n_c @ t  # plane in colour coordinates: n_c . p_c = d_c
    ci = rec.colour_intrinsics
    yy, xx = np.mgrid[0 : ci.height, 0 : ci.width].astype(np.float64)
    rays = np.stack([(xx - ci.cx) / ci.fx, (yy - ci.cy) / ci.fy, np.ones_like(xx)], -1)
    p_c = rays * (d_c / (rays @ n_c))[..., None]
    p_d = (p_c - t) @ r  # R^T (p_c - t), row vectors
    return p_d[..., 2] / rec.depth_scale
