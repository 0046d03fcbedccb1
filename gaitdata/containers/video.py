"""Colour video, colour + 16-bit depth video pairs and image folders: writers and readers (PyAV / OpenCV).

Pair naming convention (documented in the README)::

    <stem>_color.<ext>     colour video, any codec PyAV reads (mp4/H.264, mp4v, mkv, avi, ...)
    <stem>_depth.mkv       depth video, lossless 16-bit: FFV1 gray16le
    <stem>_depth/          or a folder of 16-bit PNGs (sorted by name)
    <stem>_color.csv       optional per-frame timestamps: frame_number,timestamp_ms
    <stem>_depth.csv       optional, same columns
    <stem>_calib.json      optional calibration: colour/depth intrinsics, depth_to_colour, depth_scale;
                           without it the depth must already be registered to colour (same size)

Both CSVs or neither (one clock for both streams). Without CSVs, timestamps come from the
container's pts and frames are paired by timestamp; where the timestamps carry nothing beyond the
frame positions (a PNG folder, or pts on one gapless grid) pairing by position is accepted only for
equal frame counts. Image folders may hold ``timestamps.csv``. Videos are decoded packet by packet:
a damaged packet costs only its own frames.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gaitdata.containers.base import FrameIndex, Recording, RecordingInfo, check_monotone
from gaitdata.containers.kinds import IMAGE_EXTS, VIDEO_EXTS
from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_text

if TYPE_CHECKING:
    from gaitdata.containers.data import RecordingData

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
        _encode_frames(out, st, frames, ts_ms, t0, "rgb24")
    os.replace(tmp, path)
    return path



def _encode_frames(out, stream, frames: np.ndarray, ts_ms: np.ndarray, t0: float | None, fmt: str) -> None:
    """Encode ``frames`` into ``stream`` with pts in milliseconds from ``t0`` (default: the first stamp); flush."""
    import av

    t0 = float(ts_ms[0]) if t0 is None else float(t0)
    for img, t in zip(frames, ts_ms, strict=True):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=fmt)
        vf.pts = round(float(t) - t0)
        vf.time_base = Fraction(1, 1000)
        for pkt in stream.encode(vf):
            out.mux(pkt)
    for pkt in stream.encode():
        out.mux(pkt)


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
        _encode_frames(out, st, depth.astype(np.uint16, copy=False), ts_ms, t0, "gray16le")
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


def write_pair(rec: RecordingData, path: str | Path, *, codec: str = "h264", depth_format: str = "mkv",
               timestamps: bool = True, colour_ext: str = ".mp4", calibration: bool = True) -> Path:  # fmt: skip
    """Colour video + lossless 16-bit depth (FFV1 mkv or PNG folder) + timestamp CSVs + ``<stem>_calib.json``.

    Returns the colour path. The depth stays in the depth camera (unregistered); the calibration file
    gives both intrinsics, the depth->colour extrinsic and the depth scale.
    """
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
    if calibration:
        write_calibration(calib_path(colour), rec)
    if timestamps:
        write_timestamps_csv(colour.with_suffix(".csv"), rec.colour_frame_numbers, rec.colour_ts_ms)
        write_timestamps_csv(colour.with_name(colour.stem[: -len("_color")] + "_depth.csv"),
                             rec.depth_frame_numbers, rec.depth_ts_ms)  # fmt: skip
    return colour


def write_video(
    rec: RecordingData, path: str | Path, *, codec: str = "h264", timestamps: bool = False
) -> Path:
    path = Path(path)
    if path.suffix.lower() not in VIDEO_EXTS:
        path = path.with_suffix(".mp4")
    write_colour_video(rec.colour, rec.colour_ts_ms, path, codec=codec, fps=rec.fps)
    if timestamps:
        write_timestamps_csv(path.with_suffix(".csv"), rec.colour_frame_numbers, rec.colour_ts_ms)
    return path


def write_images(
    rec: RecordingData, path: str | Path, *, ext: str = ".png", timestamps: bool = True
) -> Path:
    return write_png_folder(
        rec.colour, path, rec.colour_frame_numbers, rec.colour_ts_ms if timestamps else None, ext
    )


# ---- calibration sidecar of a pair ------------------------------------------------------------------
def calib_path(colour_path: Path) -> Path:
    """``<stem>_calib.json`` beside ``<stem>_color.<ext>``."""
    return colour_path.with_name(colour_path.stem[: -len("_color")] + "_calib.json")


def write_calibration(path: Path, rec: RecordingData) -> None:
    from gaitdata.io import atomic_write_json

    atomic_write_json(path, {
        "colour_intrinsics": rec.colour_intrinsics.to_dict(),
        "depth_intrinsics": rec.depth_intrinsics.to_dict(),
        "depth_to_colour": {"rotation": list(rec.depth_to_colour.rotation),
                            "translation": list(rec.depth_to_colour.translation)},
        "depth_scale": float(rec.depth_scale),
    })  # fmt: skip


def read_calibration(path: Path):
    """``(colour_intrinsics, depth_intrinsics, depth_to_colour, depth_scale)`` from ``<stem>_calib.json``, validated."""
    import json

    from gaitdata.records import Extrinsics, Intrinsics, check_depth_scale

    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GaitdataError(f"{path}: unreadable calibration file ({' '.join(str(exc).split())}); expected JSON with "
                            f"colour_intrinsics, depth_intrinsics, depth_to_colour and depth_scale") from exc  # fmt: skip
    if not isinstance(d, dict):
        raise GaitdataError(f"{path}: the calibration file must hold a JSON object, got {type(d).__name__}")
    key = ""
    try:
        key = "colour_intrinsics"
        ci = Intrinsics(**{**d[key], "coeffs": tuple(d[key].get("coeffs", (0.0,) * 5))})
        key = "depth_intrinsics"
        di = Intrinsics(**{**d[key], "coeffs": tuple(d[key].get("coeffs", (0.0,) * 5))})
        key = "depth_to_colour"
        ext = Extrinsics(**d.get(key, {}))
        key = "depth_scale"
        scale = check_depth_scale(d.get(key, 0.001))
    except KeyError as exc:
        raise GaitdataError(f"{path}: the calibration file has no {exc.args[0]!r}; expected colour_intrinsics, "
                            f"depth_intrinsics, depth_to_colour and depth_scale") from exc  # fmt: skip
    except (ValueError, TypeError, AttributeError) as exc:
        raise GaitdataError(f"{path}: invalid {key}: {' '.join(str(exc).split())}; fix the calibration file") from exc
    return ci, di, ext, scale


# ---- reading ---------------------------------------------------------------------------------------
def read_timestamps_csv(path: Path, n_frames: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise GaitdataError(
            f"{path}: unreadable timestamp CSV ({exc}); expected columns frame_number,timestamp_ms"
        ) from exc
    if not {"frame_number", "timestamp_ms"} <= set(df.columns):
        raise GaitdataError(
            f"{path}: timestamp CSV needs columns frame_number,timestamp_ms; found {list(df.columns)}"
        )
    if len(df) != n_frames:
        raise GaitdataError(
            f"{path}: {len(df)} timestamp rows but the {what} has {n_frames} frames; the CSV does not belong "
            f"to this file (or the file is truncated)"
        )
    return df["frame_number"].to_numpy(np.int64), df["timestamp_ms"].to_numpy(np.float64)


def _open_av(path: Path, what: str):
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise GaitdataError(f"{path}: cannot open the {what} ({' '.join(str(exc).split())}); the file is corrupt, "
                            f"truncated or not a video") from exc  # fmt: skip
    if not container.streams.video:
        container.close()
        raise GaitdataError(f"{path}: the {what} has no video stream")
    return container


@dataclass(frozen=True)
class _Probe:
    """What the demuxer says about a video without decoding: one entry per packet, in presentation order."""

    pts: np.ndarray  # int64, the stream's own time base
    ts_ms: np.ndarray  # float64
    fps: float
    size: tuple[int, int]
    codec: str
    pix_fmt: str
    n_unindexed: int = 0  # frames the container's duration promises after the last readable packet

    def tail_note(self, path: Path, what: str) -> tuple[str, ...]:
        if not self.n_unindexed:
            return ()
        return (f"{path.name}: the {what} ends early - no frames after {self.ts_ms[-1]:.1f} ms although the container "
                f"promises about {self.n_unindexed} more (damaged or truncated): they cannot be read",)  # fmt: skip


def _probe(path: Path, what: str) -> _Probe:
    """Presentation timestamps of every frame from the demuxer (no decoding), fps, size, codec, pixel format."""
    import av

    container = _open_av(path, what)
    try:
        st = container.streams.video[0]
        tb = float(st.time_base)
        pts = []
        try:
            for pkt in container.demux(st):
                if pkt.size == 0:
                    continue
                pts.append(pkt.pts if pkt.pts is not None else (pkt.dts if pkt.dts is not None else len(pts)))
        except av.error.FFmpegError as exc:
            raise GaitdataError(
                f"{path}: the {what} is corrupt or truncated ({' '.join(str(exc).split())})"
            ) from exc
        cc = st.codec_context
        fps = float(st.average_rate or st.guessed_rate or 30.0)
        size = (int(cc.width), int(cc.height))
        pix = cc.pix_fmt or (st.format.name if st.format else "")
        codec = cc.name
        if st.duration:
            end_ms = (float(st.start_time or 0) + float(st.duration)) * tb * 1000.0
        elif container.duration and len(container.streams) == 1:
            end_ms = (float(container.start_time or 0) + float(container.duration)) / 1000.0
        else:
            end_ms = None
    finally:
        container.close()
    if not pts:
        raise GaitdataError(f"{path}: the {what} has no frames (empty or truncated file)")
    raw = np.sort(np.asarray(pts, dtype=np.int64))
    ts = raw.astype(np.float64) * tb * 1000.0
    period = float(np.median(np.diff(ts))) if len(ts) > 1 else 1000.0 / fps
    gap = (end_ms - period - ts[-1]) if end_ms is not None and period > 0 else 0.0
    missing = int(round(gap / period)) if gap > 0.5 * period else 0
    return _Probe(raw, ts, fps, size, codec, str(pix), missing)


def _to_rgb(frame) -> np.ndarray:
    """RGB uint8 from a decoded frame; 4:2:0 goes through OpenCV's SIMD conversion (~10x faster than swscale)."""
    import cv2

    if frame.format.name in ("yuv420p", "yuvj420p") and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


