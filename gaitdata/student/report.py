"""The evaluation report: Markdown tables + PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from gaitdata.io import atomic_write_text
from gaitdata.schema import KeypointSchema


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:.{digits}f}"
    return str(v)


def _size(b: int | None) -> str:
    if b is None:
        return "-"
    return f"{b / 1e6:.2f} MB" if b >= 1e5 else f"{b / 1e3:.1f} kB"


def read_train_log(run_dir: Path) -> list[dict[str, str]]:
    p = run_dir / "train_log.csv"
    if not p.is_file():
        return []
    with p.open() as fh:
        return list(csv.DictReader(fh))


def plot_training(rows: list[dict[str, str]], path: Path) -> Path | None:
    if not rows:
        return None
    plt = _plt()
    step = [r for r in rows if r.get("row") == "step"]
    ep = [r for r in rows if r.get("row") == "epoch"]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    if step:
        ax[0].plot([int(r["step"]) for r in step], [float(r["loss"]) for r in step], lw=1, label="batch loss")
    if ep:
        ax[0].plot([int(r["step"]) for r in ep], [float(r["loss"]) for r in ep], "o-", label="epoch mean")
        vp = [(int(r["epoch"]) + 1, float(r["val_pck"])) for r in ep if r.get("val_pck")]
        if vp:
            ax[1].plot(*zip(*vp, strict=True), "o-", color="C2", label="PCK@0.1")
        vo = [(int(r["epoch"]) + 1, float(r["val_oks"])) for r in ep if r.get("val_oks")]
        if vo:
            ax[1].plot(*zip(*vo, strict=True), "s--", color="C3", label="mean OKS")
        if vp or vo:
            ax[1].legend(fontsize=8)
    ax[0].set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
    ax[0].legend(fontsize=8)
    ax[1].set(xlabel="epoch", ylabel="score", title="validation vs the labels", ylim=(0, 1.02))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_per_joint(metrics: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    fp32 = next(iter(metrics["variants"].values()))
    joints = [r["joint"] for r in fp32["vs_teacher"]["per_joint"]]
    x = np.arange(len(joints))
    series = [("student vs teacher", [r["mean_px"] for r in fp32["vs_teacher"]["per_joint"]])]
    if "vs_gt" in fp32:
        series.append(("student vs ground truth", [r["mean_px"] for r in fp32["vs_gt"]["per_joint"]]))
        series.append(
            ("teacher vs ground truth", [r["mean_px"] for r in metrics["teacher_vs_gt"]["per_joint"]])
        )
    w = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for i, (name, vals) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * w, vals, w, label=name)
    ax.set_xticks(x, joints, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="mean error (px)", title="per-joint error")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_angles(
    angles: dict[str, Any], angles_gt: dict[str, Any] | None, path: Path, max_videos: int = 3
) -> Path | None:
    curves = angles.get("curves", {})
    vids = sorted(curves)[:max_videos]
    if not vids:
        return None
    plt = _plt()
    names = ("left_hip", "left_knee", "left_shank")
    fig, axes = plt.subplots(len(vids), len(names), figsize=(11, 2.6 * len(vids)), squeeze=False)
    for r, vid in enumerate(vids):
        c = curves[vid]
        g = (angles_gt or {}).get("curves", {}).get(vid)
        for col, n in enumerate(names):
            ax = axes[r][col]
            ax.plot(c["frames"], c["b"][n], label="teacher", color="C0")
            ax.plot(c["frames"], c["a"][n], label="student", color="C1", ls="--")
            if g is not None:
                ax.plot(g["frames"], g["b"][n], label="ground truth", color="k", lw=0.8)
            ax.set_title(f"{vid}: {n.replace('_', ' ')}", fontsize=9)
            ax.set_xlabel("frame", fontsize=8)
            ax.set_ylabel("deg", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_cost(metrics: dict[str, Any], cost: list[dict[str, Any]], path: Path) -> Path | None:
    if not cost:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    use_gt = "teacher_vs_gt" in metrics
    key = "PCK@0.1"
    for row in cost:
        name = row["model"]
        if name.startswith("teacher"):
            acc = metrics["teacher_vs_gt"][key] if use_gt else 1.0
        else:
            v = metrics["variants"].get(name.removeprefix("student "), {})
            acc = (
                (v.get("vs_gt") or v.get("vs_teacher") or {}).get(key)
                if use_gt
                else v.get("vs_teacher", {}).get(key)
            )
        if acc is None:
            continue
        ax.scatter(row["cpu_ms"], acc, s=30 + 60 * math.log10(max(row["macs"], 1e6) / 1e6))
        ax.annotate(name, (row["cpu_ms"], acc), fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set(
        xlabel="CPU latency per crop (ms, log)",
        ylabel=f"{key} vs {'ground truth' if use_gt else 'teacher'}",
        title="accuracy vs cost (marker size ~ log MACs)",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(
    out_dir: Path,
    run_dir: Path,
    metrics: dict[str, Any],
    cost: list[dict[str, Any]],
    angles: dict[str, Any],
    angles_gt: dict[str, Any] | None,
    schema: KeypointSchema,
) -> tuple[Path, list[Path]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    pdir = out_dir / "report"
    pdir.mkdir(exist_ok=True)
    plots = [
        plot_training(read_train_log(run_dir), pdir / "training.png"),
        plot_per_joint(metrics, pdir / "per_joint.png"),
        plot_angles(angles, angles_gt, pdir / "angles.png"),
        plot_cost(metrics, cost, pdir / "accuracy_vs_cost.png"),
    ]
    plots = [p for p in plots if p is not None]
    L: list[str] = [f"# Student evaluation: {run_dir.name}", ""]
    L.append(
        f"Split **{metrics['split']}** ({metrics['frames']} frames, {metrics['persons']} reference persons) "
        f"from `{metrics['export']}`; reference: **{metrics['reference']}**"
        + (f"; ground truth: **{metrics['ground_truth']}**." if metrics.get("ground_truth") else ".")
    )
    L += [
        "",
        "The student runs on the reference's person boxes. PCK thresholds are fractions of the box's longer side; "
        "AP is COCO OKS AP (pycocotools) with box area as the object scale.",
        "",
    ]
    L += [
        "## Accuracy against the teacher",
        "",
        "| model | AP | AP50 | AP75 | PCK@0.05 | PCK@0.1 | PCK@0.2 | mean OKS | mean error (px) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics["variants"].items():
        t = m["vs_teacher"]
        L.append(
            f"| {name} | {_fmt(t['AP'])} | {_fmt(t['AP50'])} | {_fmt(t['AP75'])} | {_fmt(t['PCK@0.05'])} | "
            f"{_fmt(t['PCK@0.1'])} | {_fmt(t['PCK@0.2'])} | {_fmt(t['mean_OKS'])} | {_fmt(t['mean_px'], 1)} |"
        )
    if "teacher_vs_gt" in metrics:
        L += [
            "",
            "## Accuracy against ground truth",
            "",
            "| model | AP | PCK@0.05 | PCK@0.1 | PCK@0.2 | mean error (px) |",
            "|---|---|---|---|---|---|",
        ]
        t = metrics["teacher_vs_gt"]
        L.append(
            f"| **teacher** ({metrics['reference']}) | {_fmt(t['AP'])} | {_fmt(t['PCK@0.05'])} | {_fmt(t['PCK@0.1'])} | "
            f"{_fmt(t['PCK@0.2'])} | {_fmt(t['mean_px'], 1)} |"
        )
        for name, m in metrics["variants"].items():
            g = m["vs_gt"]
            L.append(
                f"| student {name} | {_fmt(g['AP'])} | {_fmt(g['PCK@0.05'])} | {_fmt(g['PCK@0.1'])} | "
                f"{_fmt(g['PCK@0.2'])} | {_fmt(g['mean_px'], 1)} |"
            )
    fp32_name, fp32 = next(iter(metrics["variants"].items()))
    L += [
        "",
        f"## Per-joint error ({fp32_name} student)",
        "",
        "| joint | n | vs teacher mean px | median px | PCK@0.1"
        + (" | vs GT mean px | teacher vs GT mean px |" if "vs_gt" in fp32 else " |"),
        "|---|---|---|---|---" + ("|---|---|" if "vs_gt" in fp32 else "|"),
    ]
    for j, r in enumerate(fp32["vs_teacher"]["per_joint"]):
        line = f"| {r['joint']} | {r['n']} | {_fmt(r['mean_px'], 1)} | {_fmt(r['median_px'], 1)} | {_fmt(r['PCK@0.1'])} |"
        if "vs_gt" in fp32:
            line += f" {_fmt(fp32['vs_gt']['per_joint'][j]['mean_px'], 1)} | {_fmt(metrics['teacher_vs_gt']['per_joint'][j]['mean_px'], 1)} |"
        L.append(line)
    L += [
        "",
        "## Gait angles",
        "",
        "Hip and knee flexion (180° minus the shoulder-hip-knee / hip-knee-ankle angle) and shank inclination from the "
        "image vertical (COCO-17 has no foot points for a true ankle angle), per recording, for the subject. "
        "Correlation r and RMSE (degrees), averaged over recordings.",
        "",
        "| angle | student vs teacher r | RMSE"
        + (" | student vs GT r | RMSE | teacher vs GT r | RMSE |" if angles_gt else " |"),
        "|---|---|---" + ("|---|---|---|---|" if angles_gt else "|"),
    ]
    tg = metrics.get("angles", {}).get("teacher_vs_gt", {})
    for n, v in angles["summary"].items():
        line = f"| {n} | {_fmt(v['r'])} | {_fmt(v['rmse'], 1)} |"
        if angles_gt:
            g = angles_gt["summary"].get(n, {})
            t = tg.get(n, {})
            line += f" {_fmt(g.get('r'))} | {_fmt(g.get('rmse'), 1)} | {_fmt(t.get('r'))} | {_fmt(t.get('rmse'), 1)} |"
        L.append(line)
    if cost:
        L += [
            "",
            "## Cost (measured in this run)",
            "",
            "| model | input | params | MACs | file | CPU ms/crop | GPU ms/crop | MACs ratio | CPU speed-up |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        teacher = next((c for c in cost if c["model"].startswith("teacher")), None)
        for c in cost:
            ratio = f"{teacher['macs'] / c['macs']:.1f}x fewer" if teacher and c is not teacher else "-"
            speed = f"{teacher['cpu_ms'] / c['cpu_ms']:.1f}x" if teacher and c is not teacher else "-"
            L.append(
                f"| {c['model']} | {c['input']} | {c['params'] / 1e6:.2f} M | {c['macs'] / 1e9:.3f} G | "
                f"{_size(c['size_bytes'])} | {_fmt(c['cpu_ms'], 2)} | {_fmt(c['gpu_ms'], 2)} | {ratio} | {speed} |"
            )
        if teacher and teacher.get("note"):
            L.append(f"\nTeacher: {teacher['note']}.")
        L.append(
            "\nLatency: median of repeated single-crop forward passes on this machine (CPU threads as configured); "
            "int8 counts the MACs and parameters of its fp32 architecture."
        )
    L += ["", "## Plots", ""]
    for p in plots:
        L.append(f"![{p.stem}](report/{p.name})")
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(L) + "\n")
    return path, plots
