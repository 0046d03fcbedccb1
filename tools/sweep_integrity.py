#!/usr/bin/env python
"""Dataset-root integrity, tried as a user would: the command line, real processes, damaged files.

Each case runs ``gaitdata`` commands (``python -m gaitdata``) in a fresh temporary folder and checks
what a user relies on: every recording listed, every decodable frame written, nothing stale called
valid, one clear line (no traceback) for every refusal, files others can read. The cases are those
of the integrity work (two writers at once, re-extraction under labels, same relative path from
another folder, damaged files, pairs and calibration, streams that do not overlap, kill -9,
non-ASCII names, the umask, the argument errors). Output: one row per case (held or not, what was
observed) and the frame accounting of the damaged files (written + lost against what OpenCV or the
database can still decode).

    python tools/sweep_integrity.py              # every case, ~3-5 min on 2 cores
    python tools/sweep_integrity.py --only lock --only decode
    python tools/sweep_integrity.py --keep /tmp/sweep   # keep the folders for a look

Exit status 1 when a case did not hold.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # the reference decoder's complaints are expected
import pandas as pd

from gaitdata.containers import write
from gaitdata.dataset import DatasetRoot
from gaitdata.labels import decode_keypoints, read_labels
from gaitdata.testing.damage import add_noise, db3_decodable, opencv_decodable, set_json_field
from gaitdata.testing.recordings import plane_recording

PY = sys.executable
REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Outcome:
    case: str
    held: bool
    observed: str


@dataclasses.dataclass(frozen=True)
class Run:
    rc: int
    out: str
    err: str

    @property
    def one_line_error(self) -> bool:
        lines = self.err.strip().splitlines()
        return self.rc != 0 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in self.err


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


def gd(*args: object, prefix: tuple[str, ...] = (), timeout: float = 600) -> Run:
    res = subprocess.run([*prefix, PY, "-m", "gaitdata", *map(str, args)], env=_env(), capture_output=True,
                         text=True, timeout=timeout)  # fmt: skip
    return Run(res.returncode, res.stdout, res.stderr)


def gd_bg(*args: object) -> subprocess.Popen:
    return subprocess.Popen([PY, "-m", "gaitdata", *map(str, args)], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait(p: subprocess.Popen) -> Run:
    out, err = p.communicate(timeout=600)
    return Run(p.returncode, out, err)


def _walkers(src: Path, subjects: int = 2, frames: int = 24, kind: str = "bag", seed: int = 0) -> Path:
    r = gd("synth", src, "--kind", kind, "--subjects", subjects, "--frames", frames, "--size", "320x240",
           "--depth-size", "240x180", "--seed", seed, "-q")  # fmt: skip
    assert r.rc == 0, r.err
    return src


def _label_max_x(root: Path, name: str = "mediapipe") -> float:
    df = read_labels(root, name)
    n_kp = DatasetRoot(root).keypoint_schema().num_keypoints
    kps = [decode_keypoints(v, n_kp) for v in df["keypoints"].dropna()]
    return max(float(k[:, 0].max()) for k in kps) if kps else float("nan")


def _children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(d.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


# ------------------------------------------------------------------------------------------------
# the cases
# ------------------------------------------------------------------------------------------------
def case_lock(tmp: Path, trials: int = 3) -> list[Outcome]:
    """Two extracts into one root at once (5 + 5 recordings); label during a re-extract with --resize."""
    full = 0
    seen = []
    for t in range(trials):
        a, b, root = tmp / f"t{t}" / "a", tmp / f"t{t}" / "b", tmp / f"t{t}" / "root"
        for i in range(5):
            write(plane_recording(n=20, size=(320, 240), seed=i), a / f"a{i}" / "walk.bag", "bag")
            write(plane_recording(n=20, size=(320, 240), seed=10 + i), b / f"b{i}" / "walk.bag", "bag")
        p1 = gd_bg("extract", a, "--out", root, "-q", "--workers", "1")
        p2 = gd_bg("extract", b, "--out", root, "-q", "--workers", "1")
        r1, r2 = _wait(p1), _wait(p2)
        n = len(DatasetRoot(root).read_videos())
        ok = r1.rc == 0 and r2.rc == 0 and n == 10 and gd("validate", root, "-q").rc == 0
        full += ok
        seen.append(f"{n}/10")
    out = [Outcome("1 two extracts at once", full == trials,
                   f"{full}/{trials} trials listed every recording ({', '.join(seen)}), both exit 0, valid")]  # fmt: skip

    src, root = _walkers(tmp / "walk", subjects=3, frames=24), tmp / "walk_root"
    assert gd("extract", src, "--out", root, "-q").rc == 0
    ex = gd_bg("extract", src, "--out", root, "--overwrite", "--resize", "160x-1", "-q")
    waited = _wait_for_holder(root, ex)  # label starts while the re-extraction holds the root
    lab = gd("label", root, "-q")
    rex = _wait(ex)
    x = _label_max_x(root)
    val = gd("validate", root, "-q")
    ok = waited and rex.rc == 0 and lab.rc == 0 and x <= 160 and val.rc == 0
    out.append(Outcome("1 label during extract --resize", ok,
                       f"label started while extract held the root: {waited}; max keypoint x {x:.0f} on "
                       f"160-px frames; validate rc {val.rc}"))  # fmt: skip
    for _ in range(3):  # a second writer with --no-wait while the holder still runs (else try again)
        holder = gd_bg("label", root, "--overwrite", "-q")
        holding = _wait_for_holder(root, holder)
        nw = gd("split", root, "--no-wait", "--no-near-duplicates")
        overlapped = holding and holder.poll() is None
        _wait(holder)
        if overlapped:
            break
    out.append(Outcome("1 --no-wait while another writes", overlapped and nw.one_line_error and str(holder.pid) in nw.err,
                       nw.err.strip()[:110] if overlapped else "the holder ended before the second writer ran"))  # fmt: skip
    return out


def _wait_for_holder(root: Path, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    """Wait until ``proc`` holds the root's write lock (its pid in ``.gaitdata/lock.json``)."""
    info = root / ".gaitdata" / "lock.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(info.read_text()).get("pid") == proc.pid:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    return False


