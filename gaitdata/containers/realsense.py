"""Frame-exact RealSense readers for ``.bag`` (ROS1) and ``.db3`` (ROS2 sqlite).

Two implementations read the same files to the same pixels:

* :class:`PyRealSenseRecording` (pyrealsense2 >= 2.59): the playback device's sensors are opened
  directly with callbacks (no ``pipeline``/``syncer``, which drop and re-pair frames), non-real-time,
  and each frame is matched to the container's index by frame number and timestamp. Depth is
  registered with ``rs.align`` on a frameset built by a processing block. End of file = playback
  ``stopped`` plus a short quiet period.
* :class:`BagRecording` / :class:`Db3Recording`: pure Python (rosbags + sqlite3 + a small parser),
  used when pyrealsense2 cannot be imported; depth is registered by :mod:`gaitdata.align`.

Both build the frame index with the pure-Python parser, so pairing never depends on playback.
"""

from __future__ import annotations

import contextlib
import queue
import re
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from gaitdata.containers import _rs
from gaitdata.containers.base import FrameIndex, Item, Recording, RecordingInfo, check_monotone
from gaitdata.errors import GaitdataError
from gaitdata.records import Extrinsics, Intrinsics

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_STREAM_RE = re.compile(r"^/device_(\d+)/sensor_(\d+)/(Depth|Color)_(\d+)/")


def _compose(ref_to_depth: Extrinsics, ref_to_colour: Extrinsics) -> Extrinsics:
    """depth->colour = (ref->colour) o (ref->depth)^-1."""
    rd, td = ref_to_depth.R, ref_to_depth.t
    rc, tc = ref_to_colour.R, ref_to_colour.t
    r = rc @ rd.T
    t = tc - r @ td
    return Extrinsics(rotation=tuple(r.reshape(-1)), translation=tuple(t))


def _decode_colour(raw: np.ndarray, encoding: str, h: int, w: int, step: int) -> np.ndarray:
    enc = encoding.lower()
    ch = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4}.get(enc)
    if ch is None:
        raise GaitdataError(f"colour encoding {encoding!r} is not supported (rgb8, bgr8, rgba8, bgra8)")
    img = np.frombuffer(raw, dtype=np.uint8, count=h * step).reshape(h, step)[:, : w * ch].reshape(h, w, ch)
    if enc.startswith("bgr"):
        img = img[..., 2::-1]
    return np.ascontiguousarray(img[..., :3])


