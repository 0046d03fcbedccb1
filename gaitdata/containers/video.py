"""Colour video, colour + 16-bit depth video pairs and image folders: writers and readers (PyAV / OpenCV).

Pair naming convention (documented in the README)::

    <stem>_color.<ext>     colour video, any codec PyAV reads (mp4/H.264, mp4v, mkv, avi, ...)
    <stem>_depth.mkv       depth video, lossless 16-bit: FFV1 gray16le
    <stem>_depth/          or a folder of 16-bit PNGs (sorted by name)
    <stem>_color.csv       optional per-frame timestamps: frame_number,timestamp_ms
    <stem>_depth.csv       optional, same columns

Without CSVs, timestamps come from the container's pts (or frame_index / fps for PNG folders);
frames are paired by timestamp, never by index. Image folders may hold ``timestamps.csv``.
"""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_text

if TYPE_CHECKING:
    from gaitdata.synth.recording import SynthRecording

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_EXTS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg")
LOSSLESS_16BIT = {
    "ffv1": ("gray16le", "gray16be"),
    "png": ("gray16be", "gray16le"),
    "rawvideo": ("gray16le", "gray16be"),
}
TIMESTAMP_CSV = "timestamps.csv"
_CODECS = {"h264": ("libx264", "yuv420p"), "mp4v": ("mpeg4", "yuv420p"), "mjpeg": ("mjpeg", "yuvj420p"),
           "ffv1": ("ffv1", "yuv444p")}  # fmt: skip


# ---- writing ---------------------------------------------------------------------------------------
def pair_paths(path: str | Path, colour_ext: str = ".mp4", depth_format: str = "mkv") -> tuple[Path, Path]:
    """``(colour, depth)`` paths of a pair from a stem or a ``<stem>_color.<ext>`` path."""
    path = Path(path)
    name = path.name
    if path.suffix.lower() in VIDEO_EXTS and path.stem.endswith("_color"):
        stem = path.with_name(path.stem[: -len("_color")])
        colour = path
    else:
        stem = path.with_name(name[: -len(path.suffix)] if path.suffix.lower() in VIDEO_EXTS else name)
        colour = stem.with_name(stem.name + "_color" + colour_ext)
    depth = stem.with_name(stem.name + ("_depth.mkv" if depth_format == "mkv" else "_depth"))
    return colour, depth


def write_timestamps_csv(path: Path, frame_numbers, ts_ms) -> None:
    lines = ["frame_number,timestamp_ms"] + [
        f"{int(n)},{float(t):.6f}" for n, t in zip(frame_numbers, ts_ms, strict=True)
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_colour_video(frames: np.ndarray, ts_ms: np.ndarray, path: str | Path, *, codec: str = "h264",
                       fps: float = 30.0, crf: int = 18, bitrate: int | None = None, t0: float | None = None) -> Path:  # fmt: skip
    """Encode RGB uint8 frames (N, H, W, 3). pts follow ``ts_ms`` (ms time base) where the muxer allows."""
    import av

    path = Path(path)
    if codec not in _CODECS:
        raise ValueError(f"unknown colour codec {codec!r}; choose one of {sorted(_CODECS)}")
    enc, pix = _CODECS[codec]
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(tmp), "w") as out:
        st = out.add_stream(enc, rate=Fraction(round(fps * 1000), 1000))
        st.width, st.height, st.pix_fmt = frames.shape[2], frames.shape[1], pix
        if codec == "h264":
            st.options = {"crf": str(crf), "preset": "veryfast"}
        elif bitrate:
            st.bit_rate = bitrate
        else:
            st.options = {"qscale": "3"} if codec == "mp4v" else {}
            if codec == "mp4v":
                st.codec_context.qscale = 3
                st.codec_context.flags |= av.codec.context.Flags.qscale
        st.codec_context.time_base = Fraction(1, 1000)
        t0 = float(ts_ms[0]) if t0 is None else float(t0)
        for img, t in zip(frames, ts_ms, strict=True):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts = round(float(t) - t0)
            vf.time_base = Fraction(1, 1000)
            for pkt in st.encode(vf):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    os.replace(tmp, path)
    return path


