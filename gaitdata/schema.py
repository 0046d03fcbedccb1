"""Keypoint schemas as explicit data (names, skeleton, flip pairs, OKS sigmas)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KeypointSchema:
    """A keypoint schema. Skeleton edges are 0-indexed (convert to 1-indexed only for COCO files)."""

    name: str
    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]

    def __post_init__(self) -> None:
        k = len(self.keypoints)
        if len(set(self.keypoints)) != k:
            raise ValueError(f"schema {self.name}: duplicate keypoint names")
        if len(self.sigmas) != k:
            raise ValueError(f"schema {self.name}: expected {k} OKS sigmas, got {len(self.sigmas)}")
        for a, b in (*self.skeleton, *self.flip_pairs):
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"schema {self.name}: edge ({a}, {b}) out of range 0..{k - 1}")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    def index(self, name: str) -> int:
        try:
            return self.keypoints.index(name)
        except ValueError:
            raise KeyError(f"{name!r} is not a keypoint of schema {self.name}: {self.keypoints}") from None

    def flip_permutation(self) -> np.ndarray:
        """Index permutation that swaps left/right joints (apply after mirroring x)."""
        perm = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def skeleton_1based(self) -> list[list[int]]:
        """The skeleton as COCO files write it (1-indexed)."""
        return [[a + 1, b + 1] for a, b in self.skeleton]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "keypoints": list(self.keypoints),
            "skeleton": [list(e) for e in self.skeleton],
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "sigmas": list(self.sigmas),
        }

    @classmethod
    def from_dict(cls, d: dict) -> KeypointSchema:
        return cls(
            name=d["name"],
            keypoints=tuple(d["keypoints"]),
            skeleton=tuple(tuple(e) for e in d["skeleton"]),
            flip_pairs=tuple(tuple(p) for p in d["flip_pairs"]),
            sigmas=tuple(float(s) for s in d["sigmas"]),
        )


COCO17 = KeypointSchema(
    name="coco17",
    keypoints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),  # fmt: skip
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
        (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),  # fmt: skip
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    sigmas=(
        0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
        0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
    ),  # fmt: skip
)
