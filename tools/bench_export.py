"""Benchmark: gaitdata's COCO keypoints export vs FiftyOne's own COCO exporter, same data.

Builds a synthetic dataset root (tables generated directly, tiny placeholder JPEGs because the
export checks that every image exists), exports its label set once with
:func:`gaitdata.coco.export_coco` and once with FiftyOne
(``dataset.export(dataset_type=fo.types.COCODetectionDataset, label_field="keypoints",
export_media=False)``, metadata precomputed so neither side reads pixels), prints the time
ratio and a side-by-side of what each file contains. One run each; ratios, not absolutes.

    python tools/bench_export.py                 # 20,000 frames
    python tools/bench_export.py --frames 2000   # quicker
    python tools/bench_export.py --keep DIR      # keep the root and both files in DIR
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def build_root(path: Path, frames: int) -> Any:
    from gaitdata.testing.roots import ToyRootSpec, build_toy_root

    videos = max(2, frames // 100)
    subjects = max(2, videos // 4)
    per_subject = math.ceil(videos / subjects)
    spec = ToyRootSpec(
        subjects=subjects, videos_per_subject=per_subject, frames_per_video=math.ceil(frames / (subjects * per_subject)),
        width=64, height=48, unequal=False, label_set="bench",
    )  # fmt: skip
    return build_toy_root(path, spec)


def fiftyone_dataset(fo: Any, root: Any, labels: str) -> Any:
    """The same frames and label set as a FiftyOne dataset (normalised keypoints, NaN where v = 0)."""
    from gaitdata.labels import read_labels

    lab = read_labels(root, labels)
    frames = root.read_frames().set_index(["video_id", "frame_index"])
    sizes = root.read_videos().set_index("video_id")[["width", "height"]]
    name = f"gaitdata-bench-{int(time.time())}"
    ds = fo.Dataset(name)
    samples = []
    for (vid, fi), grp in lab.groupby(["video_id", "frame_index"], sort=True):
        w, h = (int(x) for x in sizes.loc[vid])
        kps = []
        for r in grp.itertuples(index=False):
            if not r.has_person:
                continue
            pts, conf = [], []
            for j in range(17):
                x, y, c = r.keypoints[3 * j : 3 * j + 3]
                if r.visibility[j] > 0:
                    pts.append((x / w, y / h))
                else:
                    pts.append((float("nan"), float("nan")))
                conf.append(float(c))
            kps.append(fo.Keypoint(label="person", points=pts, confidence=conf, index=int(r.person_index)))
        s = fo.Sample(filepath=str(root.path / frames.loc[(vid, fi), "rgb_path"]))
        s["metadata"] = fo.ImageMetadata(width=w, height=h)
        s["keypoints"] = fo.Keypoints(keypoints=kps)
        samples.append(s)
    ds.add_samples(samples, progress=False)
    from gaitdata.schema import COCO17

    ds.default_skeleton = fo.KeypointSkeleton(
        labels=list(COCO17.keypoints), edges=[list(e) for e in COCO17.skeleton]
    )
    return ds


def describe(path: Path) -> dict[str, Any]:
    d = json.loads(path.read_text())
    anns = d.get("annotations", [])
    ann_keys = sorted({k for a in anns for k in a})
    img_keys = sorted({k for im in d.get("images", []) for k in im})
    vis = sorted({int(v) for a in anns for v in a.get("keypoints", [])[2::3]})
    coords = {type(x).__name__ for a in anns for i, x in enumerate(a.get("keypoints", [])) if i % 3 != 2}
    cats = d.get("categories", [])
    out = {
        "size": f"{path.stat().st_size / 1e6:.1f} MB",
        "images": len(d.get("images", [])),
        "annotations": len(anns),
        "image fields": ", ".join(img_keys),
        "annotation fields": ", ".join(ann_keys),
        "bbox / area present": f"{sum('bbox' in a for a in anns)} / {sum('area' in a for a in anns)}",
        "visibility values": str(vis),
        "coordinate types": ", ".join(sorted(coords)) or "-",
        "score type": ", ".join(sorted({type(a["score"]).__name__ for a in anns if "score" in a}))
        or "absent",
        "per-joint confidence": "yes" if any("keypoint_scores" in a for a in anns) else "no",
        "skeleton (1-indexed)": (
            "yes"
            if cats and cats[0].get("skeleton") and min(min(e) for e in cats[0]["skeleton"]) == 1
            else ("0-indexed" if cats and cats[0].get("skeleton") else "no")
        ),  # fmt: skip
        "video/frame fields": "yes" if any("video_id" in im for im in d.get("images", [])) else "no",
        "COCOeval keypoints": cocoeval_status(path, anns),
    }
    return out


def cocoeval_status(path: Path, anns: list[dict[str, Any]]) -> str:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(str(path))
            dets = [dict(a, score=a.get("score", 1.0)) for a in anns]
            dt = gt.loadRes(dets)
            ev = COCOeval(gt, dt, iouType="keypoints")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return f"works, self-AP {ev.stats[0]:.3f}"
    except Exception as exc:  # report whatever the exporter's file makes pycocotools raise
        return f"fails: {type(exc).__name__}: {str(exc)[:60]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = ap.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    console = Console()
    work = args.keep or Path(tempfile.mkdtemp(prefix="gaitdata-bench-export-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        root = build_root(work / "root", args.frames)
        n = len(root.read_frames())
        console.print(f"synthetic root: {n} frames, built in {time.perf_counter() - t0:.1f} s ({root.path})")

        from gaitdata.coco import export_coco

        t0 = time.perf_counter()
        ours = export_coco(root, "bench", None, out=work / "gaitdata")["all"]
        t_ours = time.perf_counter() - t0
        console.print(f"gaitdata export_coco: {t_ours:.2f} s -> {ours}")

        theirs = None
        try:
            from gaitdata.browse.db import connect

            fo = connect(db_dir=work / "fiftyone-db")
        except Exception as exc:
            console.print(
                f"[yellow]SKIP FiftyOne part:[/] cannot start FiftyOne ({type(exc).__name__}: {exc})"
            )
            fo = None
        if fo is not None:
            t0 = time.perf_counter()
            ds = fiftyone_dataset(fo, root, "bench")
            console.print(f"FiftyOne dataset ingest (not timed against): {time.perf_counter() - t0:.1f} s")
            t0 = time.perf_counter()
            ds.export(
                export_dir=str(work / "fiftyone"), dataset_type=fo.types.COCODetectionDataset,
                label_field="keypoints", export_media=False, progress=False,
            )  # fmt: skip
            t_fo = time.perf_counter() - t0
            theirs = work / "fiftyone" / "labels.json"
            console.print(f"FiftyOne COCODetectionDataset export: {t_fo:.2f} s -> {theirs}")
            console.print(f"[bold]ratio: gaitdata is {t_fo / t_ours:.1f}x faster[/] (goal >= 10x)")
            ds.delete()

        table = Table(title="what each file contains")
        table.add_column("")
        table.add_column("gaitdata", overflow="fold")
        if theirs is not None:
            table.add_column("FiftyOne", overflow="fold")
        a = describe(ours)
        b = describe(theirs) if theirs is not None else {}
        for k in a:
            table.add_row(k, str(a[k]), *([str(b.get(k, "-"))] if theirs is not None else []))
        console.print(table)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