def case_stale(tmp: Path) -> list[Outcome]:
    """Re-extract with --resize under labels, a split and an export; what validate and the verbs say."""
    src, root = _walkers(tmp / "in", subjects=3, frames=24), tmp / "root"
    steps = [("extract", src, "--out", root, "-q"), ("label", root, "-q"),
             ("split", root, "--no-near-duplicates", "-q"), ("export", "coco", root, "--labels", "mediapipe", "-q")]  # fmt: skip
    for s in steps:
        r = gd(*s)
        assert r.rc == 0, (s, r.err)
    gd("extract", src, "--out", root, "--overwrite", "--resize", "160x-1", "-q")
    val = gd("validate", root)
    text = " ".join((val.out + val.err).split())
    listed = [k for k in ("label set", "split", "export") if k in text]
    out = [Outcome("2 validate after re-extract", val.rc == 1 and len(listed) == 3,
                   f"rc {val.rc}; stale listed: {', '.join(listed) or 'none'}")]  # fmt: skip
    ex = gd("export", "coco", root, "--labels", "mediapipe", "-q")
    out.append(Outcome("2 export refuses stale labels", ex.one_line_error and "gaitdata label" in ex.err,
                       ex.err.strip()[:110]))  # fmt: skip
    lab = gd("label", root)
    x = _label_max_x(root)
    n_frames = len(DatasetRoot(root).read_frames())
    n_lab = read_labels(root, "mediapipe")[["video_id", "frame_index"]].drop_duplicates().shape[0]
    out.append(Outcome("2 label relabels changed frames", lab.rc == 0 and x <= 160 and n_lab == n_frames,
                       f"max x {x:.0f} on 160-px frames; {n_lab}/{n_frames} frames labelled"))  # fmt: skip
    for s in steps[2:]:
        gd(*s)
    val2 = gd("validate", root, "-q")
    out.append(Outcome("2 refreshed root validates", val2.rc == 0, f"validate rc {val2.rc} {val2.err.strip()[:80]}"))
    return out


def case_same_path(tmp: Path) -> list[Outcome]:
    for day, seed in (("day1", 0), ("day2", 5)):
        write(plane_recording(n=12, seed=seed), tmp / day / "sub01" / "walk.bag", "bag")
    root = tmp / "root"
    r1 = gd("extract", tmp / "day1", "--out", root, "-q")
    before = DatasetRoot(root).read_frames()
    r2 = gd("extract", tmp / "day2", "--out", root, "-q")
    after = DatasetRoot(root).read_frames()
    same = before.equals(after)
    msg = r2.out + r2.err
    ok = r1.rc == 0 and r2.rc != 0 and same and "day1" in msg and "day2" in msg and "--id-pattern" in msg
    return [Outcome("3 same relative path, other folder", ok,
                    f"second run rc {r2.rc}; first recording's frames unchanged: {same}; both sources named")]  # fmt: skip


