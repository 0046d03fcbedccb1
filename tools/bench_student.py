"""Benchmark: student variants against the FastPose-R50 teacher on CPU (one run, ratios printed).

Measures per-crop latency (batch 1) and throughput (batch ``--batch``) of the default student in
fp32, pruned (``--macs-reduction`` of its MACs removed, channels ranked by batch-norm scale) and
int8, a few other registered students, and the FastPose-R50 teacher (random weights: cost does not
depend on them, and no accuracy is claimed for them), plus MACs and parameters, and checks the
goals:

- default student >= 10x fewer MACs and >= 5x faster on CPU than the teacher
- int8 >= 1.5x faster than the fp32 student

Accuracy goals need a labelled synthetic root. ``--make-root DIR`` builds one (once; a complete
root with the same parameters is reused): ``--subjects`` subjects x 2 views (side, walking across;
front, walking towards the camera) x ``--frames`` frames, synthetic ground truth, mediapipe
pseudo-labels, a split BY SUBJECT (~60/10/30 % of frames: the test subjects are never seen in
training) and its COCO export. ``--root ROOT --labels SET [--export DIR]`` uses an existing root
instead (e.g. the one ``gaitdata demo`` builds). The bench then trains the student for
``--epochs`` on the train part (best epoch by validation OKS; a finished run with the same options
is reused, ``--overwrite`` retrains), prunes it to ``--macs-reduction`` fewer MACs (rounds of
pruning and distilled fine-tuning), evaluates both on the test split (``--flip-test`` averages
with the mirrored crop; poses made left/right consistent along each track) and checks:

- OKS AP vs the teacher >= 0.9; PCK@0.1 vs ground truth within 2 points of the teacher's
- side-view gait-angle correlation with ground truth >= the teacher's - 0.05
- pruned: >= 25 % fewer MACs than fp32, PCK@0.1 vs ground truth within 2 points of fp32

Usage::

    python tools/bench_student.py                      # cost only, 1 CPU thread
    python tools/bench_student.py --threads 2 --json bench.json
    # the reference accuracy run (about 2 min to build the root, then training):
    python tools/bench_student.py --threads 2 --make-root bench_output/synth
    python tools/bench_student.py --root demo_output/dataset --labels mediapipe \
        --export demo_output/dataset/exports/coco/demo --epochs 30 --flip-test
    python tools/bench_student.py --threads 2 --make-root bench_output/synth --accuracy-only \
        --model fastpose_res18_w050_128x96 --epochs 12
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _time(model, x, runs: int, warmup: int = 2) -> float:
    import torch

    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            model(x)
            ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def _calibrated_bn(model, seed: int = 0) -> None:
    """Give an untrained model spread-out BN scales, as training with an L1 penalty does."""
    import torch

    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) ** 2
            m.bias.data.zero_()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="default student (registry name)")
    ap.add_argument("--others", default="fastpose_mbv2_w050,fastpose_res10_w050,fastpose_res18_w050_128x96")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--macs-reduction", type=float, default=0.3, help="fraction of MACs the pruned variant removes")
    ap.add_argument("--ratio", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--root", type=Path, help="labelled (synthetic) dataset root for the accuracy goals")
    ap.add_argument(
        "--make-root",
        type=Path,
        metavar="DIR",
        help="build (once; reused when complete) a synthetic root in DIR for the accuracy goals: "
        "--subjects x 2 views x --frames, ground truth, mediapipe labels, by-subject split, COCO export",
    )
    ap.add_argument("--subjects", type=int, default=10, help="subjects of --make-root")
    ap.add_argument("--frames", type=int, default=80, help="frames per recording of --make-root")
    ap.add_argument("--accuracy-only", action="store_true", help="skip the cost table")
    ap.add_argument("--labels", help="teacher label set of --root")
    ap.add_argument("--export", type=Path, help="COCO export folder of --root [default: ROOT/exports/coco]")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8, help="training batch size for the accuracy run")
    ap.add_argument(
        "--train-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra training option for the accuracy run (a TrainConfig field; value parsed as JSON), repeatable",
    )
    ap.add_argument("--run-dir", type=Path, help="training run folder [default: ROOT/models/bench_MODEL]")
    ap.add_argument("--overwrite", action="store_true", help="retrain even when the run folder holds this run")
    ap.add_argument("--no-prune", action="store_true", help="skip the pruned variant of the accuracy run")
    ap.add_argument("--flip-test", action="store_true", help="evaluate with the flip test (2x inference)")
    args = ap.parse_args(argv)

    import torch

    from gaitdata.student import DEFAULT_STUDENT

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.ratio is not None:
        print("--ratio is deprecated: it now sets --macs-reduction", file=sys.stderr)
        args.macs_reduction = args.ratio
    if args.make_root is not None:
        args.root, args.labels, args.export = build_root(args.make_root, args.subjects, args.frames)
    name = args.model or DEFAULT_STUDENT
    goals: dict[str, bool] = {}
    rows: list[dict] = []
    if not args.accuracy_only:
        rows = _cost(args, name, goals)

    accuracy = None
    if args.root is not None:
        accuracy = _accuracy(args, name)
        goals["student OKS AP vs teacher >= 0.9"] = accuracy["ap_vs_teacher"] >= 0.9
        if accuracy.get("pck_gt_student") is not None:
            goals["student PCK@0.1 vs GT within 2 points of the teacher's"] = (
                accuracy["pck_gt_student"] >= accuracy["pck_gt_teacher"] - 0.02
            )
        if accuracy.get("side_r_student") is not None and accuracy.get("side_r_teacher") is not None:
            goals["student side-view angle r vs GT >= teacher's - 0.05"] = (
                accuracy["side_r_student"] >= accuracy["side_r_teacher"] - 0.05
            )
        if accuracy.get("pruned_macs_reduction") is not None:
            goals["pruned >= 25% fewer MACs than fp32"] = accuracy["pruned_macs_reduction"] >= 0.25
            goals["pruned PCK@0.1 within 2 points of fp32"] = accuracy["pruned_pck_drop"] <= 0.02
    print("\ngoals:")
    for g, ok in goals.items():
        print(f"  [{'met' if ok else 'NOT met'}] {g}")
    if args.root is None:
        print("  [not measured] accuracy goals: pass --root ROOT --labels SET (a labelled synthetic root)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"threads": args.threads, "rows": rows, "goals": goals, "accuracy": accuracy}, indent=2
            )
        )
    return 0


def _cost(args: argparse.Namespace, name: str, goals: dict[str, bool]) -> list[dict]:
    import torch

    from gaitdata.student.models import count_flops, count_parameters, create_student
    from gaitdata.student.quant import quantize_int8
    from gaitdata.student.slim import channel_scores, prune, select_budget
    from pseudolabel.models.fastpose import build_fastpose_r50

    entries: list[tuple[str, object, object, tuple[int, int]]] = []
    teacher = build_fastpose_r50().eval()
    entries.append(("teacher FastPose-R50 (random weights)", teacher, teacher, (256, 192)))
    student = create_student(name).eval()
    size = student.arch.input_size
    entries.append((f"{name} fp32", student, student, size))
    calib = torch.randn(32, 3, *size) * 0.25
    entries.append((f"{name} int8", quantize_int8(student, calib), student, size))
    pruned_src = create_student(name).eval()
    _calibrated_bn(pruned_src)
    target = count_flops(pruned_src) * (1 - args.macs_reduction)
    pruned = prune(pruned_src, select_budget(pruned_src, target, channel_scores(pruned_src), floors={}, normalize=True))
    entries.append((f"{name} pruned -{args.macs_reduction:.0%} MACs", pruned, pruned, size))
    entries.append((f"{name} pruned int8", quantize_int8(pruned, calib), pruned, size))
    for other in [o for o in args.others.split(",") if o and o != name]:
        m = create_student(other).eval()
        entries.append((f"{other} fp32", m, m, m.arch.input_size))

    # interleaved rounds: every model is timed once per round, so load changes on a shared machine
    # hit all models alike; the median over rounds is reported
    lat: dict[str, list[float]] = {e[0]: [] for e in entries}
    thr: dict[str, list[float]] = {e[0]: [] for e in entries}
    print(
        f"CPU, {args.threads} thread(s); latency = median batch-1 forward over {args.runs} interleaved rounds, "
        f"throughput at batch {args.batch}"
    )
    print(f"  {'model':38s} {'input':>8s} {'params':>9s} {'MACs':>9s} {'latency':>12s} {'throughput':>16s}")
    for _label, model, _, size_ in entries:  # warm-up
        _time(model, torch.randn(1, 3, *size_), 1, warmup=1)
    for r in range(args.runs):
        for label, model, _, size_ in entries:
            lat[label].append(_time(model, torch.randn(1, 3, *size_), 1, warmup=0))
            if r < max(2, args.runs // 3):
                thr[label].append(args.batch / _time(model, torch.randn(args.batch, 3, *size_), 1, warmup=0))
    rows = []
    for label, _, fp32, size_ in entries:
        row = {
            "model": label,
            "input": f"{size_[0]}x{size_[1]}",
            "params": count_parameters(fp32),
            "macs": count_flops(fp32, size_),
            "latency_ms": float(np.median(lat[label])) * 1000,
            "crops_per_s": float(np.median(thr[label])),
        }
        rows.append(row)
        print(
            f"  {label:38s} {row['input']:>8s} {row['params'] / 1e6:7.2f} M {row['macs'] / 1e9:7.3f} G "
            f"{row['latency_ms']:9.2f} ms {row['crops_per_s']:9.1f} crops/s",
            flush=True,
        )
    t_row, s_row, q_row, p_row = rows[0], rows[1], rows[2], rows[3]

    print("\nratios against the teacher (MACs fewer x, CPU latency faster x, throughput x):")
    for r in rows[1:]:
        print(
            f"  {r['model']:38s} {t_row['macs'] / r['macs']:7.1f}x {t_row['latency_ms'] / r['latency_ms']:7.1f}x "
            f"{r['crops_per_s'] / t_row['crops_per_s']:7.1f}x"
        )
    goals.update(
        {
            "default student >= 10x fewer MACs than the teacher": t_row["macs"] / s_row["macs"] >= 10,
            "default student >= 5x faster (CPU latency) than the teacher": t_row["latency_ms"]
            / s_row["latency_ms"]
            >= 5,
            "int8 >= 1.5x faster than the fp32 student": s_row["latency_ms"] / q_row["latency_ms"] >= 1.5,
        }
    )
    print(
        f"\n  int8 vs fp32 student: {s_row['latency_ms'] / q_row['latency_ms']:.2f}x faster; "
        f"pruned vs fp32: {s_row['latency_ms'] / p_row['latency_ms']:.2f}x faster, "
        f"{s_row['macs'] / p_row['macs']:.2f}x fewer MACs"
    )
    return rows


def _train_opts(items: list[str]) -> dict:
    out = {}
    for it in items:
        key, sep, value = it.partition("=")
        if not sep:
            raise SystemExit(f"--train-opt {it!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def build_root(out: Path, subjects: int, frames: int, seed: int = 0) -> tuple[Path, str, Path]:
    """A synthetic root with mediapipe labels, a by-subject split (test subjects never trained on)
    and its COCO export; every stage is skipped when its output already exists."""
    from gaitdata import synth
    from gaitdata.coco import export_coco
    from gaitdata.extract import ExtractOptions, extract

    out = Path(out).resolve()
    rec_dir, root = out / "recordings", out / "dataset"
    split_name = "bench"
    export = root / "exports" / "coco" / split_name
    done = out / "root_done.json"
    params = {"subjects": subjects, "frames": frames, "seed": seed}
    if done.is_file() and json.loads(done.read_text()) == params and (export / "test.json").is_file():
        print(f"reusing synthetic root {root}")
        return root, "mediapipe", export
    t = time.perf_counter()
    sample = synth.make_sample_set(rec_dir, n_subjects=subjects, n_frames=frames, seed=seed)
    ex = extract(
        [rec_dir], root, ExtractOptions(id_pattern=sample.id_pattern, metadata_csv=sample.metadata_csv)
    )
    if ex.n_failed:
        raise SystemExit(f"{ex.n_failed} synthetic recordings failed to extract")
    synth.write_ground_truth_labels(root)
    from pseudolabel.runner import label

    if not (root / "labels" / "mediapipe.parquet").is_file():
        label(root, teacher="mediapipe", label_set="mediapipe", progress=False)
    import splits

    # by subject, ~60/10/30: the test subjects are never seen in training
    splits.make_split(root, by="subject", fractions=(0.6, 0.1, 0.3), seed=seed, name=split_name)
    files = export_coco(root, "mediapipe", split_name)
    export = Path(next(iter(files.values()))).parent
    done.write_text(json.dumps(params))
    print(f"built synthetic root {root} in {time.perf_counter() - t:.0f} s")
    return root, "mediapipe", export


def _accuracy(args: argparse.Namespace, name: str) -> dict:
    from gaitdata import student

    export = args.export or args.root / "exports" / "coco"
    out = args.run_dir or args.root / "models" / f"bench_{name}"
    t = time.perf_counter()
    run = student.train(
        args.root, export, model=name, epochs=args.epochs, out=out, progress=False, overwrite=args.overwrite,
        batch_size=args.batch_size, **_train_opts(args.train_opt),
    )  # fmt: skip
    print(f"\ntrained {name} for {args.epochs} epochs in {time.perf_counter() - t:.0f} s -> {run}")
    if not args.no_prune:
        t = time.perf_counter()
        student.compress(run, "slim", macs_reduction=args.macs_reduction)
        print(f"pruned to {1 - args.macs_reduction:.0%} of the MACs in {time.perf_counter() - t:.0f} s")
    res = student.evaluate(args.root, run, split="test", labels=args.labels, latency=False, flip_test=args.flip_test)
    m = res.metrics["variants"]["fp32"]
    side = res.metrics["angles"]["side_r"]
    acc = {
        "ap_vs_teacher": m["vs_teacher"]["AP"],
        "pck_vs_teacher": m["vs_teacher"]["PCK@0.1"],
        "side_r_student": _finite(side.get("student_vs_gt", side.get("student_vs_teacher"))),
        "side_r_student_per_frame": _finite(side.get("student_raw_vs_gt", side.get("student_raw_vs_teacher"))),
        "side_r_teacher": _finite(side.get("teacher_vs_gt")),
        "report": str(res.report),
    }
    if "vs_gt" in m:
        acc["pck_gt_student"] = m["vs_gt"]["PCK@0.1"]
        acc["pck_gt_teacher"] = res.metrics["teacher_vs_gt"]["PCK@0.1"]
    pruned = res.metrics["variants"].get("pruned")
    if pruned is not None:
        c = pruned["check"]
        acc.update(pruned_macs_reduction=c["macs_reduction"], pruned_pck_drop=c["drop"], pruned_pck=c["value"],
                   pruned_ap_vs_teacher=pruned["vs_teacher"]["AP"], pruned_side_r=_finite(pruned.get("side_angle_r")))  # fmt: skip
    gait = res.metrics.get("gait", {})
    acc["gait"] = {vid: {src: {k: g[src][k] for k in ("heel_strikes", "cadence_steps_per_min")}
                         for src in ("ground truth", "teacher", "student") if src in g} for vid, g in gait.items()}  # fmt: skip
    print(f"accuracy on the held-out split: {json.dumps(acc, indent=1)}")
    return acc


def _finite(v: float | None) -> float | None:
    return None if v is None or v != v else float(v)


if __name__ == "__main__":
    sys.exit(main())
