"""Damaged files: 4 KB of noise in the middle costs only the frames stored there.

Every frame OpenCV can still decode is written; the others get status ``decode_error``; the row and
the summary count them, and the exit status is 1 unless ``--keep-going``.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from gaitdata.cli import cli
from gaitdata.containers import write
from gaitdata.dataset import DatasetRoot, validate
from gaitdata.extract import ExtractOptions, extract
from gaitdata.testing.damage import add_noise, db3_decodable, opencv_decodable
from gaitdata.testing.recordings import plane_recording

N = 60
REC = plane_recording(n=N, size=(160, 120), depth_size=(128, 96))


def _opencv_decodable(path) -> int:
    return opencv_decodable(path, N)


def _damaged(tmp_path, kind: str, name: str, codec: str | None, reference) -> tuple:
    """Write, then damage at the first offset where the reference decoder loses frames."""
    for i, frac in enumerate((0.5, 0.4, 0.6, 0.3, 0.7)):
        folder = tmp_path / f"in{i}"
        p = write(REC, folder / name, kind, **({"codec": codec} if codec else {}))
        add_noise(p, frac)
        good = reference(p)
        if 0 < good < N:
            return folder, p, good
    pytest.fail(f"4 KB of noise never damaged a {name} frame")


def _check(root, result, good: int) -> None:
    assert result.status == "ok" and result.n_written == good and result.n_decode_error == N - good
    frames = DatasetRoot(root).read_frames()
    status = frames["status"].tolist()
    unindexed = N - len(frames)  # packets the demuxer lost track of (e.g. a damaged AVI chunk header)
    assert status.count("decode_error") + unindexed == N - good and status.count("ok") == good
    if "decode_error" in status:  # the frames after the damaged region are there: only damaged ones are lost
        assert "ok" in status[status.index("decode_error") :]
    else:
        assert any("ends early" in note for note in result.notes)
    videos = DatasetRoot(root).read_videos()
    assert int(videos["n_decode_error"].iloc[0]) == N - good and "decode_error" in videos["notes"].iloc[0]
    assert validate(root).ok


@pytest.mark.parametrize("codec,kind,name", [("mp4v", "video", "a.mp4"), ("mjpeg", "video", "a.avi"),
                                             ("h264", "pair", "a")])  # fmt: skip
def test_damaged_video_loses_only_undecodable_frames(tmp_path, codec, kind, name):
    folder, path, good = _damaged(tmp_path, kind, name, codec, _opencv_decodable)
    summary = extract([folder], tmp_path / "root", ExtractOptions(workers=1), progress=False)
    _check(tmp_path / "root", summary.results[0], good)
    assert summary.n_frames_lost == N - good and not summary.ok


@pytest.mark.realsense
@pytest.mark.parametrize("reader", ["pyrealsense2", "python"])
def test_damaged_db3_both_readers_skip_only_the_damaged_messages(tmp_path, reader):
    folder, path, good = _damaged(tmp_path, "db3", "a.db3", None, db3_decodable)
    summary = extract([folder], tmp_path / "root", ExtractOptions(workers=1, reader=reader), progress=False)
    _check(tmp_path / "root", summary.results[0], good)


def test_cli_exit_status_counts_lost_frames(tmp_path):
    folder, path, good = _damaged(tmp_path, "video", "a.mp4", "mp4v", _opencv_decodable)
    root = tmp_path / "root"
    res = CliRunner().invoke(cli, ["extract", str(folder), "--out", str(root), "--workers", "1"])
    assert res.exit_code == 1, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("damaged "))
    assert str(path) in line and f"{N - good} frames could not be decoded" in line
    assert f"{N - good} frames lost to decode errors" in " ".join(res.output.split())
    again = CliRunner().invoke(cli, ["extract", str(folder), "--out", str(root), "--keep-going"])
    assert again.exit_code == 0 and "1 skipped" in again.output, again.output  # skipped, still counted, tolerated
    dry = CliRunner().invoke(cli, ["extract", str(folder), "--out", str(tmp_path / "dry"), "--dry-run"])
    assert dry.exit_code == 0 and "nothing was written" in dry.output  # lost frames show only when decoding


def test_truncated_tail_is_counted(tmp_path):
    """A Matroska file cut short by damage: the frames its duration promises are counted as lost."""
    p = write(REC, tmp_path / "in" / "a.mkv", "video", codec="h264")
    add_noise(p, 0.5)
    summary = extract([tmp_path / "in"], tmp_path / "root", ExtractOptions(workers=1), progress=False)
    r = summary.results[0]
    assert r.status == "ok" and 0 < r.n_written < N
    assert r.n_written + r.n_decode_error == pytest.approx(N, abs=2)
    assert any("ends early" in note for note in r.notes) and not summary.ok


@pytest.mark.parametrize("reader", ["python", "auto"])
def test_damaged_bag_record_costs_only_its_frame(tmp_path, reader):
    """Noise over one colour message's record header in a ROS1 bag: that frame is lost, not the rest."""
    from rosbags.rosbag1 import Reader

    p = write(REC, tmp_path / "in" / "a.bag", "bag")
    with Reader(p) as bag:
        conn = next(c for c in bag.connections if c.topic.endswith("Color_0/image/data"))
        entry = bag.indexes[conn.id][N // 2]
        at = bag.chunks[entry.chunk_pos].datapos + entry.offset  # chunks are stored uncompressed
    data = bytearray(p.read_bytes())
    data[at : at + 64] = np.random.default_rng(1).integers(0, 256, 64, dtype=np.uint8).tobytes()
    p.write_bytes(bytes(data))
    summary = extract([tmp_path / "in"], tmp_path / "root", ExtractOptions(workers=1, reader=reader), progress=False)
    r = summary.results[0]
    assert r.status == "ok" and r.n_decode_error == 1 and r.n_written == N - 1, r
    frames = DatasetRoot(tmp_path / "root").read_frames()
    assert len(frames) == N - 1 and (frames["status"] == "ok").all()  # the later frames kept their depth
    assert (frames["colour_frame_number"] == frames["depth_frame_number"]).all()
    assert any("damaged" in note for note in r.notes) and validate(tmp_path / "root").ok
