"""Bad input: one clear line naming the file and the cause; the rest completes; the manifest stays valid."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from click.testing import CliRunner

from gaitdata.cli import cli
from gaitdata.containers import write
from gaitdata.containers.video import write_colour_video, write_depth_video
from gaitdata.dataset import DatasetRoot, validate
from gaitdata.extract import ExtractOptions, extract
from gaitdata.testing.damage import set_json_field
from gaitdata.testing.recordings import plane_recording

REC = plane_recording(n=6)


def _truncated(path, keep_head=True):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if keep_head else data[len(data) // 2 :])


def _eight_bit_ffv1(path, depth):
    import av

    with av.open(str(path), "w") as out:
        st = out.add_stream("ffv1", rate=30)
        st.width, st.height, st.pix_fmt = depth.shape[2], depth.shape[1], "gray"
        for img in depth:
            for pkt in st.encode(av.VideoFrame.from_ndarray((img // 16).astype(np.uint8), format="gray")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


def make_bad(kind: str, d):
    """Create one bad recording of ``kind`` under ``d``; returns (path named in the error, expected cause)."""
    if kind == "zero_byte":
        p = d / "empty.bag"
        p.write_bytes(b"")
        return p, "empty (0 bytes)"
    if kind in ("truncated_bag", "truncated_db3"):
        ext = kind.split("_")[1]
        if ext == "db3":
            pytest.importorskip("pyrealsense2")
        p = write(REC, d / f"cut.{ext}", ext)
        _truncated(p)
        return p, "truncated"
    if kind == "truncated_mp4":
        p = write(REC, d / "cut.mp4", "video")
        _truncated(p, keep_head=False)
        return p, "corrupt, truncated"
    if kind == "wrong_extension":
        p = d / "notes.mp4"
        p.write_text("this is not a video")
        return p, "not a video"
    if kind == "depth_8bit":
        p = write(REC, d / "eight", "pair")
        (d / "eight_depth.mkv").unlink()
        _eight_bit_ffv1(d / "eight_depth.mkv", REC.depth)
        return d / "eight_depth.mkv", "lossless 16-bit"
    if kind == "depth_lossy":
        write(REC, d / "lossy", "pair")
        (d / "lossy_depth.mkv").unlink()
        rgb = np.repeat((REC.depth // 16).astype(np.uint8)[..., None], 3, -1)
        write_colour_video(rgb, REC.depth_ts_ms, d / "lossy_depth.mkv")
        return d / "lossy_depth.mkv", "lossless 16-bit"
    if kind == "depth_png_8bit":
        import cv2

        write(REC, d / "png8", "pair", depth_format="png")
        for f in sorted((d / "png8_depth").glob("*.png")):
            cv2.imwrite(str(f), (cv2.imread(str(f), cv2.IMREAD_UNCHANGED) // 16).astype(np.uint8))
        return sorted((d / "png8_depth").glob("*.png"))[0], "16-bit PNGs"
    if kind == "nan_timestamp":
        p = write(REC, d / "nan", "pair")
        csv = d / "nan_color.csv"
        lines = csv.read_text().splitlines()
        lines[3] = lines[3].split(",")[0] + ",nan"
        csv.write_text("\n".join(lines) + "\n")
        return csv.with_name("nan_color.mp4"), "non-finite"
    if kind in ("fewer_depth_png", "fewer_depth_mkv"):
        short = dataclasses.replace(REC, depth=REC.depth[:-2], depth_ts_ms=REC.depth_ts_ms[:-2],
                                    depth_frame_numbers=REC.depth_frame_numbers[:-2])  # fmt: skip
        fmt = kind.rsplit("_", 1)[1]
        write(short, d / "short", "pair", depth_format=fmt, timestamps=False)
        if fmt == "mkv":  # depth pts on its own gapless grid from 0, as a camera-agnostic encoder writes them
            (d / "short_depth.mkv").unlink()
            write_depth_video(short.depth, np.arange(len(short.depth)) * 1000 / 30, d / "short_depth.mkv",
                              t0=0.0)  # fmt: skip
        return d / ("short_depth" if fmt == "png" else "short_depth.mkv"), "paired by position only when"
    if kind == "one_csv":
        write(REC, d / "half", "pair")
        (d / "half_depth.csv").unlink()
        return d / "half_depth.csv", "one clock"
    if kind.startswith("calib_"):
        p = write(REC, d / "cal", "pair")
        cal = d / "cal_calib.json"
        field, cause = {
            "calib_scale_zero": (("depth_scale",), "positive number"),
            "calib_scale_negative": (("depth_scale",), "positive number"),
            "calib_rotation": (("depth_to_colour", "rotation"), "orthonormal"),
            "calib_distortion": (("colour_intrinsics", "coeffs"), "takes 5 coefficients"),
            "calib_focal": (("depth_intrinsics", "fx"), "focal lengths must be positive"),
        }[kind]
        value = {"calib_scale_zero": 0, "calib_scale_negative": -0.001, "calib_rotation": [2, 0, 0, 0, 2, 0, 0, 0, 2],
                 "calib_distortion": [0.1, 0.01], "calib_focal": -300.0}[kind]  # fmt: skip
        if kind == "calib_distortion":
            set_json_field(cal, ("colour_intrinsics", "model"), "brown_conrady")
        set_json_field(cal, field, value)
        return cal, cause
    raise ValueError(kind)


BAD = ["zero_byte", "truncated_bag", "truncated_db3", "truncated_mp4", "wrong_extension", "depth_8bit", "depth_lossy",
       "depth_png_8bit", "nan_timestamp", "fewer_depth_png", "fewer_depth_mkv", "one_csv", "calib_scale_zero",
       "calib_scale_negative", "calib_rotation", "calib_distortion", "calib_focal"]  # fmt: skip


@pytest.mark.parametrize("kind", BAD)
def test_bad_recording_fails_alone_with_one_clear_line(tmp_path, kind):
    src = tmp_path / "in"
    src.mkdir()
    bad, cause = make_bad(kind, src)
    write(REC, src / "good.bag", "bag")
    root = tmp_path / "root"
    result = CliRunner().invoke(cli, ["extract", str(src), "--out", str(root), "-q", "--workers", "1"])
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("failed ")]
    assert len(lines) == 1 and str(bad) in lines[0] and cause in lines[0], result.output
    videos = DatasetRoot(root).read_videos().set_index("video_id")
    assert videos.loc["good", "status"] == "ok" and videos.loc["good", "n_written"] == len(REC.colour)
    failed = videos[videos.status == "failed"]
    assert len(failed) == 1 and cause in failed.error.iloc[0]
    assert validate(root).ok
    tolerated = CliRunner().invoke(cli, ["extract", str(src), "--out", str(root), "-q", "--keep-going"])
    assert tolerated.exit_code == 0, tolerated.output  # failure retried, still failing, but tolerated


def test_recording_without_depth_extracts_colour_only(tmp_path):
    rec = plane_recording(n=5, with_depth=False)
    write(rec, tmp_path / "in" / "c.bag", "bag")
    s = extract([tmp_path / "in"], tmp_path / "root", ExtractOptions(workers=1), progress=False)
    r = s.results[0]
    assert (
        r.status == "ok" and r.n_written == 5 and r.n_depth == 0 and "no depth stream: colour only" in r.notes
    )
    frames = DatasetRoot(tmp_path / "root").read_frames()
    assert frames.depth_path.isna().all() and frames.rgb_path.notna().all()
    assert validate(tmp_path / "root").ok


def test_missing_path_and_unsupported_file(tmp_path):
    write(REC, tmp_path / "good.bag", "bag")
    (tmp_path / "readme.txt").write_text("hello")
    s = extract([tmp_path / "good.bag", tmp_path / "nope.bag", tmp_path / "readme.txt"], tmp_path / "root",
                ExtractOptions(workers=1), progress=False)  # fmt: skip
    status = {r.video_id: (r.status, r.error) for r in s.results}
    assert status["good"][0] == "ok"
    assert "no such file or directory" in status["nope"][1] and "nope.bag" in status["nope"][1]
    assert "unsupported file type '.txt'" in status["readme.txt"][1]
    assert validate(tmp_path / "root").ok


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file regardless of permissions")
def test_unreadable_file(tmp_path):
    p = write(REC, tmp_path / "in" / "locked.bag", "bag")
    p.chmod(0)
    try:
        s = extract([tmp_path / "in"], tmp_path / "root", ExtractOptions(workers=1), progress=False)
    finally:
        p.chmod(0o644)
    assert s.results[0].status == "failed" and "locked.bag" in s.results[0].error


def test_unwritable_output_is_one_line(tmp_path):
    write(REC, tmp_path / "a.bag", "bag")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(
        cli, ["extract", str(tmp_path / "a.bag"), "--out", str(blocker / "root"), "-q"]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and "cannot create dataset root" in str(result.exception)
    assert str(blocker / "root") in str(result.exception)
