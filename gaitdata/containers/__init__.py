"""Recording containers: writers for every kind the extractor reads, and the readers.

Kinds: ``bag`` (RealSense ROS1), ``db3`` (RealSense ROS2 sqlite), ``pair`` (colour video + lossless
16-bit depth video or PNG folder, optional timestamp CSVs), ``video`` (colour only) and ``images``
(a folder of colour images). See :mod:`gaitdata.containers.video` for the pair naming convention.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gaitdata.containers.base import KINDS

if TYPE_CHECKING:
    from gaitdata.synth.recording import SynthRecording

__all__ = ["KINDS", "write"]


def write(rec: SynthRecording, path: str | Path, kind: str, **opts: Any) -> Path:
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