def write_depth_video(depth: np.ndarray, ts_ms: np.ndarray, path: str | Path, *, fps: float = 30.0,
                      t0: float | None = None) -> Path:  # fmt: skip
    """Lossless 16-bit depth video: FFV1 gray16le in Matroska, pts in milliseconds."""
    import av

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(tmp), "w", format="matroska") as out:
        st = out.add_stream("ffv1", rate=Fraction(round(fps * 1000), 1000))
        st.width, st.height, st.pix_fmt = depth.shape[2], depth.shape[1], "gray16le"
        st.codec_context.time_base = Fraction(1, 1000)
        t0 = float(ts_ms[0]) if t0 is None else float(t0)
        for img, t in zip(depth, ts_ms, strict=True):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img, dtype=np.uint16), format="gray16le")
            vf.pts = round(float(t) - t0)
            vf.time_base = Fraction(1, 1000)
            for pkt in st.encode(vf):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    os.replace(tmp, path)
    return path


def write_png_folder(images: np.ndarray, folder: str | Path, frame_numbers=None, ts_ms=None, ext: str = ".png",
                     jpeg_quality: int = 95) -> Path:  # fmt: skip
    """A folder of images named ``<n:06d><ext>`` (16-bit PNG for uint16), plus ``timestamps.csv`` when given."""
    import cv2

    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    numbers = np.arange(len(images)) if frame_numbers is None else np.asarray(frame_numbers)
    for n, img in zip(numbers, images, strict=True):
        arr = img[..., ::-1] if img.ndim == 3 else img
        params = (
            [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
            if ext in (".jpg", ".jpeg")
            else [cv2.IMWRITE_PNG_COMPRESSION, 1]
        )
        if not cv2.imwrite(str(tmp / f"{int(n):06d}{ext}"), np.ascontiguousarray(arr), params):
            raise GaitdataError(f"{folder}: cannot write image {int(n):06d}{ext}")
    if ts_ms is not None:
        write_timestamps_csv(tmp / TIMESTAMP_CSV, numbers, ts_ms)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def write_pair(rec: SynthRecording, path: str | Path, *, codec: str = "h264", depth_format: str = "mkv",
               timestamps: bool = True, colour_ext: str = ".mp4") -> Path:  # fmt: skip
    """Colour video + lossless 16-bit depth (FFV1 mkv or PNG folder) + timestamp CSVs. Returns the colour path."""
    if not rec.has_depth:
        raise ValueError(f"{rec.name}: a pair needs depth; write kind='video' for colour-only recordings")
    if depth_format not in ("mkv", "png"):
        raise ValueError(f"depth_format must be 'mkv' or 'png', got {depth_format!r}")
    colour, depth = pair_paths(path, colour_ext, depth_format)
    t0 = min(float(rec.colour_ts_ms[0]), float(rec.depth_ts_ms[0]))  # one clock for both: pts keep the offset
    write_colour_video(rec.colour, rec.colour_ts_ms, colour, codec=codec, fps=rec.fps, t0=t0)
    if depth_format == "mkv":
        write_depth_video(rec.depth, rec.depth_ts_ms, depth, fps=rec.fps, t0=t0)
    else:
        write_png_folder(rec.depth, depth, rec.depth_frame_numbers, None)
    if timestamps:
        write_timestamps_csv(colour.with_suffix(".csv"), rec.colour_frame_numbers, rec.colour_ts_ms)
        write_timestamps_csv(colour.with_name(colour.stem[: -len("_color")] + "_depth.csv"),
                             rec.depth_frame_numbers, rec.depth_ts_ms)  # fmt: skip
    return colour


def write_video(
    rec: SynthRecording, path: str | Path, *, codec: str = "h264", timestamps: bool = False
) -> Path:
    path = Path(path)
    if path.suffix.lower() not in VIDEO_EXTS:
        path = path.with_suffix(".mp4")
    write_colour_video(rec.colour, rec.colour_ts_ms, path, codec=codec, fps=rec.fps)
    if timestamps:
        write_timestamps_csv(path.with_suffix(".csv"), rec.colour_frame_numbers, rec.colour_ts_ms)
    return path


def write_images(
    rec: SynthRecording, path: str | Path, *, ext: str = ".png", timestamps: bool = True
) -> Path:
    return write_png_folder(
        rec.colour, path, rec.colour_frame_numbers, rec.colour_ts_ms if timestamps else None, ext
    )
