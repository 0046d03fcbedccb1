"""Labelling: speed of the default run against the model alone, and multi-person recall on real footage.

1. **Single large walker** (a synthetic walk written as a dataset root; ``--recordings N``: a
   session of N such walks, one person each, in one root), in one process, in ``--repeats`` rounds
   of three runs each, their order alternating between rounds (other work on the machine only
   ever slows a run down: the best run of each kind is reported, and the median over rounds of
   the ratios within a round, whose runs shared the machine's load):

   - model only: the teacher on the same frames, decoded beforehand, whole frames, in batches,
     each recording from a fresh tracking state;
   - end to end, the default (``gaitdata label ROOT``: person proposals, crops, decoding,
     post-processing, writes);
   - end to end without proposals (``--boxes none``, the default before proposals existed).

   Prints the rates, the labelling-vs-model-only ratio (goal >= 0.9) and the process CPU time
   per frame of each (less sensitive to a busy machine than wall time).

2. **Real multi-person footage** (``--real-video``; by default OpenCV's ``vtest.avi``, 768x576, 10 fps,
   a static camera over a campus path, shipped by the Debian package ``opencv-doc``; skipped when
   absent): the default labelling of every frame, then

   - the share of frames with a person (a person is visible in every frame of vtest.avi: checked
     by hand on every 25th frame),
   - recall against people counted by hand in 8 frames (:data:`VTEST_HAND_COUNTS`: a counted
     person is found when a labelled box contains their body centre; one box per person),
   - confident poses (person score >= 0.5) that are plausible: at least 90% of the confident
     joints inside the box, head (nose, eyes, ears) above the ankles, box upright (h >= 0.8 w),
   - frames per second and CPU time per frame.

3. **Real photos**: each hand-counted vtest frame alone (a one-frame recording: no background
   model, so BlazePose's detector and HOG propose), OpenCV's ``basketball1.png``/``basketball2.png``
   (two people; ``opencv-doc``) and any ``--photo PATH``: people found per image.

    python tools/bench_label.py                      # all three
    python tools/bench_label.py --skip-real --repeats 5
    python tools/bench_label.py --skip-real --skip-fastpose --recordings 4
    python tools/bench_label.py --skip-synthetic --real-video my_walk.mp4 --real-frames 300
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

ROOT_DIR = Path(__file__).resolve().parents[1]
if str(ROOT_DIR) not in sys.path:
    sys.path.insert(0, str(ROOT_DIR))

from gaitdata.dataset import DatasetRoot  # noqa: E402

OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
# People visible in frames of vtest.avi, counted by hand (approximate body centres, pixels).
VTEST_HAND_COUNTS: dict[int, list[tuple[int, int]]] = {
    0: [(267, 265), (515, 195), (662, 282)],
    100: [(230, 77), (361, 238), (392, 215), (440, 220), (506, 185), (528, 185), (603, 192)],
    200: [(95, 185), (235, 230), (502, 183), (687, 125), (712, 125), (632, 315), (723, 300)],
    300: [(202, 198), (254, 190), (311, 192), (329, 255), (596, 200), (631, 200)],
    400: [(288, 240), (603, 170), (715, 355)],
    500: [(320, 225), (575, 290), (590, 335), (627, 320)],
    600: [(200, 180), (580, 240), (686, 255), (474, 360), (655, 355), (305, 500)],
    700: [(198, 200), (293, 250), (380, 210), (415, 175), (485, 165), (532, 198), (705, 265), (122, 340)],
}


def write_root(path: Path, colour: np.ndarray, depth: np.ndarray | None, fps: float, vid: str = "bench_walk",
               depth_scale: float = 0.001) -> DatasetRoot:  # fmt: skip
    """A dataset root holding one recording: RGB frames (N, H, W, 3) and registered depth (N, H, W) or None."""
    return write_session(path, [(vid, colour, depth, fps, depth_scale)])


def write_session(path: Path, recordings: list[tuple[str, np.ndarray, np.ndarray | None, float, float]]) -> DatasetRoot:
    """A dataset root holding recordings ``(video_id, colour, depth or None, fps, depth_scale)``."""
    root = DatasetRoot(path)
    root.init()
    rows, videos = [], []
    for vid, colour, depth, fps, depth_scale in recordings:
        for i, img in enumerate(colour):
            rgb = root.rgb_relpath(vid, i)
            root.abspath(rgb).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root.abspath(rgb)), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            dep = None
            if depth is not None:
                dep = root.depth_relpath(vid, i)
                root.abspath(dep).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root.abspath(dep)), depth[i])
            rows.append({"video_id": vid, "frame_index": i, "colour_frame_number": i, "colour_ts_ms": i * 1000 / fps,
                         "rgb_path": rgb, "depth_path": dep, "status": "ok"})  # fmt: skip
        h, w = colour.shape[1:3]
        videos.append({
            "video_id": vid, "source_path": "bench", "kind": "bag" if depth is not None else "video", "status": "ok",
            "n_colour_frames": len(colour), "n_written": len(colour), "fps": fps, "width": w, "height": h,
            "depth_scale": depth_scale if depth is not None else None,
        })  # fmt: skip
    root.write_videos(pd.DataFrame(videos))
    root.write_frames(pd.DataFrame(rows))
    return root


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of fn()."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


# ---- 1. a single large walker ---------------------------------------------------------------------
def bench_single_walker(args: argparse.Namespace) -> None:
    from gaitdata.synth import WalkSpec, render_walk
    from pseudolabel.registry import create_teacher
    from pseudolabel.runner import label

    w, h = (int(v) for v in args.size.split("x"))
    k, n = args.recordings, args.frames
    print(f"rendering {k} x {n} frames at {w}x{h} ...", flush=True)
    recs = [
        render_walk(WalkSpec(n_frames=n, colour_size=(w, h), depth_size=(w, h), seed=3 + i,
                             direction=("left_to_right", "right_to_left")[i % 2]))
        for i in range(k)
    ]  # fmt: skip
    vids = ["bench_walk"] if k == 1 else [f"bench_walk{i}" for i in range(k)]
    with tempfile.TemporaryDirectory() as tmp:
        root = write_session(Path(tmp) / "root", [(v, r.colour, r.depth_registered, r.fps, r.depth_scale)
                                                  for v, r in zip(vids, recs, strict=True)])  # fmt: skip
        frames = [[cv2.cvtColor(cv2.imread(str(root.abspath(root.rgb_relpath(v, i)))), cv2.COLOR_BGR2RGB) for i in range(n)]
                  for v in vids]  # fmt: skip
        teacher = create_teacher(args.teacher)
        teacher.predict(frames[0][:2])  # warm-up

        def model_only() -> None:
            for fr in frames:  # each recording from a fresh tracking state, as the labelling run
                teacher.reset()
                for s in range(0, n, args.batch_size):
                    teacher.predict(fr[s : s + args.batch_size])

        def run(boxes: str) -> None:
            label(root.path, teacher=args.teacher, batch_size=args.batch_size, progress=False, overwrite=True,
                  label_set=f"bench_{boxes}", boxes=boxes)  # fmt: skip

        best: dict[str, tuple[float, float]] = {}
        paired: dict[str, list[float]] = {"default": [], "no proposals": []}  # per round: model time / run time
        runs = (("model only", model_only), ("default", lambda: run("auto")), ("no proposals", lambda: run("none")))
        for r in range(args.repeats):
            times = {}
            for name, fn in runs if r % 2 == 0 else runs[::-1]:  # alternate the order between rounds
                wall, cpu = _timed(fn)
                times[name] = wall
                prev = best.get(name)
                best[name] = (min(wall, prev[0]), min(cpu, prev[1])) if prev else (wall, cpu)
            for name in paired:
                paired[name].append(times["model only"] / times[name])
        teacher.close()
    total = k * n
    model = total / best["model only"][0]
    what = f"{n} frames" if k == 1 else f"a session of {k} recordings x {n} frames"
    print(f"{args.teacher}, one walker per recording, {what} {w}x{h}, {args.repeats} rounds (best run of each kind):")
    for name, (wall, cpu) in best.items():
        print(f"  {name:13s} {total / wall:6.1f} frames/s  {1000 * cpu / total:6.1f} ms CPU/frame  "
              f"ratio to model only {total / wall / model:.2f}")  # fmt: skip
    med = {key: float(np.median(v)) for key, v in paired.items()}
    print(f"  labelling (default) vs model only: best runs {total / best['default'][0] / model:.2f}, median of rounds "
          f"{med['default']:.2f} (goal >= 0.90); CPU-time ratio {best['model only'][1] / best['default'][1]:.2f}")  # fmt: skip
    print(f"  without proposals (--boxes none) vs model only: best runs {total / best['no proposals'][0] / model:.2f}, "
          f"median of rounds {med['no proposals']:.2f}")  # fmt: skip


# ---- 2. real footage -------------------------------------------------------------------------------
def _match(points: list[tuple[int, int]], boxes: np.ndarray) -> int:
    """Counted people whose centre lies in a labelled box (each box serves one person, nearest first)."""
    used: set[int] = set()
    hits = 0
    for px, py in points:
        best = None
        for j, (x, y, w, h) in enumerate(boxes):
            if j not in used and x - 0.1 * w <= px <= x + 1.1 * w and y - 0.05 * h <= py <= y + 1.05 * h:
                d = abs(px - (x + w / 2)) + abs(py - (y + h / 2))
                if best is None or d < best[0]:
                    best = (d, j)
        if best is not None:
            used.add(best[1])
            hits += 1
    return hits


def plausible(kp: np.ndarray, boxes: np.ndarray, conf: float = 0.5) -> np.ndarray:
    """Per pose: >= 90% of confident joints inside the (5%-padded) box, head above ankles, box upright."""
    x, y, w, h = (boxes[:, i, None] for i in range(4))
    c = kp[..., 2] >= conf
    inside = (kp[..., 0] >= x - 0.05 * w) & (kp[..., 0] <= x + 1.05 * w) & (kp[..., 1] >= y - 0.05 * h) & (kp[..., 1] <= y + 1.05 * h)
    share = (inside & c).sum(1) / np.maximum(c.sum(1), 1)
    head = kp[:, :5, 1].mean(1)
    ankles = kp[:, 15:17, 1].mean(1)
    return (share >= 0.9) & (head < ankles) & (boxes[:, 3] >= 0.8 * boxes[:, 2])


def read_video(path: Path, max_frames: int | None) -> tuple[np.ndarray, float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    out = []
    while max_frames is None or len(out) < max_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(out), float(fps)


def bench_real(args: argparse.Namespace) -> None:
    from gaitdata.labels import keypoints_array, read_labels
    from pseudolabel.runner import label

    path = Path(args.real_video) if args.real_video else OPENCV_SAMPLES / "vtest.avi"
    if not path.is_file():
        print(f"real footage: {path} not found (apt-get install opencv-doc ships vtest.avi); skipped")
        return
    colour, fps = read_video(path, args.real_frames)
    n, h, w = colour.shape[:3]
    hand = {k: v for k, v in VTEST_HAND_COUNTS.items() if k < n} if path.name == "vtest.avi" else {}
    with tempfile.TemporaryDirectory() as tmp:
        root = write_root(Path(tmp) / "root", colour, None, fps, vid=path.stem)
        print(f"labelling {n} frames of {path.name} ({w}x{h}) with the defaults ...", flush=True)
        wall, cpu = _timed(lambda: label(root.path, progress=False, label_set="real"))
        df = read_labels(root, "real")
        n_kp = root.keypoint_schema().num_keypoints
    person = df[df["has_person"].fillna(False)]
    print(f"real footage {path.name}: {n / wall:.1f} frames/s, {1000 * cpu / n:.0f} ms CPU/frame, "
          f"{len(person) / n:.2f} people labelled per frame")  # fmt: skip
    print(f"  frames with a person: {person['frame_index'].nunique()}/{n} "
          f"({person['frame_index'].nunique() / n:.1%}; goal >= 90% of frames that show one)")  # fmt: skip
    if hand:
        recalls = []
        for fi, pts in hand.items():
            g = person[person["frame_index"] == fi]
            hit = _match(pts, g[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy())
            recalls.append(hit / len(pts))
            print(f"  frame {fi:4d}: {hit}/{len(pts)} counted people found ({len(g)} labelled)")
        total = sum(len(v) for v in hand.values())
        found = sum(r * len(hand[k]) for r, k in zip(recalls, hand, strict=True))
        print(f"  recall vs hand counts: mean per frame {np.mean(recalls):.2f} ({found:.0f}/{total}; goal >= 0.5)")
    boxes = person[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy()
    kp = keypoints_array(person, n_kp)
    confident = person["score"].to_numpy() >= 0.5
    ok = plausible(kp, boxes)
    print(f"  confident poses plausible: {ok[confident].mean():.1%} of {confident.sum()} (goal >= 85%); "
          f"subject rows {int(person['is_subject'].fillna(False).sum())}, others {int((~person['is_subject'].fillna(False)).sum())}")  # fmt: skip
    bench_stills(args, colour if hand else None, hand)


# ---- 3. photos ---------------------------------------------------------------------------------------
def bench_stills(args: argparse.Namespace, video: np.ndarray | None, hand: dict) -> None:
    from gaitdata.labels import read_labels
    from pseudolabel.runner import label

    photos = [Path(p) for p in args.photo] + [OPENCV_SAMPLES / f"basketball{i}.png" for i in (1, 2)]
    items: list[tuple[str, np.ndarray, list | None]] = []
    if video is not None:
        items += [(f"vtest frame {fi}", video[fi], pts) for fi, pts in hand.items()]
    for p in photos:
        img = cv2.imread(str(p))
        if img is not None:
            items.append((p.name, cv2.cvtColor(img, cv2.COLOR_BGR2RGB), None))
    if not items:
        return
    found = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, img, pts) in enumerate(items):
            root = write_root(Path(tmp) / f"p{k}", img[None], None, 1.0, vid="photo")
            t0 = time.perf_counter()
            label(root.path, progress=False, label_set="still")
            dt = time.perf_counter() - t0
            g = read_labels(root, "still")
            g = g[g["has_person"].fillna(False)]
            msg = f"  {name}: {len(g)} people labelled ({dt:.1f} s)"
            if pts is not None:
                hit = _match(pts, g[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy())
                found, total = found + hit, total + len(pts)
                msg += f", {hit}/{len(pts)} counted people found"
            print(msg)
    if total:
        print(f"  still frames: {found}/{total} counted people found ({found / total:.2f})")


def bench_fastpose(args: argparse.Namespace) -> None:
    try:
        import torch

        from pseudolabel.models.fastpose import build_fastpose_r50
        from pseudolabel.registry import create_teacher
    except ImportError as exc:
        print(f"FastPose: not available in this build ({exc}); skipped")
        return
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "fast_res50_256x192.pth"
        torch.save(build_fastpose_r50().state_dict(), ckpt)  # random init, official layout (raw state_dict)
        img = np.full((480, 640, 3), 127, np.uint8)
        for bs in (1, 32):
            teacher = create_teacher("alphapose", weights=str(ckpt), device="cpu", flip=False, batch_size=bs)
            boxes = [np.tile(np.array([[200.0, 60.0, 120.0, 360.0]]), (bs, 1))]
            teacher.predict([img], boxes)  # warm-up
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.fastpose_seconds:
                teacher.predict([img], boxes)
                n += bs
            rate = n / (time.perf_counter() - t0)
            print(f"FastPose-R50 CPU ({args.threads} threads), batch {bs}, no flip: {rate:.1f} crops/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="mediapipe")
    ap.add_argument("--frames", type=int, default=100, help="frames per recording of the single-walker measurements")
    ap.add_argument("--recordings", type=int, default=1, help="recordings in the single-walker root (a session)")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5, help="rounds of the single-walker measurements")
    ap.add_argument("--real-video", help="real multi-person footage (default: OpenCV's vtest.avi when installed)")
    ap.add_argument("--real-frames", type=int, help="label only the first N frames of it")
    ap.add_argument("--photo", action="append", default=[], help="a photo of several people (repeatable)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for FastPose")
    ap.add_argument("--fastpose-seconds", type=float, default=5.0)
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-fastpose", action="store_true")
    args = ap.parse_args()
    if not args.skip_synthetic:
        bench_single_walker(args)
    if not args.skip_real:
        bench_real(args)
    if not args.skip_fastpose:
        bench_fastpose(args)


if __name__ == "__main__":
    main()
