"""Frozen, validated records shared by every stage."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# distortion models (RealSense names) -> how many coefficients each takes (librealsense keeps 5 for all)
DISTORTION_COEFFS: dict[str, tuple[int, ...]] = {
    "none": (0, 5),
    "brown_conrady": (5,),
    "inverse_brown_conrady": (5,),
    "modified_brown_conrady": (5,),
    "ftheta": (5,),
    "kannala_brandt4": (5,),
}


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of one stream (pixels), RealSense conventions for the distortion model."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "none"
    coeffs: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"intrinsics: size must be positive, got {self.width}x{self.height}")
        if not all(math.isfinite(float(v)) for v in (self.fx, self.fy, self.cx, self.cy)):
            raise ValueError(
                f"intrinsics: fx, fy, cx, cy must be finite numbers, got {self.fx}, {self.fy}, {self.cx}, {self.cy}"
            )
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"intrinsics: focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        coeffs = tuple(float(c) for c in self.coeffs)
        counts = DISTORTION_COEFFS.get(self.model)
        if counts is None:
            raise ValueError(
                f"intrinsics: unknown distortion model {self.model!r}; use one of {', '.join(DISTORTION_COEFFS)}"
            )
        if len(coeffs) not in counts:
            raise ValueError(
                f"intrinsics: distortion model {self.model!r} takes {' or '.join(map(str, counts))} coefficients, "
                f"got {len(coeffs)}"
            )
        if not all(math.isfinite(c) for c in coeffs):
            raise ValueError(f"intrinsics: distortion coefficients must be finite, got {list(coeffs)}")
        object.__setattr__(self, "coeffs", coeffs)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def scaled(self, sx: float, sy: float) -> Intrinsics:
        """Intrinsics after resizing the image by (sx, sy)."""
        return Intrinsics(
            width=round(self.width * sx), height=round(self.height * sy),
            fx=self.fx * sx, fy=self.fy * sy, cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5,
            model=self.model, coeffs=self.coeffs,
        )  # fmt: skip

    def to_dict(self) -> dict:
        return asdict(self)


ROTATION_TOL = 1e-3  # float32 files and 6-decimal text keep real rotations well inside this


def check_depth_scale(value: object) -> float:
    """The depth scale (metres per raw unit) as a float; ValueError unless finite and positive."""
    try:
        scale = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"depth scale must be a number of metres per depth unit, got {value!r}") from None
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"depth scale must be a positive number of metres per depth unit (e.g. 0.001), got {value!r}")
    return scale


@dataclass(frozen=True)
class Extrinsics:
    """Rigid transform from one stream's frame to another's: p_to = R @ p_from + t (metres)."""

    rotation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # row-major 3x3
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if len(self.rotation) != 9 or len(self.translation) != 3:
            raise ValueError(
                f"extrinsics: expected 9 rotation and 3 translation values, "
                f"got {len(self.rotation)} and {len(self.translation)}"
            )
        rotation = tuple(float(v) for v in self.rotation)
        translation = tuple(float(v) for v in self.translation)
        if not all(math.isfinite(v) for v in rotation + translation):
            raise ValueError(f"extrinsics: values must be finite, got rotation {rotation}, translation {translation}")
        r = np.asarray(rotation).reshape(3, 3)
        err = float(np.abs(r @ r.T - np.eye(3)).max())
        det = float(np.linalg.det(r))
        if err > ROTATION_TOL or abs(det - 1.0) > ROTATION_TOL:
            raise ValueError(
                f"extrinsics: the rotation must be orthonormal with determinant +1 (row-major 3x3), got "
                f"max |R R^T - I| = {err:.3g}, det = {det:.6g}"
            )
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)

    @property
    def R(self) -> np.ndarray:
        return np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)

    @property
    def t(self) -> np.ndarray:
        return np.asarray(self.translation, dtype=np.float64)

    def is_identity(self, tol: float = 1e-9) -> bool:
        return bool(np.allclose(self.R, np.eye(3), atol=tol) and np.allclose(self.t, 0, atol=tol))


@dataclass(frozen=True)
class Pose:
    """One person in one image: COCO box (x, y, w, h), person score, K x 3 (x, y, confidence).

    Coordinates are pixels of the full-resolution colour frame (COCO convention: pixel centres
    at integer + 0.5 from the image's top-left corner).
    """

    bbox: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray  # (K, 3) float32: x, y, confidence in [0, 1]
    extras: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.ndim != 2 or kp.shape[1] != 3:
            raise ValueError(f"Pose.keypoints must have shape (K, 3), got {kp.shape}")
        if len(self.bbox) != 4:
            raise ValueError(f"Pose.bbox must be (x, y, w, h), got {self.bbox}")
        conf = kp[:, 2]
        if np.any(~np.isfinite(conf)) or np.any(conf < 0) or np.any(conf > 1):
            raise ValueError("Pose keypoint confidences must lie in [0, 1]")
        kp.setflags(write=False)
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "bbox", tuple(float(v) for v in self.bbox))
        object.__setattr__(self, "score", float(self.score))

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[0])