def _decode_depth(raw: np.ndarray, encoding: str, h: int, w: int, step: int) -> np.ndarray:
    if encoding.lower() not in ("mono16", "16uc1", "z16"):
        raise GaitdataError(f"depth encoding {encoding!r} is not supported (mono16 / 16UC1)")
    return np.frombuffer(raw, dtype="<u2", count=h * step // 2).reshape(h, step // 2)[:, :w].copy()


# ---- ROS1 .bag --------------------------------------------------------------------------------------
def _parse_ros1_image(b: bytes | memoryview) -> tuple[int, float, int, int, str, int, memoryview]:
    """(seq, stamp_ms, height, width, encoding, step, data) of a (librealsense) sensor_msgs/Image."""
    mv = memoryview(b)
    seq, sec, nsec = struct.unpack_from("<III", mv, 0)
    off = 12
    (n,) = struct.unpack_from("<I", mv, off)
    off += 4 + n
    h, w = struct.unpack_from("<II", mv, off)
    off += 8
    (n,) = struct.unpack_from("<I", mv, off)
    enc = bytes(mv[off + 4 : off + 4 + n]).decode()
    off += 4 + n + 1
    step, n = struct.unpack_from("<II", mv, off)
    off += 8
    if off + n > len(mv):
        raise GaitdataError("image message is truncated")
    return seq, sec * 1000.0 + nsec / 1e6, h, w, enc, step, mv[off : off + n]


def _bag_messages(reader, conns: list) -> Iterator[tuple[int, bytes | None]]:
    """``(connection id, raw message or None)`` of ``conns`` in file order; a message whose record is
    damaged comes as None and reading goes on with the next one (the bag's index says where it is)."""
    entries = sorted((e, c.id) for c in conns for e in reader.indexes.get(c.id, ()))
    done = 0
    start = None
    while done < len(entries):
        skip = sum(1 for e, _ in entries[:done] if start is not None and e.time == start)
        try:
            for conn, _, raw in reader.messages(connections=conns, start=start):
                if skip:
                    skip -= 1
                    continue
                done += 1
                yield conn.id, raw
            return
        except Exception:  # rosbags' ReaderError, or a struct/decompression error on damaged bytes
            yield entries[done][1], None
            done += 1
            start = entries[done][0].time if done < len(entries) else None


class BagRecording(Recording):
    """Pure-Python reader of RealSense ROS1 bags (rosbags)."""

    reader_name = "python"

    def __init__(self, path: str | Path):
        from rosbags.rosbag1 import Reader

        from gaitdata.containers.bag import _typestore

        self.path = Path(path)
        self._ts = _typestore()
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:
            raise GaitdataError(
                f"{self.path}: not a readable ROS1 bag ({_one_line(exc)}); the file is truncated or corrupt "
                f"(was the recording interrupted?) - re-record or re-copy it"
            ) from exc
        try:
            self.info = self._index()
        except GaitdataError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise GaitdataError(f"{self.path}: cannot index the RealSense bag ({_one_line(exc)})") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._reader.close()

    def _conns(self, suffix: str) -> dict[str, list]:
        out: dict[str, list] = {}
        for c in self._reader.connections:
            m = _STREAM_RE.match(c.topic)
            if m and c.topic.endswith(suffix):
                out.setdefault(m.group(3), []).append(c)
        return out

    def _first(self, conns: list, typ: str):
        if not conns:  # rosbags reads every topic when given none
            return None
        for _conn, _, raw in self._reader.messages(connections=conns):
            return self._ts.deserialize_ros1(bytes(raw), typ) if typ else bytes(raw)
        return None

    def _index(self) -> RecordingInfo:
        data = self._conns("/image/data")
        if "Color" not in data:
            raise GaitdataError(
                f"{self.path}: the bag has no colour stream (Color_0 image topic); nothing to extract"
            )
        self._data_conns = data
        idx: dict[str, tuple[list, list]] = {k: ([], []) for k in data}
        sizes: dict[str, tuple[int, int]] = {}
        kind_of = {c.id: k for k, cs in data.items() for c in cs}
        self._damaged = self._damaged_total = 0
        for cid, raw in _bag_messages(self._reader, [c for cs in data.values() for c in cs]):
            k = kind_of[cid]
            try:
                seq, ts, h, w, *_ = _parse_ros1_image(raw) if raw is not None else (None,) * 4
            except (GaitdataError, struct.error, UnicodeDecodeError):
                seq = None
            if seq is None:  # a damaged record: not in the index (frames() skips it the same way)
                self._damaged += k == "Color"
                self._damaged_total += 1
                continue
            idx[k][0].append(seq)
            idx[k][1].append(ts)
            sizes.setdefault(k, (w, h))
        infos = {k: self._conns(k_suffix) for k, k_suffix in (("ci", "/info/camera_info"), ("tf", "/tf/0"))}
        intr: dict[str, Intrinsics] = {}
        ext: dict[str, Extrinsics] = {}
        for k in data:
            ci = self._first(infos["ci"].get(k, []), "sensor_msgs/msg/CameraInfo")
            if ci is not None:
                intr[k] = _rs.intrinsics_from_k(
                    ci.width, ci.height, ci.K, _rs.model_from_rs(ci.distortion_model), ci.D
                )
            tf = self._first(infos["tf"].get(k, []), "geometry_msgs/msg/Transform")
            if tf is not None:
                q, t = tf.rotation, tf.translation  # librealsense keeps rs2_extrinsics in float32
                r = _rs.quat_to_rot(*(np.float32(v) for v in (q.x, q.y, q.z, q.w))).astype(np.float32)
                tr = np.array([t.x, t.y, t.z], dtype=np.float32)
                ext[k] = Extrinsics(
                    rotation=tuple(r.astype(np.float64).reshape(-1)), translation=tuple(tr.astype(np.float64))
                )
        fps = 30.0
        si = self._first(self._conns("/info").get("Color", []), "")
        if si:
            fps = float(struct.unpack_from("<I", si, 0)[0]) or fps
        colour = FrameIndex(np.array(idx["Color"][0]), np.array(idx["Color"][1]))
        check_monotone(colour, "colour", self.path)
        notes: list[str] = []
        depth = None
        scale = None
        d2c = None
        if "Depth" in data and idx["Depth"][0]:
            depth = FrameIndex(np.array(idx["Depth"][0]), np.array(idx["Depth"][1]))
            check_monotone(depth, "depth", self.path)
            units = [c for c in self._reader.connections if c.topic == _rs.DEPTH_UNITS_TOPIC]
            raw_units = self._first(units, "")
            scale = float(np.float32(struct.unpack_from("<f", raw_units, 0)[0])) if raw_units else 0.001
            if "Depth" in ext and "Color" in ext:
                d2c = _compose(ext["Depth"], ext["Color"])
            else:
                notes.append("no extrinsics in the file: depth->colour assumed identity")
                d2c = Extrinsics()
            if "Depth" not in intr or "Color" not in intr:
                raise GaitdataError(
                    f"{self.path}: the bag has no camera_info for both streams; cannot register depth"
                )
        else:
            notes.append("no depth stream: colour only")
        if self._damaged_total:
            notes.append(f"{self._damaged_total} image records are damaged ({self._damaged} colour): skipped")
        w, h = sizes["Color"]
        return RecordingInfo(
            kind="bag", path=self.path, colour=colour, colour_size=(w, h), fps=fps, colour_intrinsics=intr.get("Color"),
            depth=depth, depth_intrinsics=intr.get("Depth") if depth is not None else None, depth_to_colour=d2c,
            depth_scale=scale, notes=tuple(notes), n_unindexed=self._damaged,
        )  # fmt: skip

    def frames(self, colour_positions: Sequence[int], depth_positions: Sequence[int]) -> Iterator[Item]:
        want = {"Color": set(map(int, colour_positions)), "Depth": set(map(int, depth_positions))}
        left = sum(len(v) for v in want.values())
        counters = {"Color": -1, "Depth": -1}
        kind_of = {c.id: k for k, cs in self._data_conns.items() for c in cs}
        for cid, raw in _bag_messages(self._reader, [c for cs in self._data_conns.values() for c in cs]):
            if left == 0:
                return
            k = kind_of[cid]
            try:
                if raw is None:
                    continue
                _parse_ros1_image(raw)
            except (GaitdataError, struct.error, UnicodeDecodeError):
                continue  # left out of the index too
            counters[k] += 1
            pos = counters[k]
            if pos not in want.get(k, ()):
                continue
            left -= 1
            try:
                _, _, h, w, enc, step, data = _parse_ros1_image(raw)
                arr = np.frombuffer(data, dtype=np.uint8)
                img = (
                    _decode_colour(arr, enc, h, w, step)
                    if k == "Color"
                    else _decode_depth(arr, enc, h, w, step)
                )
            except (GaitdataError, ValueError, struct.error):
                img = None
            yield ("colour" if k == "Color" else "depth", pos, img)


# ---- ROS2 .db3 --------------------------------------------------------------------------------------
def _cdr_string(blob: bytes) -> str:
    (n,) = struct.unpack_from("<I", blob, 4)
    return blob[8 : 8 + n].rstrip(b"\0").decode("utf-8", "replace")


def _kv(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _maybe_zstd(blob: bytes) -> bytes:
    if blob[:4] == _ZSTD_MAGIC:
        from gaitdata.errors import require

        zstd = require("zstandard", "realsense")
        return zstd.ZstdDecompressor().decompress(blob, max_output_size=1 << 30)
    return blob


class Db3Recording(Recording):
    """Pure-Python reader of RealSense ROS2 ``.db3`` recordings (raw, PNG or zstd-compressed messages)."""

    reader_name = "python"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            rows = self._db.execute("SELECT id, name, type FROM topics").fetchall()
        except sqlite3.Error as exc:
            with contextlib.suppress(Exception):
                self._db.close()
            raise GaitdataError(
                f"{self.path}: not a readable RealSense .db3 ({_one_line(exc)}); the file is truncated, "
                f"corrupt or not a ROS2 sqlite bag - re-record or re-copy it"
            ) from exc
        self._topics = {name: (tid, typ) for tid, name, typ in rows}
        from rosbags.typesys import Stores, get_typestore

        self._ts = get_typestore(Stores.ROS2_HUMBLE)
        try:
            self.info = self._index()
        except GaitdataError:
            self.close()
            raise
        except (sqlite3.Error, ValueError, KeyError, struct.error) as exc:
            self.close()
            raise GaitdataError(f"{self.path}: cannot index the RealSense .db3 ({_one_line(exc)})") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()

    def _stream_topics(self, kind: str) -> dict[str, str]:
        prefix = next((n.split("/image/")[0] for n in self._topics if _STREAM_RE.match(n) and f"/{kind}_" in n
                       and "/image/data" in n), None)  # fmt: skip
        if prefix is None:
            return {}
        out = {"prefix": prefix}
        for n in self._topics:
            if n.startswith(prefix + "/image/data"):
                out["data"] = n
            elif n == prefix + "/image/metadata":
                out["metadata"] = n
            elif n == prefix + "/image/camera_info":
                out["camera_info"] = n
            elif n == prefix + "/camera_info":
                out["camera_info_text"] = n
            elif n == prefix + "/info":
                out["info"] = n
            elif n.startswith(prefix + "/tf/"):
                out["tf"] = n
        return out

    def _messages(self, topic: str, limit: int | None = None) -> list[tuple[int, bytes]]:
        tid = self._topics[topic][0]
        sql = "SELECT timestamp, data FROM messages WHERE topic_id = ? ORDER BY timestamp, id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [(t, _maybe_zstd(bytes(d))) for t, d in self._db.execute(sql, (tid,))]

    def _stream_index(self, st: dict[str, str]) -> tuple[FrameIndex, list[int]]:
        if "metadata" not in st:
            raise GaitdataError(
                f"{self.path}: stream {st['prefix']} has no metadata topic (frame numbers/timestamps)"
            )
        fns, tss, stamps = [], [], []
        for t, blob in self._messages(st["metadata"]):
            kv = _kv(_cdr_string(blob))
            fns.append(int(kv.get("Frame number", len(fns))))
            tss.append(float(kv["timestamp"]))
            stamps.append(t)
        return FrameIndex(np.array(fns, dtype=np.int64), np.array(tss)), stamps

    def _intrinsics(self, st: dict[str, str]) -> Intrinsics | None:
        model = "none"
        if "camera_info_text" in st:
            kv = _kv(_cdr_string(self._messages(st["camera_info_text"], 1)[0][1]))
            model = _rs.model_from_rs(kv.get("model", "None"))
            if "camera_info" not in st:
                return Intrinsics(int(kv["width"]), int(kv["height"]), float(kv["fx"]), float(kv["fy"]),
                                  float(kv["ppx"]), float(kv["ppy"]), model,
                                  tuple(float(c) for c in kv.get("coeffs", "0,0,0,0,0").split(",")))  # fmt: skip
        if "camera_info" in st:
            msgs = self._messages(st["camera_info"], 1)
            if msgs:
                ci = self._ts.deserialize_cdr(msgs[0][1], "sensor_msgs/msg/CameraInfo")
                return _rs.intrinsics_from_k(ci.width, ci.height, ci.k, model, ci.d)
        return None

    def _extrinsics(self, st: dict[str, str]) -> Extrinsics | None:
        if "tf" not in st:
            return None
        kv = _kv(_cdr_string(self._messages(st["tf"], 1)[0][1]))
        # the text has 6 decimals; librealsense parses it into float32, and so do we
        rot = np.array([float(v) for v in kv["rotation"].split(",")], dtype=np.float32).astype(np.float64)
        tr = np.array([float(v) for v in kv["translation"].split(",")], dtype=np.float32).astype(np.float64)
        return _rs.extrinsics_from_colmajor(rot, tr)

    def _index(self) -> RecordingInfo:
        cst, dst = self._stream_topics("Color"), self._stream_topics("Depth")
        if not cst:
            raise GaitdataError(
                f"{self.path}: the .db3 has no colour stream (Color_0 image topic); nothing to extract"
            )
        self._st = {"colour": cst, "depth": dst}
        colour, self._stamps_c = self._stream_index(cst)
        check_monotone(colour, "colour", self.path)
        fps = 30.0
        if "info" in cst:
            fps = float(_kv(_cdr_string(self._messages(cst["info"], 1)[0][1])).get("fps", fps))
        ci = self._intrinsics(cst)
        first = self._messages(cst["data"], 1)
        if not first:
            raise GaitdataError(f"{self.path}: the colour stream has no frames")
        w, h = self._decode(first[0][1], "colour").shape[1::-1] if ci is None else (ci.width, ci.height)
        notes: list[str] = []
        depth = di = d2c = scale = None
        self._stamps_d: list[int] = []
        if dst and "data" in dst:
            depth, self._stamps_d = self._stream_index(dst)
            check_monotone(depth, "depth", self.path)
            di = self._intrinsics(dst)
            if di is None or ci is None:
                raise GaitdataError(
                    f"{self.path}: missing camera_info for depth or colour; cannot register depth"
                )
            ed, ec = self._extrinsics(dst), self._extrinsics(cst)
            if ed is not None and ec is not None:
                d2c = _compose(ed, ec)
            else:
                d2c = Extrinsics()
                notes.append("no extrinsics in the file: depth->colour assumed identity")
            scale = 0.001
            for topic in self._topics:
                if topic.endswith("/option/Depth_Units/value") or topic.endswith("/option/Depth Units/value"):
                    scale = float(np.float32(float(_cdr_string(self._messages(topic, 1)[0][1]))))
        else:
            notes.append("no depth stream: colour only")
        return RecordingInfo(
            kind="db3", path=self.path, colour=colour, colour_size=(int(w), int(h)), fps=fps, colour_intrinsics=ci,
            depth=depth, depth_intrinsics=di, depth_to_colour=d2c, depth_scale=scale, notes=tuple(notes),
        )  # fmt: skip

    def _decode(self, blob: bytes, stream: str) -> np.ndarray:
        import cv2

        topic = self._st[stream]["data"]
        if self._topics[topic][1].endswith("CompressedImage"):
            msg = self._ts.deserialize_cdr(blob, "sensor_msgs/msg/CompressedImage")
            data = np.asarray(msg.data, dtype=np.uint8)
            if stream == "depth":
                start = 12 if "compresseddepth" in msg.format.lower() else 0
                img = cv2.imdecode(data[start:], cv2.IMREAD_UNCHANGED)
                if img is None or img.dtype != np.uint16:
                    raise GaitdataError("depth PNG could not be decoded as 16-bit")
                return img
            img = cv2.imdecode(data, cv2.IMREAD_COLOR)
            if img is None:
                raise GaitdataError("colour image could not be decoded")
            return np.ascontiguousarray(img[..., ::-1])
        msg = self._ts.deserialize_cdr(blob, "sensor_msgs/msg/Image")
        raw = np.asarray(msg.data, dtype=np.uint8)
        if stream == "depth":
            return _decode_depth(raw, msg.encoding, msg.height, msg.width, msg.step)
        return _decode_colour(raw, msg.encoding, msg.height, msg.width, msg.step)

    def frames(self, colour_positions: Sequence[int], depth_positions: Sequence[int]) -> Iterator[Item]:
        import heapq

        iters = []
        for stream, positions, stamps in (("colour", colour_positions, self._stamps_c),
                                          ("depth", depth_positions, self._stamps_d)):  # fmt: skip
            positions = sorted(set(map(int, positions)))
            if positions:
                iters.append(self._stream_frames(stream, positions, stamps))
        for _, item in heapq.merge(*iters, key=lambda x: x[0]):  # both streams, by recording time
            yield item

    def _stream_frames(self, stream: str, positions: list[int], stamps: list[int]):
        """Message by message: a damaged database page costs only the frames stored on it."""
        tid = self._topics[self._st[stream]["data"]][0]
        by_stamp: dict[int, list[int]] = {}
        for p in positions:
            by_stamp.setdefault(stamps[p], []).append(p)
        rows: list[tuple[int, int]] = []
        try:
            sql = "SELECT timestamp, id FROM messages WHERE topic_id = ? ORDER BY timestamp, id"
            rows = self._db.execute(sql, (tid,)).fetchall()
        except sqlite3.DatabaseError:
            pass  # the table itself is damaged: every wanted frame is reported below
        seen: dict[int, int] = {}
        done: set[int] = set()
        for t, mid in rows:
            if len(done) == len(positions):
                break
            ps = by_stamp.get(t)
            if not ps:
                continue
            k = seen.get(t, 0)
            seen[t] = k + 1
            if k >= len(ps):
                continue
            try:
                (blob,) = self._db.execute("SELECT data FROM messages WHERE id = ?", (mid,)).fetchone()
                img = self._decode(_maybe_zstd(bytes(blob)), stream)
            except Exception:  # a damaged page or message becomes one decode_error frame
                img = None
            done.add(ps[k])
            yield (t, (stream, ps[k], img))
        for p in positions:
            if p not in done:
                yield (stamps[p], (stream, p, None))


# ---- pyrealsense2 ----------------------------------------------------------------------------------
class PyRealSenseRecording(Recording):
    """Frame-exact reading with librealsense: sensor callbacks on the playback device + our own pairing."""

    reader_name = "pyrealsense2"
    depth_registered = True

    def __init__(self, path: str | Path, quiet_s: float = 0.25, timeout_s: float = 30.0):
        self.path = Path(path)
        self._py = (BagRecording if self.path.suffix.lower() == ".bag" else Db3Recording)(
            self.path
        )  # the index
        self.quiet_s = quiet_s
        self.timeout_s = timeout_s
        base = self._py.info
        self._py.close()
        rs = _rs_module()
        self._rs = rs
        try:
            ctx = rs.context()
            dev = ctx.load_device(str(self.path))
        except RuntimeError as exc:
            raise GaitdataError(
                f"{self.path}: librealsense cannot open the recording ({_one_line(exc)})"
            ) from exc
        try:
            pb = dev.as_playback()
            pb.set_real_time(False)
            sensors = dev.query_sensors()
            self._dev, self._pb, self._sensors = dev, pb, sensors
            ci = di = d2c = None
            scale = base.depth_scale
            cprof = dprof = None
            for s in sensors:
                for p in s.get_stream_profiles():
                    if p.stream_type() == rs.stream.color and cprof is None:
                        cprof = p
                    elif p.stream_type() == rs.stream.depth and dprof is None:
                        dprof = p
            if cprof is None:
                raise GaitdataError(f"{self.path}: librealsense finds no colour stream in the recording")
            ci = _intr_from_rs(cprof.as_video_stream_profile().get_intrinsics())
            if dprof is not None and base.depth is not None:
                di = _intr_from_rs(dprof.as_video_stream_profile().get_intrinsics())
                e = dprof.get_extrinsics_to(cprof)
                d2c = _rs.extrinsics_from_colmajor(list(e.rotation), list(e.translation))
                with contextlib.suppress(RuntimeError):
                    scale = float(dev.first_depth_sensor().get_depth_scale())
        except Exception:
            self.close()
            raise
        self._cprof, self._dprof = cprof, dprof if base.depth is not None else None
        self.info = RecordingInfo(
            kind=base.kind, path=self.path, colour=base.colour, colour_size=base.colour_size, fps=base.fps,
            colour_intrinsics=ci, depth=base.depth, depth_intrinsics=di, depth_to_colour=d2c, depth_scale=scale,
            notes=base.notes, n_unindexed=base.n_unindexed,
        )  # fmt: skip

    def close(self) -> None:
        for s in getattr(self, "_sensors", []):
            with contextlib.suppress(Exception):
                s.stop()
            with contextlib.suppress(Exception):
                s.close()
        self._sensors = []
        self._dev = self._pb = None

    def frames(self, colour_positions: Sequence[int], depth_positions: Sequence[int]) -> Iterator[Item]:
        rs = self._rs
        info = self.info
        want = {"colour": set(map(int, colour_positions)), "depth": set(map(int, depth_positions))}
        lookup = {
            "colour": _position_lookup(info.colour),
            "depth": _position_lookup(info.depth) if info.depth is not None else {},
        }
        q: queue.Queue = queue.Queue()
        last = [time.monotonic()]
        consuming, stopping = threading.Event(), threading.Event()

        def callback(frame) -> None:
            st = frame.get_profile().stream_type()
            stream = "colour" if st == rs.stream.color else "depth" if st == rs.stream.depth else None
            if stream is None:
                return
            last[0] = time.monotonic()
            pos = _find_position(lookup[stream], int(frame.get_frame_number()), float(frame.get_timestamp()))
            if pos is None or pos not in want[stream]:
                return
            frame.keep()
            # Backpressure without deadlock: never block while the main thread may be inside a
            # librealsense call that waits for this callback (resume/stop), only while it consumes.
            while not stopping.is_set():
                if not consuming.is_set() or q.qsize() < 16:
                    q.put((stream, pos, frame))
                    break
                time.sleep(0.002)
            last[0] = time.monotonic()

        wanted_ids = {self._cprof.unique_id()} | (
            {self._dprof.unique_id()} if self._dprof is not None else set()
        )
        streams = [
            (s, p) for s in self._sensors for p in s.get_stream_profiles() if p.unique_id() in wanted_ids
        ]
        opened = []
        for s, p in streams:
            s.open(p)
            opened.append(s)
        self._pb.pause()
        for s in opened:
            s.start(callback)
        self._pb.resume()
        consuming.set()
        left = len(want["colour"]) + len(want["depth"])
        delivered: dict[str, set[int]] = {"colour": set(), "depth": set()}
        pending_depth: list = []
        ref_colour = None
        state: dict = {}
        align = rs.align(rs.stream.color)

        def composite(frame, source) -> None:
            source.frame_ready(source.allocate_composite_frame([state["depth"], frame]))

        block = rs.processing_block(composite)
        outq = rs.frame_queue(2, keep_frames=True)
        block.start(outq)

        def register(depth_frame) -> np.ndarray | None:
            state["depth"] = depth_frame
            block.invoke(ref_colour)
            fs = outq.wait_for_frame(5000).as_frameset()
            out = align.process(fs).get_depth_frame()
            return np.asanyarray(out.get_data()).copy() if out else None

        t_start = time.monotonic()
        try:
            while left > 0:
                try:
                    stream, pos, frame = q.get(timeout=0.02)
                except queue.Empty:
                    stopped = self._pb.current_status() == rs.playback_status.stopped
                    idle = time.monotonic() - last[0]
                    if (
                        (stopped and idle > self.quiet_s)
                        or idle > self.timeout_s
                        or time.monotonic() - t_start > 3600
                    ):
                        break
                    continue
                left -= 1
                delivered[stream].add(pos)
                if stream == "colour":
                    img = np.asanyarray(frame.get_data())
                    img = _colour_to_rgb(img, frame.get_profile().format(), rs)
                    if ref_colour is None:
                        ref_colour = frame
                    yield ("colour", pos, img)
                    if ref_colour is not frame:
                        frame = None
                    for dpos, dframe in pending_depth:
                        yield ("depth", dpos, register(dframe))
                    pending_depth.clear()
                elif ref_colour is None:
                    pending_depth.append((pos, frame))
                else:
                    yield ("depth", pos, register(frame))
            for dpos, _ in pending_depth:  # never saw a colour frame to register with: read below
                delivered["depth"].discard(dpos)
        finally:
            stopping.set()
            consuming.clear()
            state.clear()
            ref_colour = None
            with contextlib.suppress(Exception):
                block = None
                outq = None
            for s in opened:
                with contextlib.suppress(Exception):
                    s.stop()
                with contextlib.suppress(Exception):
                    s.close()
            pending_depth.clear()
            state.clear()
            while not q.empty():
                q.get_nowait()
        missing = {k: sorted(want[k] - delivered[k]) for k in want}
        if missing["colour"] or missing["depth"]:
            yield from self._read_rest(missing["colour"], missing["depth"])

    def _read_rest(self, colour_positions: list[int], depth_positions: list[int]) -> Iterator[Item]:
        """Frames librealsense did not deliver (it stops at damaged data): the pure-Python reader, numpy registration."""
        from gaitdata.align import Aligner

        n = len(colour_positions) + len(depth_positions)
        self.read_notes.append(
            f"librealsense did not deliver {n} wanted frames (colour and depth; e.g. damaged data): they were read "
            f"with the pure-Python reader"
        )
        info = self.info
        aligner = None
        if depth_positions and info.has_depth:
            aligner = Aligner(info.depth_intrinsics, info.colour_intrinsics, info.depth_to_colour, info.depth_scale)
        try:
            py = (BagRecording if self.path.suffix.lower() == ".bag" else Db3Recording)(self.path)
        except GaitdataError:
            return  # the positions stay undelivered and are reported as decode errors
        try:
            for stream, pos, img in py.frames(colour_positions, depth_positions):
                if stream == "depth" and img is not None:
                    try:
                        img = aligner(img) if aligner is not None else None
                    except ValueError:
                        img = None
                yield (stream, pos, img)
        finally:
            py.close()


def _colour_to_rgb(img: np.ndarray, fmt, rs) -> np.ndarray:
    if fmt == rs.format.bgr8:
        return np.ascontiguousarray(img[..., ::-1])
    if fmt in (rs.format.rgba8,):
        return np.ascontiguousarray(img[..., :3])
    if fmt in (rs.format.bgra8,):
        return np.ascontiguousarray(img[..., 2::-1])
    return img.copy()


def _position_lookup(index: FrameIndex) -> dict[int, list[tuple[float, int]]]:
    out: dict[int, list[tuple[float, int]]] = {}
    for i, (n, t) in enumerate(zip(index.frame_numbers.tolist(), index.ts_ms.tolist(), strict=True)):
        out.setdefault(n, []).append((t, i))
    return out


def _find_position(lookup: dict[int, list[tuple[float, int]]], number: int, ts_ms: float) -> int | None:
    """The index position of a played-back frame: same frame number, timestamp within 0.5 ms."""
    for t, i in lookup.get(number, ()):
        if abs(t - ts_ms) < 0.5:
            return i
    return None


def _intr_from_rs(i) -> Intrinsics:
    return Intrinsics(width=i.width, height=i.height, fx=i.fx, fy=i.fy, cx=i.ppx, cy=i.ppy,
                      model=_rs.model_from_rs(str(i.model)), coeffs=tuple(i.coeffs))  # fmt: skip


def _rs_module():
    from gaitdata.errors import require

    rs = require("pyrealsense2", "realsense")
    version = tuple(int(v) for v in re.findall(r"\d+", getattr(rs, "__version__", "0.0"))[:2])
    if version < (2, 59):
        raise GaitdataError(
            f"pyrealsense2 {rs.__version__} is too old: >= 2.59 reads every .bag/.db3 variant "
            f"(2.58 silently reads PNG .db3 as zero frames). Upgrade: pip install 'pyrealsense2>=2.59'"
        )
    return rs


def pyrealsense2_available() -> bool:
    try:
        _rs_module()
        return True
    except (GaitdataError, ImportError):
        return False


def open_realsense(path: str | Path, reader: str = "auto") -> Recording:
    """Open a ``.bag``/``.db3``. ``reader``: ``auto`` (pyrealsense2 when importable), ``pyrealsense2``, ``python``."""
    import warnings

    path = Path(path)
    if reader not in ("auto", "pyrealsense2", "python"):
        raise ValueError(f"reader must be auto, pyrealsense2 or python, got {reader!r}")
    if reader == "pyrealsense2" or (reader == "auto" and pyrealsense2_available()):
        return PyRealSenseRecording(path)
    if reader == "auto":  # the default warnings filter shows this once per session
        warnings.warn(
            "pyrealsense2 (>= 2.59) cannot be imported: reading RealSense recordings with the pure-Python reader "
            "(rosbags) and numpy registration; install the 'realsense' extra for librealsense playback",
            RuntimeWarning,
            stacklevel=2,
        )
    return BagRecording(path) if path.suffix.lower() == ".bag" else Db3Recording(path)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