def case_decode(tmp: Path) -> list[Outcome]:
    n = 60
    rec = plane_recording(n=n, size=(160, 120), depth_size=(128, 96))
    out = []
    specs = [("mp4v .mp4", "video", "a.mp4", {"codec": "mp4v"}), ("MJPG .avi", "video", "a.avi", {"codec": "mjpeg"}),
             ("H.264 pair", "pair", "a", {"codec": "h264"}), ("db3", "db3", "a.db3", {})]  # fmt: skip
    for label, kind, name, opts in specs:
        for i, frac in enumerate((0.5, 0.4, 0.6, 0.3, 0.7)):
            folder = tmp / label.replace(" ", "_").replace(".", "") / str(i)
            p = write(rec, folder / name, kind, **opts)
            add_noise(p, frac)
            good = db3_decodable(p) if kind == "db3" else opencv_decodable(p, n)
            if 0 < good < n:
                break
        root = folder / "root"
        r = gd("extract", folder, "--out", root, "-q")
        v = DatasetRoot(root).read_videos().iloc[0]
        written, lost = int(v["n_written"]), int(v["n_decode_error"])
        ok = written == good and written + lost == n and r.rc == 1 and "decode_error" in str(v["notes"])
        out.append(Outcome(f"4 4 KB noise in {label}", ok,
                           f"wrote {written}, decodable {good}, {lost} marked decode_error, exit {r.rc}"))  # fmt: skip
    return out


def case_pairs(tmp: Path) -> list[Outcome]:
    rec = plane_recording(n=8)
    out = []

    def one(name: str, make: Callable[[Path], None], expect: str) -> None:
        folder = tmp / name
        write(rec, folder / "good.bag", "bag")
        make(folder)
        r = gd("extract", folder, "--out", folder / "root", "-q", "--workers", "1")
        v = DatasetRoot(folder / "root").read_videos().set_index("video_id")
        failed = v[v.status == "failed"]
        ok = (r.rc == 1 and v.loc["good", "status"] == "ok" and len(failed) == 1
              and expect in str(failed.error.iloc[0]))  # fmt: skip
        out.append(Outcome(f"5 {name}", ok, str(failed.error.iloc[0])[:110] if len(failed) else "accepted"))

    def fewer(d: Path) -> None:
        short = dataclasses.replace(rec, depth=rec.depth[:-2], depth_ts_ms=rec.depth_ts_ms[:-2],
                                    depth_frame_numbers=rec.depth_frame_numbers[:-2])  # fmt: skip
        write(short, d / "short", "pair", depth_format="png", timestamps=False)

    def nan_ts(d: Path) -> None:
        write(rec, d / "nan", "pair")
        csv = d / "nan_color.csv"
        lines = csv.read_text().splitlines()
        lines[3] = lines[3].split(",")[0] + ",nan"
        csv.write_text("\n".join(lines) + "\n")

    def calib(field: tuple[str, ...], value: object, model: bool = False) -> Callable[[Path], None]:
        def make(d: Path) -> None:
            write(rec, d / "cal", "pair")
            cal = d / "cal_calib.json"
            if model:
                set_json_field(cal, ("colour_intrinsics", "model"), "brown_conrady")
            set_json_field(cal, field, value)

        return make

    one("fewer depth frames, no CSVs", fewer, "paired by position only when")
    one("NaN timestamp", nan_ts, "non-finite")
    one("depth_scale 0", calib(("depth_scale",), 0), "positive number")
    one("depth_scale negative", calib(("depth_scale",), -0.001), "positive number")
    one("rotation 2*I", calib(("depth_to_colour", "rotation"), [2, 0, 0, 0, 2, 0, 0, 0, 2]), "orthonormal")
    one("2-element distortion", calib(("colour_intrinsics", "coeffs"), [0.1, 0.01], model=True), "5 coefficients")
    return out


def case_no_overlap(tmp: Path) -> list[Outcome]:
    """One colour frame at 6 fps whose nearest depth frame is 101.6 ms away (tolerance 83.3 ms)."""
    rec = plane_recording(n=3, fps=6.0, offset_ms=101.6)
    rec = dataclasses.replace(rec, colour=rec.colour[:1], colour_ts_ms=rec.colour_ts_ms[:1],
                              colour_frame_numbers=rec.colour_frame_numbers[:1])  # fmt: skip
    write(rec, tmp / "in" / "d435.bag", "bag")
    dry = gd("extract", tmp / "in", "--out", tmp / "dry", "--dry-run")
    r = gd("extract", tmp / "in", "--out", tmp / "root")
    frames = DatasetRoot(tmp / "root").read_frames()
    text = " ".join((r.out + r.err).split())
    ok = (r.rc == 0 and list(frames["status"]) == ["no_depth"] and "101.6" in text and "83.3" in text
          and "no_depth" in " ".join(dry.out.split()))  # fmt: skip
    return [Outcome("6 streams that do not overlap", ok,
                    f"exit {r.rc}; frame status {list(frames['status'])}; gap and tolerance named; dry-run agrees")]  # fmt: skip


