"""Recording containers: writers for every kind the extractor reads, and the readers.

Kinds: ``bag`` (RealSense ROS1), ``db3`` (RealSense ROS2 sqlite), ``pair`` (colour video + lossless
16-bit depth video or PNG folder, optional timestamp CSVs), ``video`` (colour only) and ``images``
(a folder of colour images). See :mod:`gaitdata.containers.video` for the pair naming convention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gaitdata.containers.base import FrameIndex, Recording, RecordingInfo
from gaitdata.containers.data import RecordingData
from gaitdata.containers.kinds import KINDS, classify_file
from gaitdata.errors import GaitdataError

__all__ = ["KINDS", "FrameIndex", "Recording", "RecordingData", "RecordingInfo", "open_recording", "write"]


def open_recording(path: str | Path, kind: str | None = None, depth_path: str | Path | None = None,
                   reader: str = "auto", fps: float = 30.0) -> Recording:  # fmt: skip
    """Open any supported recording for reading (index first, pixels on demand).

    ``kind`` is inferred from the path when omitted (a ``<stem>_color`` video with a depth partner is a
    pair). ``reader`` applies to RealSense files: ``auto`` (pyrealsense2 when importable, else the
    pure-Python reader with a warning), ``pyrealsense2`` or ``python``. ``fps`` is the rate assumed for
    image folders without ``timestamps.csv``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory; check the path")
    if kind is None:
        kind, found_depth = ("images", None) if path.is_dir() else classify_file(path)
        depth_path = depth_path or found_depth
    if path.is_file() and path.stat().st_size == 0:
        raise GaitdataError(f"{path}: the file is empty (0 bytes); re-copy or re-record it")
    if kind in ("bag", "db3"):
        from gaitdata.containers.realsense import open_realsense

        return open_realsense(path, reader)
    if kind == "pair":
        from gaitdata.containers.video import PairRecording

        if depth_path is None:
            raise GaitdataError(f"{path}: no depth partner (<stem>_depth.mkv or <stem>_depth/) for this pair")
        return PairRecording(path, depth_path)
    if kind == "video":
        from gaitdata.containers.video import VideoRecording

        return VideoRecording(path)
    if kind == "images":
        from gaitdata.containers.video import ImageFolderRecording

        return ImageFolderRecording(path, fps=fps)
    raise GaitdataError(
        f"{path}: unsupported recording type {path.suffix or '(no extension)'!r}; expected .bag, .db3, a video "
        f"or a folder of images"
    )


def write(rec: RecordingData, path: str | Path, kind: str, **opts: Any) -> Path:
    """Write ``rec`` to ``path`` as container ``kind``; returns the recording's path (the colour file of a pair).

    Options: ``bag``: ``device_name``; ``db3``: ``compress`` (PNG images, default True);
    ``pair``: ``codec`` (h264|mp4v|mjpeg|ffv1), ``depth_format`` (mkv|png), ``timestamps`` (CSVs, default True);
    ``video``: ``codec``, ``timestamps`` (default False); ``images``: ``ext`` (.png|.jpg), ``timestamps``.
    """
    path = Path(path)
    if kind == "bag":
        from gaitdata.containers.bag import write_bag

        return write_bag(rec, path if path.suffix == ".bag" else path.with_suffix(".bag"), **opts)
    if kind == "db3":
        from gaitdata.containers.db3 import write_db3

        return write_db3(rec, path if path.suffix == ".db3" else path.with_suffix(".db3"), **opts)
    if kind == "pair":
        from gaitdata.containers.video import write_pair

        return write_pair(rec, path, **opts)
    if kind == "video":
        from gaitdata.containers.video import write_video

        return write_video(rec, path, **opts)
    if kind == "images":
        from gaitdata.containers.video import write_images

        return write_images(rec, path, **opts)
    raise ValueError(f"unknown container kind {kind!r}; choose one of {', '.join(KINDS)}")
