"""Run the ``gaitdata`` command line in a fresh process with one extra teacher, ``test_fixed``.

``python tests/gaitdata/_cli_driver.py label ROOT --teacher test_fixed`` behaves exactly like
``gaitdata label ...``; ``test_fixed`` finds one person per image, a standing figure in the middle
of the frame (deterministic, instant, no weights), so that every later stage has persons to use.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from gaitdata.records import Pose
from pseudolabel.registry import TeacherConfig, list_teachers, register_teacher

# (u, v) of the 17 COCO joints as fractions of the person box
LAYOUT = np.array(
    [(0.50, 0.06), (0.55, 0.04), (0.45, 0.04), (0.60, 0.06), (0.40, 0.06), (0.70, 0.20), (0.30, 0.20),
     (0.75, 0.35), (0.25, 0.35), (0.78, 0.48), (0.22, 0.48), (0.62, 0.52), (0.38, 0.52), (0.62, 0.74),
     (0.38, 0.74), (0.62, 0.95), (0.38, 0.95)],
)  # fmt: skip


class FixedTeacher:
    cfg = TeacherConfig(
        name="test_fixed", input_size=None, mean=None, std=None, channel_order="RGB", top_down=False,
        source="tests", license="Apache-2.0",
    )  # fmt: skip
    weights_hash = "fixed"

    def __init__(self, **_: object) -> None:
        pass

    def predict(self, images: Sequence[np.ndarray], boxes=None) -> list[list[Pose]]:
        out = []
        for img in images:
            h, w = img.shape[:2]
            x, y, bw, bh = 0.35 * w, 0.1 * h, 0.3 * w, 0.8 * h
            kp = np.zeros((17, 3), np.float32)
            kp[:, 0] = x + LAYOUT[:, 0] * bw
            kp[:, 1] = y + LAYOUT[:, 1] * bh
            kp[:, 2] = 0.9
            out.append([Pose(bbox=(x, y, bw, bh), score=0.9, keypoints=kp)])
        return out

    def reset(self) -> None:
        pass


if "test_fixed" not in list_teachers():
    register_teacher("test_fixed", FixedTeacher)

if __name__ == "__main__":
    from gaitdata.cli import main

    main(sys.argv[1:])
