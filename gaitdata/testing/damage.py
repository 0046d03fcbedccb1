"""Damaging files the way disks, copies and editors do, and counting what a reference decoder still reads.

Used by the damaged-input tests and by ``tools/sweep_integrity.py``: the number of frames a
reference decoder (OpenCV, or the database and an image decoder for ``.db3``) can still decode is
what extraction must write.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def add_noise(path: str | Path, frac: float, n: int = 4096, seed: int = 0) -> None:
    """Overwrite ``n`` bytes at ``frac`` of the file's length with random bytes."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    at = int(len(data) * frac)
    data[at : at + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def opencv_decodable(path: str | Path, n: int) -> int:
    """Frames OpenCV decodes from a video of ``n`` frames, going on after failures."""
    cap = cv2.VideoCapture(str(path))
    good = 0
    for _ in range(n + 10):
        if cap.grab():
            good += bool(cap.retrieve()[0])
    cap.release()
    return good


def db3_decodable(path: str | Path) -> int:
    """Colour messages of a RealSense ``.db3`` whose bytes can still be read and decoded as an image;
    -1 when the database's own message table is damaged."""
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tid = next(i for i, name in db.execute("SELECT id, name FROM topics") if "Color_0/image/data" in name)
        try:
            ids = db.execute("SELECT id FROM messages WHERE topic_id = ?", (tid,)).fetchall()
        except sqlite3.DatabaseError:
            return -1
        good = 0
        for (mid,) in ids:
            try:
                (blob,) = db.execute("SELECT data FROM messages WHERE id = ?", (mid,)).fetchone()
                msg = ts.deserialize_cdr(bytes(blob), "sensor_msgs/msg/CompressedImage")
                good += cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR) is not None
            except Exception:
                continue
        return good
    finally:
        db.close()


def set_json_field(path: str | Path, field: tuple[str, ...], value: Any) -> None:
    """Set ``field`` (a path of keys) in a JSON file, e.g. ``("depth_to_colour", "rotation")``."""
    path = Path(path)
    data = json.loads(path.read_text())
    target = data
    for k in field[:-1]:
        target = target[k]
    target[field[-1]] = value
    path.write_text(json.dumps(data))
