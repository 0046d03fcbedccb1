"""Labelling a session of recordings: work prepared ahead (crops, the next recording's proposer and
graph, post-processing behind) changes nothing in the labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _label_roots import blob_frames, make_root, root_from_synth

import pseudolabel.runner as runner
from gaitdata.labels import read_labels
from pseudolabel.postprocess import PostprocessConfig, background_joints, background_joints_of_poses

synth = pytest.importorskip("gaitdata.synth")


@pytest.fixture(scope="module")
def walks():
    size = dict(colour_size=(320, 240), depth_size=(320, 240), fps=10)
    crowd = dict(colour_size=(640, 480), depth_size=(640, 480), fps=10)
    return {
        "s01_crowd": synth.render_walk(synth.WalkSpec(n_frames=12, seed=1, bystander=True, far_walkers=1, **crowd)),
        "s02_walk": synth.render_walk(synth.WalkSpec(n_frames=12, seed=2, direction="right_to_left", **size)),
        "s03_walk": synth.render_walk(synth.WalkSpec(n_frames=12, seed=3, **size)),
    }


@pytest.mark.mediapipe
def test_a_session_labels_as_each_recording_alone(tmp_path, walks) -> None:
    root = root_from_synth(tmp_path / "root", walks)
    for boxes in ("auto", "none"):
        runner.label(root.path, boxes=boxes, label_set=f"all_{boxes}", progress=False)
        together = read_labels(root, f"all_{boxes}")
        for vid in walks:
            runner.label(root.path, boxes=boxes, label_set=f"one_{boxes}_{vid}", videos=[vid], progress=False)
            alone = read_labels(root, f"one_{boxes}_{vid}")
            mine = together[together["video_id"] == vid].reset_index(drop=True)
            pd.testing.assert_frame_equal(mine, alone)
        counts = together[together["has_person"]].groupby("video_id").size()
        assert counts["s02_walk"] == counts["s03_walk"] == 12
        # with proposals, the crowd's three walkers (in most frames; measured 33 of 36); without, one
        assert counts["s01_crowd"] >= 30 if boxes == "auto" else counts["s01_crowd"] == 12


@pytest.mark.mediapipe
def test_prepared_crops_are_used_for_exactly_their_boxes(walks, monkeypatch) -> None:
    from pseudolabel.registry import create_teacher

    rec = walks["s01_crowd"]
    frames = [np.ascontiguousarray(f) for f in rec.colour[:4]]
    boxes = [np.asarray([[*rec.meta["bboxes"][i], 0.9], [*rec.meta["others_bboxes"][i, 0], 0.8]]) for i in range(4)]
    plain = create_teacher("mediapipe")
    want = plain.predict(frames, boxes)
    plain.close()
    teacher = create_teacher("mediapipe")
    prepared = [teacher.prepare(f, b) for f, b in zip(frames, boxes, strict=True)]
    assert prepared[0].fits(boxes[0]) and not prepared[0].fits(boxes[0][::-1]) and not prepared[0].fits(boxes[0][:1])
    cuts = []
    real_cut = teacher._cut
    monkeypatch.setattr(teacher, "_cut", lambda *a: cuts.append(1) or real_cut(*a))
    # frame 2 is given crops cut for other boxes: they are not used, its own are cut
    got = teacher.predict(frames, boxes, prepared=[prepared[0], prepared[1], prepared[3], prepared[3]])
    assert len(cuts) == 1
    assert [[p.keypoints.tolist() for p in poses] for poses in got] == [[p.keypoints.tolist() for p in poses] for poses in want]
    assert teacher.prepare(frames[0], None) is None and teacher.prepare(frames[0], np.zeros((0, 5))) is None
    with pytest.raises(ValueError, match="prepared crop sets"):
        teacher.predict(frames, boxes, prepared=prepared[:2])
    teacher.close()


@pytest.mark.mediapipe
def test_reset_keeps_a_fresh_graph_and_puts_the_spare_in_place(walks, monkeypatch) -> None:
    from pseudolabel.registry import create_teacher

    rec = walks["s02_walk"]
    frames = [np.ascontiguousarray(f) for f in rec.colour[:6]]
    boxes = [np.asarray([[*rec.meta["bboxes"][i], 0.9]]) for i in range(6)]
    fresh = create_teacher("mediapipe")
    want = fresh.predict(frames[3:], boxes[3:])  # a new teacher on frames 3..5
    fresh.close()

    teacher = create_teacher("mediapipe")
    made = []
    real_make = teacher._make
    monkeypatch.setattr(teacher, "_make", lambda static: made.append(static) or real_make(static))
    teacher.warm_up(boxes=True)
    teacher.reset()  # the warmed graph saw only a blank image: kept
    teacher.predict(frames[:3], boxes[:3])
    assert made == [False]
    teacher.warm_spare(boxes=True)  # the next recording's graph, started while this one goes on
    teacher.warm_spare(boxes=True)  # (one at a time)
    teacher.reset()  # closes the used graph, puts the spare in its place
    got = teacher.predict(frames[3:], boxes[3:])
    assert made == [False, False]  # no graph made on the way
    assert [[p.keypoints.tolist() for p in poses] for poses in got] == [[p.keypoints.tolist() for p in poses] for poses in want]
    teacher.warm_spare(boxes=False, size=(320, 240))
    teacher.close()  # the unused spare is closed too
    static = create_teacher("mediapipe", mode="static")
    static.warm_spare(boxes=True)  # no tracking state in static mode: nothing to start
    assert static._spare is None
    static.close()


def test_a_failed_part_write_stops_the_run_and_keeps_the_parts_before(tmp_path, monkeypatch) -> None:
    rgb, dep = blob_frames(6, lambda i: [(20 + 10 * i, 40, 40, 150)])
    root = make_root(tmp_path / "r", {f"s{k}_walk": (rgb, dep) for k in range(3)})
    real = runner._write_finished
    calls: list[str] = []

    def fail_second(job, df, k):
        calls.append(job.part)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(job, df, k)

    monkeypatch.setattr(runner, "_write_finished", fail_second)
    with pytest.raises(OSError, match="No space left"):
        runner.label(root.path, teacher="test_blob", progress=False)
    parts = runner.parts_dir(root, "test_blob")
    assert sorted(p.name for p in parts.glob("*.parquet")) == ["s0_walk.parquet"]
    assert not root.label_path("test_blob").exists()
    monkeypatch.setattr(runner, "_write_finished", real)
    s = runner.label(root.path, teacher="test_blob", progress=False)
    assert [r.resumed for r in s.recordings] == [True, False, False]


def test_the_reader_takes_depth_frames_decoded_already(tmp_path) -> None:
    rgb, dep = blob_frames(4, lambda i: [(10 + 20 * i, 40, 20, 60)])
    root = make_root(tmp_path / "r", {"v": (rgb, dep)})
    frames = root.read_frames()
    path = str(frames["depth_path"].iloc[2])
    known = np.full((240, 320), 1234, np.uint16)
    decoded = {path: known}
    got = list(runner.iter_frames(root, frames, want_depth=True, workers=2, prefetch=4, decoded_depth=decoded))
    assert got[2][2] is known and decoded == {}  # taken, not decoded again
    assert got[1][2].dtype == np.uint16 and not np.array_equal(got[1][2], known)


def test_background_joints_of_many_poses_match_one_at_a_time() -> None:
    rng = np.random.default_rng(0)
    background = rng.integers(1500, 4000, (60, 80)).astype(np.uint16)
    background[:, :10] = 0  # no depth there
    kp = np.concatenate([rng.uniform(-5, 85, (7, 17, 1)), rng.uniform(-5, 65, (7, 17, 1)), rng.uniform(0, 1, (7, 17, 1))], axis=2)
    near = background[np.clip(kp[..., 1].astype(int), 0, 59), np.clip(kp[..., 0].astype(int), 0, 79)] * 0.001
    near = near - rng.choice([0.0, 0.01, 0.5], near.shape)  # on the background, or in front of it
    near[0, :5] = np.nan
    cfg = PostprocessConfig()
    many = background_joints_of_poses(kp, near, background, 0.001, cfg)
    assert many == [background_joints(kp[i], near[i], background, 0.001, cfg) for i in range(7)]
    assert sum(map(len, many)) > 10 and any(len(m) < 17 for m in many)
    assert background_joints_of_poses(kp, near, None, 0.001, cfg) == [[]] * 7
    assert background_joints_of_poses(np.zeros((0, 17, 3)), np.zeros((0, 17)), background, 0.001, cfg) == []


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 1), (3, 2), (16, 2)])
def test_decoding_threads_leave_a_cpu_to_the_teacher(monkeypatch, cpus, threads) -> None:
    monkeypatch.setattr(runner.os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert runner.decoding_threads() == threads


def _reader_root(tmp_path, n=8):
    rgb, dep = blob_frames(n, lambda i: [(10 + 20 * i, 40, 20, 60)])
    root = make_root(tmp_path / "r", {"v": (rgb, dep)})
    return root, root.read_frames()


def test_in_order_steps_run_in_frame_order_whatever_the_threads(tmp_path) -> None:
    import time

    root, frames = _reader_root(tmp_path)
    order: list[int] = []

    def slow_first(fi, img, d):  # the earlier frames finish their parallel step last
        time.sleep(0.004 * (8 - fi))
        return fi * 10

    def track(fi, img, d, found):
        order.append(fi)
        return found + 1

    with runner.FrameReader(root, frames, True, workers=3, prefetch=8, per_frame=slow_first, in_order=track) as reader:
        got = [(fi, extra) for fi, _, _, extra in reader]
    assert order == list(range(8))
    assert got == [(fi, fi * 10 + 1) for fi in range(8)]


def test_closing_a_reader_frees_the_frames_waiting_for_their_turn(tmp_path) -> None:
    import threading

    root, frames = _reader_root(tmp_path)
    release = threading.Event()
    stepped: list[int] = []

    def hold_first(fi, img, d):
        if fi == 0:
            release.wait(5)
        return None

    reader = runner.FrameReader(root, frames, False, workers=3, prefetch=8, per_frame=hold_first,
                                in_order=lambda fi, *_: stepped.append(fi))  # fmt: skip
    closer = threading.Thread(target=reader.close)
    closer.start()  # frames 1-2 wait for frame 0's turn: closing lets them go
    closer.join(0.5)
    release.set()
    closer.join(10)
    assert not closer.is_alive()
    assert stepped == []  # no frame's step ran after the reader closed


def test_an_unreadable_frame_stops_the_in_order_steps_after_it(tmp_path) -> None:
    root, frames = _reader_root(tmp_path)
    bad = root.path / str(frames["rgb_path"].iloc[3])
    bad.write_bytes(b"not an image")
    stepped: list[int] = []
    got = []
    reader = runner.FrameReader(root, frames, True, workers=2, prefetch=8, in_order=lambda fi, *_: stepped.append(fi))
    with reader, pytest.raises(runner.GaitdataError, match="cannot decode .*000003"):
        for item in reader:
            got.append(item[0])
    assert got == [0, 1, 2]
    assert stepped[:3] == [0, 1, 2] and 3 not in stepped and all(fi < 3 for fi in stepped)


@pytest.mark.mediapipe
def test_labels_do_not_depend_on_the_number_of_decoding_threads(tmp_path, walks) -> None:
    root = root_from_synth(tmp_path / "root", {"s01_crowd": walks["s01_crowd"]})
    one = runner.label(root.path, label_set="one", workers=1, progress=False)
    three = runner.label(root.path, label_set="three", workers=3, progress=False)
    assert one.n_persons == three.n_persons >= 30
    pd.testing.assert_frame_equal(read_labels(root, "one").drop(columns="label_set", errors="ignore"),
                                  read_labels(root, "three").drop(columns="label_set", errors="ignore"))  # fmt: skip


@pytest.mark.mediapipe
def test_the_teacher_started_early_is_closed_when_the_run_stops_before_labelling(tmp_path, monkeypatch) -> None:
    from pseudolabel.registry import create_teacher

    made, spares = [], []

    def recording(*args, **kwargs):
        teacher = create_teacher(*args, **kwargs)
        real = teacher.warm_spare
        teacher.warm_spare = lambda **kw: (spares.append(kw), real(**kw))[1]
        made.append(teacher)
        return teacher

    monkeypatch.setattr(runner, "create_teacher", recording)
    rgb, dep = blob_frames(4, lambda i: [(10 + 20 * i, 40, 20, 60)])
    root = make_root(tmp_path / "r", {"v": (rgb, dep)})
    with pytest.raises(runner.GaitdataError, match="unknown video ids"):
        runner.label(root.path, videos=["nope"], progress=False)
    (teacher,) = made
    assert spares == [{"boxes": True}]  # it had started the crops' graph before the tables were read
    assert teacher._spare is None and teacher._lanes == {}  # the spare graph it had started was closed