def case_kill(tmp: Path) -> list[Outcome]:
    src = tmp / "in"
    for i in range(4):
        write(plane_recording(n=40, size=(320, 240), seed=i), src / f"s{i}" / "walk.mp4", "video")
    root = tmp / "root"
    p = gd_bg("extract", src, "--out", root, "-q", "--workers", "3")
    kids: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        kids = [k for k in _children_of(p.pid) if _alive(k)]
        if len(kids) >= 2:
            time.sleep(0.5)
            kids = [k for k in _children_of(p.pid) if _alive(k)]
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    time.sleep(3.0)
    left = [k for k in kids if _alive(k)]
    for k in left:
        os.kill(k, signal.SIGKILL)
    out = [Outcome("7 kill -9 extract: workers die", bool(kids) and not left,
                   f"{len(kids)} workers before, {len(left)} alive 3 s after the kill")]  # fmt: skip

    wsrc, wroot = _walkers(tmp / "walk", subjects=3, frames=30), tmp / "walk_root"
    assert gd("extract", wsrc, "--out", wroot, "-q").rc == 0
    lab = gd_bg("label", wroot, "-q")
    parts = wroot / ".gaitdata" / "labels"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and lab.poll() is None:
        if parts.is_dir() and any(parts.rglob("*.parquet")):
            break
        time.sleep(0.02)
    os.kill(lab.pid, signal.SIGKILL)
    lab.wait()
    before = len(list(wroot.rglob("*.tmp")))
    again = gd("label", wroot, "-q")
    tmps = [str(t.relative_to(wroot)) for t in wroot.rglob("*.tmp")]
    df = read_labels(wroot, "mediapipe")
    n_frames = len(DatasetRoot(wroot).read_frames())
    keys = df[["video_id", "frame_index", "person_index"]] if "person_index" in df else df[["video_id", "frame_index"]]
    dup = int(keys.duplicated().sum())
    n_lab = df[["video_id", "frame_index"]].drop_duplicates().shape[0]
    ok = again.rc == 0 and not tmps and dup == 0 and n_lab == n_frames
    out.append(Outcome("7 kill -9 label, rerun", ok,
                       f"{before} .tmp after the kill, {len(tmps)} after the rerun, {dup} duplicate rows, {n_lab}/{n_frames} frames labelled"))  # fmt: skip
    return out


def case_names(tmp: Path) -> list[Outcome]:
    for name in ("测试.mp4", "试验.mp4"):
        write(plane_recording(n=6, seed=len(name)), tmp / "in" / name, "video")
    r = gd("extract", tmp / "in", "--out", tmp / "root", "-q")
    ids = sorted(DatasetRoot(tmp / "root").read_videos()["video_id"])
    return [Outcome("8 non-ASCII names", r.rc == 0 and len(set(ids)) == 2, f"exit {r.rc}; ids {ids}")]


def case_umask(tmp: Path) -> list[Outcome]:
    src, root = _walkers(tmp / "in", subjects=3, frames=12), tmp / "root"
    old = os.umask(0o022)
    try:
        for s in [("extract", src, "--out", root, "-q"), ("label", root, "-q"), ("split", root, "--no-near-duplicates",
                  "-q"), ("export", "coco", root, "--labels", "mediapipe", "-q")]:  # fmt: skip
            assert gd(*s).rc == 0, s
        exp = root / "exports" / "coco"
        tr = gd("train", root, "--export", exp, "--epochs", "1", "--batch-size", "4", "-q")
        run = next((root / "models").iterdir()) if (root / "models").is_dir() else None
        if tr.rc == 0 and run is not None:
            gd("compress", run, "--method", "onnx", "-q")
    finally:
        os.umask(old)
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    private = [str(p.relative_to(root)) for p in files if (p.stat().st_mode & 0o777) != 0o644]
    kinds = sorted({p.suffix for p in files})
    return [Outcome("9 files under umask 022", not private and ".pt" in kinds and ".onnx" in kinds,
                    f"{len(files)} files ({' '.join(kinds)}); not 0644: {private[:3] or 'none'}")]  # fmt: skip


