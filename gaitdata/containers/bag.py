"""RealSense ROS1 ``.bag`` (SDK <= 2.57 layout): a pure-Python writer and index/frame reader (rosbags).

Traps handled here (see FACTS.md): librealsense's ``sensor_msgs/Image`` carries 4 trailing bytes
(float32 ``depth_units``) after the standard fields; bags must be uncompressed (rosbags' LZ4/BZ2
chunks are rejected by librealsense).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gaitdata.containers import _rs

if TYPE_CHECKING:
    from gaitdata.containers.data import RecordingData

_STREAM_INFO_MSG = """uint32 fps
string encoding
bool is_recommended
"""
_STREAM_INFO_MD5 = "311d7e24eac31bb87271d041bf70ff7d"
_IMAGE_MD5 = "060021388200f6f0f447d0fcd9c64743"  # the standard sensor_msgs/Image (librealsense keeps it)


def _typestore():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    ts.register(get_types_from_msg(_STREAM_INFO_MSG, "realsense_msgs/msg/StreamInfo"))
    return ts


class _BagOut:
    """A rosbags ROS1 writer with the message types at hand and one connection per (topic, type)."""

    def __init__(self, writer, ts) -> None:
        self.w, self.ts, self.m = writer, ts, ts.types
        self._conns: dict[tuple[str, str], object] = {}

    def ser(self, msg, typ: str) -> bytes:
        return bytes(self.ts.serialize_ros1(msg, typ))

    def put(self, topic: str, typ: str, t_ns: int, data: bytes, md5: str | None = None, msgdef: str | None = None) -> None:
        key = (topic, typ)
        if key not in self._conns:
            kwargs: dict = {"typestore": self.ts}
            if md5:
                kwargs["md5sum"] = md5
            if msgdef:
                kwargs["msgdef"] = msgdef
            self._conns[key] = self.w.add_connection(topic, typ, **kwargs)
        self.w.write(self._conns[key], t_ns, data)

    def put_msg(self, topic: str, typ: str, t_ns: int, msg) -> None:
        self.put(topic, typ, t_ns, self.ser(msg, typ))

    def key_value(self, topic: str, t_ns: int, key: str, value: str) -> None:
        self.put_msg(topic, "diagnostic_msgs/msg/KeyValue", t_ns, self.m["diagnostic_msgs/msg/KeyValue"](key=key, value=value))


def write_bag(rec: RecordingData, path: str | Path, *, device_name: str = "Intel RealSense D435") -> Path:
    """Write ``rec`` as an uncompressed RealSense ROS1 bag librealsense plays back frame for frame."""
    from rosbags.rosbag1 import Writer

    path = Path(path)
    # sensor indices must be contiguous for librealsense: colour is sensor 1 after depth, else sensor 0
    colour_prefix = _rs.COLOUR_PREFIX if rec.has_depth else _rs.COLOUR_PREFIX.replace("sensor_1", "sensor_0")
    streams = [("colour", colour_prefix, "RGB Camera", 1 if rec.has_depth else 0)]
    if rec.has_depth:
        streams.insert(0, ("depth", _rs.DEPTH_PREFIX, "Stereo Module", 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.unlink(missing_ok=True)
    with Writer(tmp) as w:  # no set_compression: librealsense needs plain chunks
        out = _BagOut(w, _typestore())
        _write_device(out, device_name)
        for kind, prefix, sensor_name, sensor_idx in streams:
            _write_stream(out, rec, kind, prefix, sensor_name, sensor_idx)
        _write_frames(out, rec, colour_prefix)
    os.replace(tmp, path)  # atomic publish
    return path


def _write_device(out: _BagOut, device_name: str) -> None:
    out.put_msg("/file_version", "std_msgs/msg/UInt32", 1, out.m["std_msgs/msg/UInt32"](data=3))
    for k, v in (("Name", device_name), ("Serial Number", "000000000000"), ("Firmware Version", "5.16.0.1"),
                 ("Physical Port", "gaitdata"), ("Product Id", "0B07"), ("Product Line", "D400")):  # fmt: skip
        out.key_value("/device_0/info", 1, k, v)


def _write_stream(out: _BagOut, rec: RecordingData, kind: str, prefix: str, sensor_name: str, sensor_idx: int) -> None:
    """Sensor name, stream info, camera info, extrinsics (and depth units) of one stream."""
    m = out.m
    Header, Time = m["std_msgs/msg/Header"], m["builtin_interfaces/msg/Time"]
    Vector3, Quaternion = m["geometry_msgs/msg/Vector3"], m["geometry_msgs/msg/Quaternion"]
    out.key_value(f"/device_0/sensor_{sensor_idx}/info", 1, "Name", sensor_name)
    intr = rec.depth_intrinsics if kind == "depth" else rec.colour_intrinsics
    enc = "mono16" if kind == "depth" else "rgb8"
    info = m["realsense_msgs/msg/StreamInfo"](fps=round(rec.fps), encoding=enc, is_recommended=True)
    out.put(f"{prefix}/info", "realsense_msgs/msg/StreamInfo", 1, out.ser(info, "realsense_msgs/msg/StreamInfo"),
            md5=_STREAM_INFO_MD5, msgdef=_STREAM_INFO_MSG)  # fmt: skip
    cam = m["sensor_msgs/msg/CameraInfo"](
        header=Header(seq=0, stamp=Time(sec=0, nanosec=0), frame_id=""),
        height=intr.height, width=intr.width, distortion_model=_rs.model_to_rs(intr.model),
        D=np.asarray(intr.coeffs, dtype=np.float64),
        K=np.array([intr.fx, 0, intr.cx, 0, intr.fy, intr.cy, 0, 0, 1], dtype=np.float64),
        R=np.zeros(9, dtype=np.float64), P=np.zeros(12, dtype=np.float64), binning_x=0, binning_y=0,
        roi=m["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )  # fmt: skip
    out.put_msg(f"{prefix}/info/camera_info", "sensor_msgs/msg/CameraInfo", 1, cam)
    ext = rec.depth_to_colour if kind == "colour" else None
    q, tr = ((0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0)) if ext is None else (_rs.rot_to_quat(ext.R), ext.translation)
    tf = m["geometry_msgs/msg/Transform"](translation=Vector3(x=tr[0], y=tr[1], z=tr[2]),
                                          rotation=Quaternion(x=q[0], y=q[1], z=q[2], w=q[3]))  # fmt: skip
    out.put_msg(f"{prefix}/tf/0", "geometry_msgs/msg/Transform", 1, tf)
    if kind == "depth":
        out.put_msg(_rs.DEPTH_UNITS_TOPIC, "std_msgs/msg/Float32", 1, m["std_msgs/msg/Float32"](data=float(rec.depth_scale)))
        out.put_msg("/device_0/sensor_0/option/Depth Units/description", "std_msgs/msg/String", 1,
                    m["std_msgs/msg/String"](data="Number of meters represented by a single depth unit"))  # fmt: skip


def _write_frames(out: _BagOut, rec: RecordingData, colour_prefix: str) -> None:
    """Image messages (+ metadata), interleaved by time as a camera delivers them."""
    m = out.m
    Header, Time, Image = m["std_msgs/msg/Header"], m["builtin_interfaces/msg/Time"], m["sensor_msgs/msg/Image"]
    t_first = min([float(rec.colour_ts_ms[0])] + ([float(rec.depth_ts_ms[0])] if rec.has_depth else []))
    events = [(float(t), 1, i) for i, t in enumerate(rec.colour_ts_ms)]
    if rec.has_depth:
        events += [(float(t), 0, i) for i, t in enumerate(rec.depth_ts_ms)]
    events.sort()
    units = struct.pack("<f", float(rec.depth_scale))
    for t_ms, is_colour, i in events:
        if is_colour:
            img, prefix, enc, n, tail = rec.colour[i], colour_prefix, "rgb8", rec.colour_frame_numbers[i], b"\0\0\0\0"
        else:
            img, prefix, enc, n, tail = rec.depth[i], _rs.DEPTH_PREFIX, "mono16", rec.depth_frame_numbers[i], units
        img = np.ascontiguousarray(img)
        h, wd = img.shape[:2]
        ns = round(t_ms * 1e6)
        msg = Image(
            header=Header(seq=int(n), stamp=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000), frame_id=""),
            height=h, width=wd, encoding=enc, is_bigendian=0, step=img.strides[0],
            data=np.frombuffer(img.tobytes(), dtype=np.uint8),
        )  # fmt: skip
        t_ns = round((t_ms - t_first) * 1e6) + 1_000_000
        out.put(f"{prefix}/image/data", "sensor_msgs/msg/Image", t_ns, out.ser(msg, "sensor_msgs/msg/Image") + tail,
                md5=_IMAGE_MD5)  # fmt: skip
        for k, v in (("system_time", f"{t_ms:.6f}"), ("timestamp_domain", "Hardware Clock"),
                     ("Frame Timestamp", str(round(t_ms * 1000)))):  # fmt: skip
            out.key_value(f"{prefix}/image/metadata", t_ns, k, v)
