"""RealSense ROS2 ``.db3`` (SDK >= 2.58): writer via librealsense's own recorder, pure-Python reader helpers.

Writing uses ``pyrealsense2``: a ``software_device`` with a depth (z16) and a colour (rgb8)
sensor, their intrinsics, the depth->colour extrinsic and depth units, wrapped by ``rs.recorder``.
The file is finalised when the recorder is released. ``compress=True`` stores PNG images (what
SDK 2.59 writes by default), ``False`` raw images.
"""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gaitdata.containers import _rs
from gaitdata.errors import GaitdataError, require

if TYPE_CHECKING:
    from gaitdata.containers.data import RecordingData


def _rs_intrinsics(rs, intr):
    out = rs.intrinsics()
    out.width, out.height = int(intr.width), int(intr.height)
    out.fx, out.fy, out.ppx, out.ppy = float(intr.fx), float(intr.fy), float(intr.cx), float(intr.cy)
    model = intr.model.lower()
    out.model = getattr(rs.distortion, model, rs.distortion.none)
    out.coeffs = [float(c) for c in (list(intr.coeffs) + [0.0] * 5)[:5]]
    return out


def write_db3(rec: RecordingData, path: str | Path, *, compress: bool = True) -> Path:
    """Write ``rec`` as a RealSense ``.db3`` recording with librealsense's recorder (needs pyrealsense2)."""
    rs = require("pyrealsense2", "realsense")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = tmpdir / path.name
    try:
        _record(rs, rec, tmp, compress)
        gc.collect()
        produced = tmp if tmp.is_file() else next(iter(sorted(tmpdir.rglob("*.db3"))), None)
        if produced is None or produced.stat().st_size == 0:
            raise GaitdataError(f"{path}: librealsense's recorder produced no .db3 file")
        os.replace(produced, path)
    finally:
        for p in sorted(tmpdir.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        tmpdir.rmdir()
    return path


def _record(rs, rec: RecordingData, out: Path, compress: bool) -> None:
    dev = rs.software_device()
    streams = []
    if rec.has_depth:
        ds = dev.add_sensor("Stereo Module")
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid = rs.stream.depth, 0, 0
        vs.width, vs.height, vs.fps = rec.depth_intrinsics.width, rec.depth_intrinsics.height, round(rec.fps)
        vs.bpp, vs.fmt, vs.intrinsics = 2, rs.format.z16, _rs_intrinsics(rs, rec.depth_intrinsics)
        dprof = ds.add_video_stream(vs, True)
        ds.add_read_only_option(rs.option.depth_units, float(rec.depth_scale))
        streams.append(("depth", ds, dprof))
    cs = dev.add_sensor("RGB Camera")
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = rs.stream.color, 0, 1
    vs.width, vs.height, vs.fps = rec.colour_intrinsics.width, rec.colour_intrinsics.height, round(rec.fps)
    vs.bpp, vs.fmt, vs.intrinsics = 3, rs.format.rgb8, _rs_intrinsics(rs, rec.colour_intrinsics)
    cprof = cs.add_video_stream(vs, True)
    streams.append(("colour", cs, cprof))
    if rec.has_depth:
        ext = rs.extrinsics()
        ext.rotation = _rs.rotation_colmajor(rec.depth_to_colour)
        ext.translation = [float(v) for v in rec.depth_to_colour.translation]
        dprof.register_extrinsics_to(cprof, ext)
    dev.register_info(rs.camera_info.name, "Intel RealSense D435")
    dev.register_info(rs.camera_info.serial_number, "000000000000")
    recorder = rs.recorder(str(out), dev, bool(compress))
    sensors = {}
    for kind, sensor, prof in streams:
        sensor.open(prof)
        sensor.start(lambda f: None)
        sensors[kind] = (sensor, prof.as_video_stream_profile())
    events = [(float(t), 1, i) for i, t in enumerate(rec.colour_ts_ms)]
    if rec.has_depth:
        events += [(float(t), 0, i) for i, t in enumerate(rec.depth_ts_ms)]
    events.sort()
    keep = []
    for t_ms, is_colour, i in events:
        if is_colour:
            img, (sensor, prof), n, bpp = rec.colour[i], sensors["colour"], rec.colour_frame_numbers[i], 3
        else:
            img, (sensor, prof), n, bpp = rec.depth[i], sensors["depth"], rec.depth_frame_numbers[i], 2
        img = np.ascontiguousarray(img)
        keep.append(img)
        f = rs.software_video_frame()
        f.pixels = img
        f.bpp = bpp
        f.stride = img.shape[1] * bpp
        f.timestamp = t_ms
        f.domain = rs.timestamp_domain.hardware_clock
        f.frame_number = int(n)
        f.profile = prof
        if not is_colour:
            f.depth_units = float(rec.depth_scale)
        sensor.on_video_frame(f)
    for _, sensor, _ in streams:
        sensor.stop()
        sensor.close()
    del recorder, sensors, streams, dev
    gc.collect()
