"""RealSense recording layout shared by the ``.bag`` / ``.db3`` writers and readers.

Topic names follow librealsense's ROS file format (version 3+): one device, the depth stream on
sensor 0 (``Stereo Module``), the colour stream on sensor 1 (``RGB Camera``). Each stream stores
its extrinsics as reference->stream with the depth stream as the reference; rotations in
``rs2_extrinsics`` are column-major, in :class:`gaitdata.records.Extrinsics` row-major.
"""

from __future__ import annotations

import numpy as np

from gaitdata.records import Extrinsics, Intrinsics

DEPTH_PREFIX = "/device_0/sensor_0/Depth_0"
COLOUR_PREFIX = "/device_0/sensor_1/Color_0"
DEPTH_UNITS_TOPIC = "/device_0/sensor_0/option/Depth Units/value"

# librealsense distortion names <-> Intrinsics.model
_MODEL_TO_RS = {
    "none": "None",
    "brown_conrady": "Brown Conrady",
    "inverse_brown_conrady": "Inverse Brown Conrady",
    "modified_brown_conrady": "Modified Brown Conrady",
    "ftheta": "Ftheta",
    "kannala_brandt4": "Kannala Brandt4",
}
_RS_TO_MODEL = {v.lower(): k for k, v in _MODEL_TO_RS.items()}


def model_to_rs(model: str) -> str:
    return _MODEL_TO_RS.get(model.lower(), "None")


def model_from_rs(name: str) -> str:
    key = str(name).strip().lower().replace("distortion.", "").replace("_", " ")
    return _RS_TO_MODEL.get(key, key.replace(" ", "_") or "none")


def rotation_colmajor(ext: Extrinsics) -> list[float]:
    """Row-major 3x3 -> librealsense's column-major 9 floats."""
    return [float(v) for v in ext.R.T.reshape(-1)]


def extrinsics_from_colmajor(
    rotation: list[float] | np.ndarray, translation: list[float] | np.ndarray
) -> Extrinsics:
    r = np.asarray(rotation, dtype=np.float64).reshape(3, 3).T
    return Extrinsics(
        rotation=tuple(r.reshape(-1)), translation=tuple(np.asarray(translation, dtype=np.float64))
    )


def rot_to_quat(r: np.ndarray) -> tuple[float, float, float, float]:
    """Rotation matrix (row-major 3x3) -> quaternion (x, y, z, w), librealsense's formula."""
    w = float(np.sqrt(max(1.0 + r[0, 0] + r[1, 1] + r[2, 2], 1e-12)) / 2)
    x = float((r[2, 1] - r[1, 2]) / (4 * w))
    y = float((r[0, 2] - r[2, 0]) / (4 * w))
    z = float((r[1, 0] - r[0, 1]) / (4 * w))
    return x, y, z, w


def quat_to_rot(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Quaternion -> row-major rotation; keeps the input's precision (pass np.float32 for librealsense's)."""
    return np.array(
        [
            [1 - 2 * y * y - 2 * z * z, 2 * x * y - 2 * z * w, 2 * x * z + 2 * y * w],
            [2 * x * y + 2 * z * w, 1 - 2 * x * x - 2 * z * z, 2 * y * z - 2 * x * w],
            [2 * x * z - 2 * y * w, 2 * y * z + 2 * x * w, 1 - 2 * x * x - 2 * y * y],
        ],
        dtype=np.result_type(x, y, z, w),
    )


def intrinsics_from_k(width: int, height: int, k: list[float] | np.ndarray, model: str, coeffs) -> Intrinsics:
    """Intrinsics from a CameraInfo K; values rounded to float32, as librealsense holds them."""
    k = np.asarray(k, dtype=np.float64).reshape(-1).astype(np.float32).astype(np.float64)
    c = np.asarray((list(coeffs) + [0.0] * 5)[:5], dtype=np.float64).astype(np.float32).astype(np.float64)
    return Intrinsics(
        width=int(width), height=int(height), fx=float(k[0]), fy=float(k[4]), cx=float(k[2]), cy=float(k[5]),
        model=model, coeffs=tuple(float(v) for v in c),
    )  # fmt: skip
