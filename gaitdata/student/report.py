"""The evaluation report: Markdown tables + PNG plots (matplotlib, Agg backend).

Every figure pairs numbers that belong to one model measured on one thing: an accuracy point of
the accuracy-vs-cost plot is drawn only for a model whose accuracy AND cost were measured here;
a cost-only reference (random weights) is drawn as a labelled line, not as a point.
"""

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


# ------------------------------------------------------------------------------------------------
# plots


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
        series.append(("teacher vs ground truth", [r["mean_px"] for r in metrics["teacher_vs_gt"]["per_joint"]]))
    w = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for i, (name, vals) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * w, vals, w, label=name)
    ax.set_xticks(x, joints, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="mean error (px)", title="per-joint error (student fp32)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_angles(angles: dict[str, Any], path: Path, max_videos: int = 3) -> Path | None:
    """Angle curves of the side views (the views where the curves carry the gait): student and
    teacher, and ground truth when there is one."""
    curves = angles.get("curves", {})
    has_gt = "student_vs_gt" in curves
    main = curves.get("student_vs_gt" if has_gt else "student_vs_teacher", {})
    views = angles.get("views", {})
    from gaitdata.student.gait import is_side

    vids = sorted(main, key=lambda v: (not is_side(views.get(v, "")), v))[:max_videos]
    if not vids:
        return None
    plt = _plt()
    names = ("left_hip", "left_knee", "left_shank")
    fig, axes = plt.subplots(len(vids), len(names), figsize=(11, 2.6 * len(vids)), squeeze=False)
    teacher = curves.get("teacher_vs_gt" if has_gt else "student_vs_teacher", {})
    for r, vid in enumerate(vids):
        c = main[vid]
        for col, n in enumerate(names):
            ax = axes[r][col]
            if has_gt:
                ax.plot(c["frames"], c["b"][n], label="ground truth", color="k", lw=0.8)
                t = teacher.get(vid)
                if t is not None:
                    ax.plot(t["frames"], t["a"][n], label="teacher", color="C0")
            else:
                ax.plot(c["frames"], c["b"][n], label="teacher", color="C0")
            ax.plot(c["frames"], c["a"][n], label="student", color="C1", ls="--")
            ax.set_title(f"{vid} ({views.get(vid, '?')}): {n.replace('_', ' ')}", fontsize=9)
            ax.set_xlabel("frame", fontsize=8)
            ax.set_ylabel("deg", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_cost(metrics: dict[str, Any], cost: list[dict[str, Any]], path: Path) -> Path | None:
    """Accuracy vs CPU latency: one point per model whose accuracy and cost were both measured here;
    cost-only rows (random weights) as labelled vertical lines."""
    if not cost:
        return None
    plt = _plt()
    use_gt = "teacher_vs_gt" in metrics
    key = "PCK@0.1"
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for row in cost:
        name = row["model"]
        if not row.get("accuracy"):
            ax.axvline(row["cpu_ms"], color="0.6", ls=":", lw=1)
            ax.annotate(f"{name}\n({row.get('weights')} weights: cost only)", (row["cpu_ms"], 0.02),
                        xycoords=("data", "axes fraction"), fontsize=7, rotation=90, ha="right")  # fmt: skip
            continue
        if name.startswith("teacher"):
            acc = (metrics.get("teacher_vs_gt") or {}).get(key) if use_gt else 1.0
        else:
            v = metrics["variants"].get(name.removeprefix("student "), {})
            src = v.get("vs_gt") if use_gt else v.get("vs_teacher")
            acc = (src or {}).get(key)
        if acc is None or not math.isfinite(acc):
            continue
        ax.scatter(row["cpu_ms"], acc, s=40, marker="s" if row.get("per") == "frame" else "o")
        label = f"{name} (per {row.get('per', 'crop')})"
        ax.annotate(label, (row["cpu_ms"], acc), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set(
        xlabel="CPU latency (ms, log): per crop, or per frame for a model that finds the person itself",
        ylabel=f"{key} vs {'ground truth' if use_gt else 'teacher'}",
        title="accuracy vs cost (each point: one model, both measured here)",
    )
    ax.xaxis.label.set_size(7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------
# sections


def _accuracy_sections(metrics: dict[str, Any]) -> list[str]:
    L = [
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
            "| model | AP | PCK@0.05 | PCK@0.1 | PCK@0.2 | mean error (px) | side-view angle r |",
            "|---|---|---|---|---|---|---|",
        ]
        t = metrics["teacher_vs_gt"]
        tr = metrics.get("angles", {}).get("side_r", {}).get("teacher_vs_gt")
        L.append(
            f"| **teacher** ({metrics['reference']}) | {_fmt(t['AP'])} | {_fmt(t['PCK@0.05'])} | "
            f"{_fmt(t['PCK@0.1'])} | {_fmt(t['PCK@0.2'])} | {_fmt(t['mean_px'], 1)} | {_fmt(tr)} |"
        )
        for name, m in metrics["variants"].items():
            g = m["vs_gt"]
            L.append(
                f"| student {name} | {_fmt(g['AP'])} | {_fmt(g['PCK@0.05'])} | {_fmt(g['PCK@0.1'])} | "
                f"{_fmt(g['PCK@0.2'])} | {_fmt(g['mean_px'], 1)} | {_fmt(m.get('side_angle_r'))} |"
            )
    return L


def _compression_section(metrics: dict[str, Any]) -> list[str]:
    checked = {n: m["check"] for n, m in metrics["variants"].items() if "check" in m}
    val = metrics.get("compress_checks") or {}
    if not checked and not val:
        return []
    L = ["", "## Compressed variants against the fp32 model", ""]
    if checked:
        first = next(iter(checked.values()))
        L += [
            f"On this split, against {first['against']} (tolerance: PCK@0.1 may drop by "
            f"{first['tolerance'] * 100:.0f} points):",
            "",
            "| variant | MACs vs fp32 | PCK@0.1 | fp32 | drop (points) | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for name, c in checked.items():
            verdict = "within tolerance" if c["within_tolerance"] else "**MISSES its tolerance**"
            L.append(
                f"| {name} | {-c['macs_reduction'] * 100:+.0f}% | {_fmt(c['value'])} | {_fmt(c['reference'])} | "
                f"{c['drop'] * 100:.1f} | {verdict} |"
            )
    if val:
        L += [
            "",
            "Checks `gaitdata compress` made on the validation part when it wrote each file:",
            "",
            "| file | metric | value | fp32 | drop (points) | tolerance | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for fname, c in val.items():
            verdict = "within tolerance" if c.get("within_tolerance") else "**MISSES its tolerance**"
            L.append(
                f"| {fname} | {c.get('metric')} ({c.get('against')}) | {_fmt(c.get('value'))} | "
                f"{_fmt(c.get('reference'))} | {_fmt((c.get('drop') or 0) * 100, 1)} | "
                f"{_fmt((c.get('tolerance') or 0) * 100, 1)} | {verdict} |"
            )
    return L


def _per_joint_section(metrics: dict[str, Any]) -> list[str]:
    fp32_name, fp32 = next(iter(metrics["variants"].items()))
    has_gt = "vs_gt" in fp32
    L = [
        "",
        f"## Per-joint error ({fp32_name} student)",
        "",
        "| joint | n | vs teacher mean px | median px | PCK@0.1"
        + (" | vs GT mean px | teacher vs GT mean px |" if has_gt else " |"),
        "|---|---|---|---|---" + ("|---|---|" if has_gt else "|"),
    ]
    for j, r in enumerate(fp32["vs_teacher"]["per_joint"]):
        line = f"| {r['joint']} | {r['n']} | {_fmt(r['mean_px'], 1)} | {_fmt(r['median_px'], 1)} | {_fmt(r['PCK@0.1'])} |"
        if has_gt:
            line += (
                f" {_fmt(fp32['vs_gt']['per_joint'][j]['mean_px'], 1)} |"
                f" {_fmt(metrics['teacher_vs_gt']['per_joint'][j]['mean_px'], 1)} |"
            )
        L.append(line)
    return L


_CMP_LABELS = {
    "student_vs_gt": "student vs GT",
    "teacher_vs_gt": "teacher vs GT",
    "student_raw_vs_gt": "student per-frame (no track consistency) vs GT",
    "teacher_consistent_vs_gt": "teacher labels made consistent the same way vs GT",
    "student_vs_teacher": "student vs teacher",
    "student_raw_vs_teacher": "student per-frame (no track consistency) vs teacher",
}


def _angles_section(metrics: dict[str, Any]) -> list[str]:
    from gaitdata.student.gait import MIN_ANGLE_STD, is_side

    ang = metrics.get("angles") or {}
    comps = ang.get("comparisons") or {}
    views = ang.get("views") or {}
    cons = metrics.get("consistency")
    L = [
        "",
        "## Gait angles, by view",
        "",
        "Hip and knee flexion (180° minus the shoulder-hip-knee / hip-knee-ankle angle) and shank inclination "
        "from the image vertical (COCO-17 has no foot points for a true ankle angle), for the subject of each "
        "recording; Pearson r and RMSE (degrees), averaged over the recordings of the view. "
        f"A correlation is shown only where the reference curve varies (standard deviation ≥ {MIN_ANGLE_STD:.0f}°): "
        "in front views the angles are nearly constant and r would be noise. "
        + (
            "Student poses are made left/right consistent along each track before any gait measure "
            f"(`gaitdata.student.consistency`) and smoothed over time (Gaussian, sigma {cons.get('smooth_sigma', 0):g} "
            "frames; 0: none); the per-frame line shows the model's raw output."
            if cons
            else "Student poses are the model's raw per-frame output (no track consistency)."
        ),
    ]
    depth = ang.get("depth") or {}
    for view in sorted(set(views.values()), key=lambda w: (not is_side(w), w)):
        vids = sorted(v for v, w in views.items() if w == view)
        L += ["", f"### {view} view ({len(vids)} recording{'s' if len(vids) != 1 else ''})", ""]
        if is_side(view) and cons:
            L += [
                "Evidence of which leg is nearer the camera: "
                + ", ".join(f"{v} ({'registered depth and perspective' if depth.get(v) else 'perspective'})" for v in vids)
                + ".",
                "",
            ]
        names = sorted({a for c in comps.values() for a in c["by_view"].get(view, {})})
        if not names:
            L.append("(no curves)")
            continue
        L.append("| comparison | " + " | ".join(f"{n} r / RMSE" for n in names) + " | mean r |")
        L.append("|---" * (len(names) + 2) + "|")
        for cname, c in comps.items():
            s = c["by_view"].get(view, {})
            cells = [f"{_fmt(s.get(n, {}).get('r'))} / {_fmt(s.get(n, {}).get('rmse'), 1)}" for n in names]
            rs = [s.get(n, {}).get("r") for n in names]
            rs = [r for r in rs if r is not None and math.isfinite(r)]
            L.append(f"| {_CMP_LABELS.get(cname, cname)} | " + " | ".join(cells) + f" | {_fmt(float(np.mean(rs)) if rs else None)} |")
        if not is_side(view):
            L.append("\nr is left out where the reference angle is flat (front views: r would be noise).")
    return L


def _gait_section(metrics: dict[str, Any]) -> list[str]:
    gait = metrics.get("gait") or {}
    if not gait:
        return []
    ref = "ground truth" if metrics.get("ground_truth") else "teacher"
    L = [
        "",
        "## Gait cycle (side views)",
        "",
        "Heel strikes from the ankle trajectories (the foot furthest ahead of the pelvis in the walking "
        "direction, Zeni et al. 2008), per foot; step time between strikes of alternating feet, stride time "
        f"between strikes of one foot, cadence = 60 / step time. Events are matched per foot to the {ref}'s "
        "within 0.1 s.",
        "",
        f"| recording | source | heel strikes | step time (s) | stride time (s) | cadence (steps/min) | "
        f"matched / missed / extra vs {ref} | timing error (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for vid, g in gait.items():
        for src in ("ground truth", "teacher", "student"):
            if src not in g:
                continue
            s = g[src]
            m = s.get(f"vs_{ref}")
            match = f"{m['matched']} / {m['missed']} / {m['extra']}" if m else "-"
            L.append(
                f"| {vid} | {src} | {s['heel_strikes']} | {_fmt(s['step_time_s'])} | {_fmt(s['stride_time_s'])} | "
                f"{_fmt(s['cadence_steps_per_min'], 1)} | {match} | {_fmt(m['mean_abs_error_ms'], 0) if m else '-'} |"
            )
    return L


def _cost_section(cost: list[dict[str, Any]]) -> list[str]:
    if not cost:
        return []
    L = [
        "",
        "## Cost (measured in this run)",
        "",
        "| model | per | weights | input | params | MACs | file | CPU ms | GPU ms | accuracy in this report |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cost:
        params = f"{c['params'] / 1e6:.2f} M" if c.get("params") else "-"
        macs = f"{c['macs'] / 1e9:.3f} G" if c.get("macs") else "-"
        L.append(
            f"| {c['model']} | {c.get('per', 'crop')} | {c.get('weights', 'trained')} | {c['input']} | {params} | "
            f"{macs} | {_size(c['size_bytes'])} | {_fmt(c['cpu_ms'], 2)} | {_fmt(c['gpu_ms'], 2)} | "
            f"{'yes' if c.get('accuracy') else 'no: cost only'} |"
        )
    students = [c for c in cost if c["model"].startswith("student")]
    others = [c for c in cost if not c["model"].startswith("student")]
    if students and others:
        base = students[0]
        L += ["", "Speed of the student fp32 against each other model (CPU latency ratio; MACs ratio where both are known):", ""]
        for o in others:
            macs = f", {o['macs'] / base['macs']:.1f}x the MACs" if o.get("macs") and base.get("macs") else ""
            L.append(f"- {o['model']} ({o.get('weights')} weights, per {o.get('per')}): "
                     f"{o['cpu_ms'] / base['cpu_ms']:.1f}x the latency{macs}")  # fmt: skip
    L.append(
        "\nLatency: median of repeated single-input forward passes on this machine (CPU threads as configured). "
        "Random weights do not change latency or MACs, but such a model has no accuracy here. "
        "int8 counts the MACs and parameters of its fp32 architecture."
    )
    return L


def write_report(
    out_dir: Path,
    run_dir: Path,
    metrics: dict[str, Any],
    cost: list[dict[str, Any]],
    angles: dict[str, Any],
    schema: KeypointSchema,
) -> tuple[Path, list[Path]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    pdir = out_dir / "report"
    pdir.mkdir(exist_ok=True)
    plots = [
        plot_training(read_train_log(run_dir), pdir / "training.png"),
        plot_per_joint(metrics, pdir / "per_joint.png"),
        plot_angles(angles, pdir / "angles.png"),
        plot_cost(metrics, cost, pdir / "accuracy_vs_cost.png"),
    ]
    plots = [p for p in plots if p is not None]
    L: list[str] = [f"# Student evaluation: {run_dir.name}", ""]
    L.append(
        f"Split **{metrics['split']}** ({metrics['frames']} frames, {metrics['persons']} reference persons) "
        f"from `{metrics['export']}`; reference: **{metrics['reference']}**"
        + (f" (teacher {metrics['teacher']})" if metrics.get("teacher") else "")
        + (f"; ground truth: **{metrics['ground_truth']}**." if metrics.get("ground_truth") else ".")
    )
    L += [
        "",
        "The student runs on the reference's person boxes"
        + (", with the flip test" if metrics.get("flip_test") else "")
        + (", its poses made left/right consistent along each track" if metrics.get("consistency") else "")
        + ". PCK thresholds are fractions of the box's longer side; AP is COCO OKS AP (pycocotools) with box "
        "area as the object scale.",
        "",
    ]
    L += _accuracy_sections(metrics)
    L += _compression_section(metrics)
    L += _per_joint_section(metrics)
    L += _angles_section(metrics)
    L += _gait_section(metrics)
    L += _cost_section(cost)
    L += ["", "## Plots", ""]
    for p in plots:
        L.append(f"![{p.stem}](report/{p.name})")
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(L) + "\n")
    return path, plots
