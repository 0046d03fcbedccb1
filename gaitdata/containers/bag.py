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


def write_bag(rec: RecordingData, path: str | Path, *, device_name: str = "Intel RealSense D435") -> Path:
    """Write ``rec`` as an uncompressed RealSense ROS1 bag librealsense plays back frame for frame."""
    from rosbags.rosbag1 import Writer

    path = Path(path)
    ts = _typestore()
    m = ts.types
    Header, Time = m["std_msgs/msg/Header"], m["builtin_interfaces/msg/Time"]
    KeyValue, UInt32, Float32, String = (
        m["diagnostic_msgs/msg/KeyValue"], m["std_msgs/msg/UInt32"], m["std_msgs/msg/Float32"], m["std_msgs/msg/String"],
    )  # fmt: skip
    CameraInfo, Image, Transform = (
        m["sensor_msgs/msg/CameraInfo"],
        m["sensor_msgs/msg/Image"],
        m["geometry_msgs/msg/Transform"],
    )
    Vector3, Quaternion = m["geometry_msgs/msg/Vector3"], m["geometry_msgs/msg/Quaternion"]
    RegionOfInterest, StreamInfo = m["sensor_msgs/msg/RegionOfInterest"], m["realsense_msgs/msg/StreamInfo"]

    def ser(msg, typ: str) -> bytes:
        return bytes(ts.serialize_ros1(msg, typ))

    def stamp(ms: float):
        ns = round(ms * 1e6)
        return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    # sensor indices must be contiguous for librealsense: colour is sensor 1 after depth, else sensor 0
    colour_prefix = _rs.COLOUR_PREFIX if rec.has_depth else _rs.COLOUR_PREFIX.replace("sensor_1", "sensor_0")
    streams = [("colour", colour_prefix, "RGB Camera", 1 if rec.has_depth else 0)]
    if rec.has_depth:
        streams.insert(0, ("depth", _rs.DEPTH_PREFIX, "Stereo Module", 0))
    t_first = min([float(rec.colour_ts_ms[0])] + ([float(rec.depth_ts_ms[0])] if rec.has_depth else []))

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.unlink(missing_ok=True)
    with Writer(tmp) as w:  # no set_compression: librealsense needs plain chunks
        conns: dict[tuple[str, str], object] = {}

        def conn(topic: str, typ: str, md5: str | None = None, msgdef: str | None = None):
            key = (topic, typ)
            if key not in conns:
                kwargs = {"typestore": ts}
                if md5:
                    kwargs["md5sum"] = md5
                if msgdef:
                    kwargs["msgdef"] = msgdef
                conns[key] = w.add_connection(topic, typ, **kwargs)
            return conns[key]

        def put(topic: str, typ: str, t_ns: int, data: bytes, **kw) -> None:
            w.write(conn(topic, typ, **kw), t_ns, data)

        put("/file_version", "std_msgs/msg/UInt32", 1, ser(UInt32(data=3), "std_msgs/msg/UInt32"))
        for k, v in (("Name", device_name), ("Serial Number", "000000000000"), ("Firmware Version", "5.16.0.1"),
                     ("Physical Port", "gaitdata"), ("Product Id", "0B07"), ("Product Line", "D400")):  # fmt: skip
            put(
                "/device_0/info",
                "diagnostic_msgs/msg/KeyValue",
                1,
                ser(KeyValue(key=k, value=v), "diagnostic_msgs/msg/KeyValue"),
            )
        for kind, prefix, sensor_name, sensor_idx in streams:
            sensor = f"/device_0/sensor_{sensor_idx}"
            put(f"{sensor}/info", "diagnostic_msgs/msg/KeyValue", 1,
                ser(KeyValue(key="Name", value=sensor_name), "diagnostic_msgs/msg/KeyValue"))  # fmt: skip
            intr = rec.depth_intrinsics if kind == "depth" else rec.colour_intrinsics
            enc = "mono16" if kind == "depth" else "rgb8"
            put(f"{prefix}/info", "realsense_msgs/msg/StreamInfo", 1,
                ser(StreamInfo(fps=round(rec.fps), encoding=enc, is_recommended=True), "realsense_msgs/msg/StreamInfo"),
                md5=_STREAM_INFO_MD5, msgdef=_STREAM_INFO_MSG)  # fmt: skip
            cam = CameraInfo(
                header=Header(seq=0, stamp=Time(sec=0, nanosec=0), frame_id=""),
                height=intr.height, width=intr.width, distortion_model=_rs.model_to_rs(intr.model),
                D=np.asarray(intr.coeffs, dtype=np.float64),
                K=np.array([intr.fx, 0, intr.cx, 0, intr.fy, intr.cy, 0, 0, 1], dtype=np.float64),
                R=np.zeros(9, dtype=np.float64), P=np.zeros(12, dtype=np.float64), binning_x=0, binning_y=0,
                roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
            )  # fmt: skip
            put(
                f"{prefix}/info/camera_info",
                "sensor_msgs/msg/CameraInfo",
                1,
                ser(cam, "sensor_msgs/msg/CameraInfo"),
            )
            ext = rec.depth_to_colour if kind == "colour" else None
            if ext is None:
                q, tr = (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0)
            else:
                q, tr = _rs.rot_to_quat(ext.R), ext.translation
            tf = Transform(
                translation=Vector3(x=tr[0], y=tr[1], z=tr[2]),
                rotation=Quaternion(x=q[0], y=q[1], z=q[2], w=q[3]),
            )
            put(f"{prefix}/tf/0", "geometry_msgs/msg/Transform", 1, ser(tf, "geometry_msgs/msg/Transform"))
            if kind == "depth":
                put(_rs.DEPTH_UNITS_TOPIC, "std_msgs/msg/Float32", 1,
                    ser(Float32(data=float(rec.depth_scale)), "std_msgs/msg/Float32"))  # fmt: skip
                put("/device_0/sensor_0/option/Depth Units/description", "std_msgs/msg/String", 1,
                    ser(String(data="Number of meters represented by a single depth unit"), "std_msgs/msg/String"))  # fmt: skip

        # frames, interleaved by time as a camera delivers them
        events = [(float(t), 1, i) for i, t in enumerate(rec.colour_ts_ms)]
        if rec.has_depth:
            events += [(float(t), 0, i) for i, t in enumerate(rec.depth_ts_ms)]
        events.sort()
        units = struct.pack("<f", float(rec.depth_scale))
        for t_ms, is_colour, i in events:
            if is_colour:
                img, prefix, enc, n, tail = (
                    rec.colour[i],
                    colour_prefix,
                    "rgb8",
                    rec.colour_frame_numbers[i],
                    b"\0\0\0\0",
                )
            else:
                img, prefix, enc, n, tail = (
                    rec.depth[i],
                    _rs.DEPTH_PREFIX,
                    "mono16",
                    rec.depth_frame_numbers[i],
                    units,
                )
            img = np.ascontiguousarray(img)
            h, wd = img.shape[:2]
            msg = Image(
                header=Header(seq=int(n), stamp=stamp(t_ms), frame_id=""), height=h, width=wd, encoding=enc,
                is_bigendian=0, step=img.strides[0], data=np.frombuffer(img.tobytes(), dtype=np.uint8),
            )  # fmt: skip
            t_ns = round((t_ms - t_first) * 1e6) + 1_000_000
            put(
                f"{prefix}/image/data",
                "sensor_msgs/msg/Image",
                t_ns,
                ser(msg, "sensor_msgs/msg/Image") + tail,
                md5=_IMAGE_MD5,
            )
            for k, v in (("system_time", f"{t_ms:.6f}"), ("timestamp_domain", "Hardware Clock"),
                         ("Frame Timestamp", str(round(t_ms * 1000)))):  # fmt: skip
                put(f"{prefix}/image/metadata", "diagnostic_msgs/msg/KeyValue", t_ns,
                    ser(KeyValue(key=k, value=v), "diagnostic_msgs/msg/KeyValue"))  # fmt: skip
    os.replace(tmp, path)  # atomic publish
    return path
