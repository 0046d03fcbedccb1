"""Recording kinds and file classification (no I/O beyond looking for a pair's depth partner).

* ``*.bag`` -> ``bag``; ``*.db3`` -> ``db3``.
* ``<stem>_color.<video>`` with ``<stem>_depth.<video>`` or a ``<stem>_depth/`` folder -> ``pair``;
  a ``_color`` video without a depth partner, or any other video -> ``video``.
* A folder of images -> ``images``; anything else -> ``unknown``.
"""

from __future__ import annotations

from pathlib import Path

KINDS = ("bag", "db3", "pair", "video", "images")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_EXTS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg")
RECORDING_EXTS = (".bag", ".db3", *VIDEO_EXTS)


def depth_partner(colour: Path) -> Path | None:
    """The depth half of ``<stem>_color.<ext>``: a ``<stem>_depth/`` folder or a ``<stem>_depth.<video>``."""
    stem = colour.stem[: -len("_color")]
    folder = colour.with_name(stem + "_depth")
    if folder.is_dir():
        return folder
    for ext in (".mkv", *VIDEO_EXTS):
        cand = colour.with_name(stem + "_depth" + ext)
        if cand.is_file():
            return cand
    return None


def classify_file(path: Path) -> tuple[str, Path | None]:
    """``(kind, depth_path)`` of one file; kind ``unknown`` for anything that is not a recording."""
    ext = path.suffix.lower()
    if ext == ".bag":
        return "bag", None
    if ext == ".db3":
        return "db3", None
    if ext in VIDEO_EXTS:
        if path.stem.endswith("_color"):
            depth = depth_partner(path)
            if depth is not None:
                return "pair", depth
        return "video", None
    return "unknown", None