def _decode_video(path: Path, positions: set[int], ts: np.ndarray, pts: np.ndarray, stream: str, depth: bool):
    """Yield ``(ts, (stream, pos, array or None))`` for the wanted positions, packet by packet.

    A decoded frame is placed by its presentation timestamp (``pts`` is the probe's sorted list), so a
    packet the decoder rejects costs only its own frame(s): decoding goes on with the next packet.
    Frames come out in presentation order; a wanted position passed over is yielded as None at once.
    """
    import av

    if not positions:
        return
    pos_of: dict[int, int] = {}
    for i, p in enumerate(pts.tolist()):
        pos_of.setdefault(int(p), i)
    wanted = sorted(positions)
    last = wanted[-1]
    nxt = 0  # index into ``wanted`` of the first position not yet yielded

    def key(p: int) -> float:
        return float(ts[p]) if p < len(ts) else float("inf")

    container = _open_av(path, "video")
    try:
        st = container.streams.video[0]
        st.thread_type = "AUTO"
        prev = -1
        packets = container.demux(st)
        while nxt < len(wanted):
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError:
                break  # the demuxer cannot go on: the remaining positions are reported below
            try:
                frames = st.decode(packet)
            except av.error.FFmpegError:
                continue  # a damaged packet: its frame is lost, the decoder carries on with the next one
            for frame in frames:
                pos = pos_of.get(int(frame.pts)) if frame.pts is not None else None
                if pos is None:
                    pos = prev + 1
                if pos <= prev:
                    continue
                prev = pos
                while nxt < len(wanted) and wanted[nxt] < pos:
                    yield (key(wanted[nxt]), (stream, wanted[nxt], None))
                    nxt += 1
                if nxt < len(wanted) and wanted[nxt] == pos:
                    arr = frame.to_ndarray(format="gray16le") if depth else _to_rgb(frame)
                    yield (key(pos), (stream, pos, arr))
                    nxt += 1
                if pos >= last:
                    break
    finally:
        container.close()
    for p in wanted[nxt:]:  # never delivered: truncated or undecodable tail
        yield (key(p), (stream, p, None))