def case_errors(tmp: Path) -> list[Outcome]:
    src, root = _walkers(tmp / "in", subjects=2, frames=8), tmp / "root"
    for s in [("extract", src, "--out", root, "-q"), ("label", root, "-q")]:
        assert gd(*s).rc == 0, s
    empty = tmp / "empty"
    empty.mkdir()
    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp / 'pwned'}",))

    evil = tmp / "fast_res50_256x192.pth"
    torch.save({"conv.weight": torch.zeros(2), "cfg": Payload()}, evil, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    ro = tmp / "ro"
    shutil.copytree(root, ro)
    for p in sorted(ro.rglob("*"), reverse=True):
        p.chmod(0o555 if p.is_dir() else 0o444)
    ro.chmod(0o555)
    drop: tuple[str, ...] = ()
    if os.geteuid() == 0 and shutil.which("setpriv"):
        drop = ("setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--")
    cases: list[tuple[str, tuple, tuple, str]] = [
        ("label on a read-only root", ("label", ro, "--label-set", "again"), drop, "not writable"),
        ("split on a read-only root", ("split", ro, "--no-near-duplicates"), drop, "not writable"),
        ("evaluate a run without best.pt", ("evaluate", root, "--run", empty), (), "best.pt"),
        ("label --boxes json:MISSING", ("label", root, "--boxes", f"json:{tmp / 'missing.json'}", "--label-set", "x"),
         (), "missing.json"),
        ("compress an empty folder --method int8", ("compress", empty, "--method", "int8"), (), str(empty)),
        ("extract --fps nan", ("extract", src, "--out", tmp / "r2", "--fps", "nan"), (), "fps"),
        ("extract --fps inf", ("extract", src, "--out", tmp / "r2", "--fps", "inf"), (), "fps"),
        ("train --epochs 0", ("train", root, "--epochs", "0"), (), "epochs"),
        ("export --out inside ROOT/frames", ("export", "coco", root, "--labels", "mediapipe", "--split", "",
                                             "--out", root / "frames" / "x"), (), "frames"),
        ("alphapose teacher, malicious pickle", ("label", root, "--teacher", "alphapose", "--weights", evil,
                                                 "--label-set", "ap"), (), "not plain weights"),
        ("--id-pattern '{bogus'", ("extract", src, "--out", tmp / "r3", "--id-pattern", "{bogus"), (), "id-pattern"),
    ]  # fmt: skip
    out = []
    try:
        for name, args, prefix, expect in cases:
            r = gd(*args, prefix=prefix)
            ok = r.one_line_error and expect in r.err and "weights_only" not in r.err
            if name.startswith("alphapose"):
                ok = ok and not (tmp / "pwned").exists()
            out.append(Outcome(f"10 {name}", ok, (r.err.strip().splitlines() or [f"exit {r.rc}, no message"])[-1][:110]))
    finally:
        for p in [ro, *ro.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    # a new --id-pattern / --metadata on an existing root: applied (metadata) or refused with the reason
    meta = tmp / "meta.csv"
    vids = DatasetRoot(root).read_videos()["video_id"].tolist()
    pd.DataFrame({"video_id": vids, "condition": ["bag"] * len(vids)}).to_csv(meta, index=False)
    m = gd("extract", src, "--out", root, "--metadata", meta, "-q")
    cond = DatasetRoot(root).read_videos().get("condition")
    applied = cond is not None and (cond == "bag").all()
    out.append(Outcome("10 new --metadata on an existing root", m.rc == 0 and applied,
                       f"exit {m.rc}; condition column applied to {0 if cond is None else int((cond == 'bag').sum())}/{len(vids)} rows"))  # fmt: skip
    return out


CASES: dict[str, Callable[[Path], list[Outcome]]] = {
    "lock": case_lock, "stale": case_stale, "same_path": case_same_path, "decode": case_decode,
    "pairs": case_pairs, "no_overlap": case_no_overlap, "kill": case_kill, "names": case_names,
    "umask": case_umask, "errors": case_errors,
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", choices=sorted(CASES), help="run only these groups (repeatable)")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args(argv)
    base = args.keep or Path(tempfile.mkdtemp(prefix="gaitdata-sweep-"))
    base.mkdir(parents=True, exist_ok=True)
    results: list[Outcome] = []
    try:
        for name in args.only or list(CASES):
            t0 = time.perf_counter()
            work = base / name
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            try:
                got = CASES[name](work)
            except Exception as exc:  # a case that cannot even be set up is a failure of the sweep
                got = [Outcome(name, False, f"{type(exc).__name__}: {exc}"[:200])]
            for o in got:
                print(f"{'held' if o.held else 'FELL'}  {o.case:<42} {o.observed}", flush=True)
            print(f"      ({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
            results += got
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    held = sum(o.held for o in results)
    print(f"\n{held} of {len(results)} cases held")
    return 0 if held == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