def _pts_like_positions(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two streams' timestamps carry nothing beyond frame positions: the stream with fewer
    frames is gapless (no step over 1.5 median steps) and starts within half a step of the other."""
    short, other = (a, b) if len(a) <= len(b) else (b, a)
    if len(short) < 2 or len(other) == 0:
        return True
    steps = np.diff(short)
    period = float(np.median(steps))
    return bool(steps.max() <= 1.5 * period and abs(float(short[0]) - float(other[0])) <= period / 2)


def _check_depth_codec(path: Path, codec: str, pix: str) -> None:
    ok = LOSSLESS_16BIT.get(codec)
    if not ok or pix not in ok:
        raise GaitdataError(
            f"{path}: depth video is {codec} {pix or '?'} - depth must be lossless 16-bit (FFV1 gray16le or a "
            f"folder of 16-bit PNGs); 8-bit or lossy depth has lost the raw units. Re-export the raw depth, e.g. "
            f"ffmpeg -i RAW -c:v ffv1 -pix_fmt gray16le {path.stem}.mkv"
        )


def list_images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")
    )


class VideoRecording(Recording):
    """A colour video alone (kind ``video``); timestamps from ``<stem>.csv`` when present, else pts."""

    reader_name = "pyav"
    depth_registered = False

    def __init__(self, path: str | Path, kind: str = "video", csv_path: Path | None = None):
        self.path = Path(path)
        probe = _probe(self.path, "colour video")
        self._pts = probe.pts
        ts, fps, size, codec = probe.ts_ms, probe.fps, probe.size, probe.codec
        csv_path = csv_path if csv_path is not None else self.path.with_suffix(".csv")
        if csv_path.is_file():
            fn, ts = read_timestamps_csv(csv_path, len(ts), "colour video")
        else:
            fn = np.arange(len(ts), dtype=np.int64)
        index = FrameIndex(fn, ts)
        check_monotone(index, "colour", self.path)
        self.codec = codec
        notes = probe.tail_note(self.path, "colour video")
        self.info = RecordingInfo(kind=kind, path=self.path, colour=index, colour_size=size, fps=fps,
                                  notes=(("no depth stream: colour only",) if kind == "video" else ()) + notes,
                                  n_unindexed=probe.n_unindexed)  # fmt: skip

    def frames(self, colour_positions, depth_positions=()):
        for _, item in _decode_video(
            self.path, set(map(int, colour_positions)), self.info.colour.ts_ms, self._pts, "colour", False
        ):
            yield item

    def close(self) -> None:
        pass


class PairRecording(VideoRecording):
    """Colour video + lossless 16-bit depth (FFV1 video or PNG folder), paired by timestamp."""

    def __init__(self, colour_path: str | Path, depth_path: str | Path):
        import dataclasses

        colour_path, depth_path = Path(colour_path), Path(depth_path)
        stem = colour_path.stem[: -len("_color")] if colour_path.stem.endswith("_color") else colour_path.stem
        super().__init__(colour_path, kind="pair", csv_path=colour_path.with_suffix(".csv"))
        self.depth_path = depth_path
        depth_csv = colour_path.with_name(stem + "_depth.csv")
        colour_csv = colour_path.with_suffix(".csv")
        if colour_csv.is_file() != depth_csv.is_file():
            have, missing = (colour_csv, depth_csv) if colour_csv.is_file() else (depth_csv, colour_csv)
            raise GaitdataError(
                f"{missing}: missing while {have.name} exists; colour and depth need timestamps on one clock - "
                f"write both CSVs (frame_number,timestamp_ms) or neither"
            )
        notes: list[str] = []
        if depth_path.is_dir():
            self._depth_files = list_images(depth_path)
            if not self._depth_files:
                raise GaitdataError(f"{depth_path}: the depth folder holds no images")
            import cv2

            first = cv2.imread(str(self._depth_files[0]), cv2.IMREAD_UNCHANGED)
            if first is None or first.dtype != np.uint16 or first.ndim != 2:
                got = "unreadable" if first is None else f"{first.dtype} with {first.ndim} dims"
                raise GaitdataError(
                    f"{self._depth_files[0]}: depth images must be single-channel 16-bit PNGs, got {got}; "
                    f"8-bit depth has lost the raw units - export the raw 16-bit depth"
                )
            n = len(self._depth_files)
            dsize = (first.shape[1], first.shape[0])
            if depth_csv.is_file():
                dfn, dts = read_timestamps_csv(depth_csv, n, "depth folder")
            else:
                n_colour = len(self.info.colour)
                if n != n_colour:
                    raise GaitdataError(
                        f"{depth_path}: {n} depth images for {n_colour} colour frames and no timestamp CSVs; "
                        f"frames can be paired by position only when the counts are equal - write "
                        f"{colour_csv.name} and {depth_csv.name} (frame_number,timestamp_ms)"
                    )
                dfn = np.arange(n, dtype=np.int64)
                dts = self.info.colour.ts_ms.copy()
                notes.append("no timestamp CSVs: depth image i paired with colour frame i (equal counts)")
        else:
            self._depth_files = None
            dprobe = _probe(depth_path, "depth video")
            self._depth_pts = dprobe.pts
            dts, dsize = dprobe.ts_ms, dprobe.size
            notes.extend(dprobe.tail_note(depth_path, "depth video"))
            _check_depth_codec(depth_path, dprobe.codec, dprobe.pix_fmt)
            if depth_csv.is_file():
                dfn, dts = read_timestamps_csv(depth_csv, len(dts), "depth video")
            else:
                dfn = np.arange(len(dts), dtype=np.int64)
                if len(dts) != len(self.info.colour) and _pts_like_positions(self.info.colour.ts_ms, dts):
                    raise GaitdataError(
                        f"{depth_path}: {len(dts)} depth frames for {len(self.info.colour)} colour frames, no timestamp "
                        f"CSVs and container timestamps on one gapless grid (they only repeat the frame positions); "
                        f"frames can be paired by position only when the counts are equal - write "
                        f"{colour_csv.name} and {depth_csv.name} (frame_number,timestamp_ms)"
                    )
        dindex = FrameIndex(dfn, dts)
        check_monotone(dindex, "depth", depth_path)
        cal = calib_path(colour_path)
        if cal.is_file():
            ci, di, ext, scale = read_calibration(cal)
            if (ci.width, ci.height) != self.info.colour_size or (di.width, di.height) != dsize:
                raise GaitdataError(
                    f"{cal}: calibration sizes colour {ci.width}x{ci.height} / depth {di.width}x{di.height} do not "
                    f"match the files ({self.info.colour_size[0]}x{self.info.colour_size[1]} / {dsize[0]}x{dsize[1]})"
                )
            self.depth_registered = False
        else:
            if dsize != self.info.colour_size:
                raise GaitdataError(
                    f"{depth_path}: depth is {dsize[0]}x{dsize[1]}, colour {self.info.colour_size[0]}x"
                    f"{self.info.colour_size[1]}, and there is no {cal.name} with the calibration to register them"
                )
            ci = di = None
            ext = None
            scale = 0.001
            self.depth_registered = True
            notes.append(f"no {cal.name}: depth assumed already registered to colour, depth scale 0.001 m")
        self.info = dataclasses.replace(
            self.info, depth=dindex, depth_path=depth_path, colour_intrinsics=ci, depth_intrinsics=di,
            depth_to_colour=ext, depth_scale=scale, notes=self.info.notes + tuple(notes),
        )  # fmt: skip

    def frames(self, colour_positions, depth_positions=()):
        import heapq

        colour = _decode_video(
            self.path, set(map(int, colour_positions)), self.info.colour.ts_ms, self._pts, "colour", False
        )
        if self._depth_files is None:
            depth = _decode_video(self.depth_path, set(map(int, depth_positions)), self.info.depth.ts_ms,
                                  self._depth_pts, "depth", True)  # fmt: skip
        else:
            depth = self._png_depth(sorted(set(map(int, depth_positions))))
        for _, item in heapq.merge(colour, depth, key=lambda x: x[0]):
            yield item

    def _png_depth(self, positions: list[int]):
        import cv2

        for p in positions:
            img = (
                cv2.imread(str(self._depth_files[p]), cv2.IMREAD_UNCHANGED)
                if p < len(self._depth_files)
                else None
            )
            if img is not None and (img.dtype != np.uint16 or img.ndim != 2):
                img = None
            yield (float(self.info.depth.ts_ms[p]), ("depth", p, img))


class ImageFolderRecording(Recording):
    """A folder of colour images (kind ``images``); ``timestamps.csv`` inside gives timestamps, else 1/fps."""

    reader_name = "opencv"
    depth_registered = False

    def __init__(self, folder: str | Path, fps: float = 30.0):
        import cv2

        self.path = Path(folder)
        self._files = list_images(self.path)
        if not self._files:
            raise GaitdataError(f"{self.path}: the folder holds no images ({', '.join(IMAGE_EXTS)})")
        first = cv2.imread(str(self._files[0]), cv2.IMREAD_COLOR)
        if first is None:
            raise GaitdataError(f"{self._files[0]}: not a readable image")
        csv_path = self.path / TIMESTAMP_CSV
        if csv_path.is_file():
            fn, ts = read_timestamps_csv(csv_path, len(self._files), "image folder")
            if len(ts) > 1:
                fps = 1000.0 / float(np.median(np.diff(ts)))
        else:
            fn = np.arange(len(self._files), dtype=np.int64)
            ts = np.arange(len(self._files)) * 1000.0 / fps
        index = FrameIndex(fn, ts)
        check_monotone(index, "colour", self.path)
        self.info = RecordingInfo(kind="images", path=self.path, colour=index, colour_size=(first.shape[1], first.shape[0]),
                                  fps=fps, notes=("no depth stream: colour only",))  # fmt: skip

    def frames(self, colour_positions, depth_positions=()):
        import cv2

        for p in sorted(set(map(int, colour_positions))):
            img = cv2.imread(str(self._files[p]), cv2.IMREAD_COLOR)
            yield ("colour", p, None if img is None else np.ascontiguousarray(img[..., ::-1]))

    def close(self) -> None:
        pass
