"""Group-aware splits: every frame of a video, and every video of a subject, land in one part.

Frames of one video are near-duplicates and a person's gait is their identity, so a split by
frame leaks. :func:`make_split` assigns whole *groups* (subjects when every recording names one,
else videos) to the parts of a split (train/val/test, or folds) so that the requested fractions are
met by **frame count** (or by
labelled-person count when a label set is given), not by group count; both are reported.

The assignment is deterministic for a seed: a largest-first greedy pass plus ``trials - 1``
seeded random orders, each improved by local search (move one group, swap two groups), and the
lowest-cost result wins (ties go to the earliest trial). The cost is the absolute deviation of
each part's weight from its target, plus, for ``stratify`` columns, the same deviation per
stratum value (so each view/condition is spread over the parts in the same proportions).

The result is saved as ``<root>/splits/<name>.json`` (see :meth:`Split.to_dict`): member lists,
counts, parameters, an input fingerprint, the lineage (``inputs.lineage``: the frame fingerprint
of each recording and the label set's row fingerprint, see :mod:`gaitdata.lineage`) and a content
hash. Nothing time-dependent is written, so rerunning with the same inputs rewrites the file byte
for byte. A split weighted by a stale label set (its frames changed since it was labelled) is
refused.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.labels import label_set_fingerprint
from gaitdata.lineage import option, root_frame_fingerprints, split_lineage
from gaitdata.lock import writes_root
from gaitdata.staleness import require_fresh_inputs
from splits.audit import audit_split
from splits.record import Split, check_split_name, content_hash, inputs_fingerprint, save_split, video_table

DEFAULT_TRIALS = 16
_UNITS = ("subject", "video")
_NULL = "<none>"


def _as_root(root: DatasetRoot | str | os.PathLike) -> DatasetRoot:
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    r.meta()  # a clear error when this is not a dataset root
    return r


# ------------------------------------------------------------------------------------------------
# inputs: groups and their weights
# ------------------------------------------------------------------------------------------------
def _resolve_unit(videos: pd.DataFrame, by: str | None, root: DatasetRoot) -> str:
    known = bool(videos["subject"].notna().all())
    if by is None:
        return "subject" if known else "video"
    if by not in _UNITS:
        raise GaitdataError(f"--by must be one of {', '.join(_UNITS)}, not {by!r}")
    if by == "subject" and not known:
        missing = videos.loc[videos["subject"].isna(), "video_id"].tolist()
        raise GaitdataError(
            f"cannot split by subject: {len(missing)} recording(s) of {root.videos_path} have no subject "
            f"(e.g. {', '.join(missing[:3])}). Re-extract with --id-pattern or a metadata CSV, or use --by video."
        )
    return by


def _check_fractions(
    fractions: Sequence[float], names: Sequence[str] | None
) -> tuple[np.ndarray, tuple[str, ...]]:
    try:
        f = np.asarray([float(x) for x in fractions], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GaitdataError(f"fractions must be numbers, got {fractions!r}") from exc
    if f.ndim != 1 or len(f) < 2:
        raise GaitdataError(f"give at least two fractions (e.g. 0.7,0.15,0.15), got {list(fractions)}")
    if (f < 0).any() or not np.isfinite(f).all():
        raise GaitdataError(f"fractions must be non-negative, got {list(fractions)}")
    if abs(f.sum() - 1.0) > 1e-6:
        raise GaitdataError(f"fractions must sum to 1, got {list(fractions)} (sum {f.sum():.6g})")
    if names is None:
        names = {2: ("train", "test"), 3: ("train", "val", "test")}.get(len(f))
        if names is None:
            names = tuple(f"part{i}" for i in range(len(f)))
    names = tuple(names)
    if len(names) != len(f) or len(set(names)) != len(names):
        raise GaitdataError(
            f"need {len(f)} distinct part names for fractions {list(fractions)}, got {list(names)}"
        )
    for n in names:
        check_split_name(n)
    return f, names


# ------------------------------------------------------------------------------------------------
# assignment
# ------------------------------------------------------------------------------------------------
def _cost_rows(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.abs(a - t).sum(axis=-1)


def _local_search(
    assign: np.ndarray, m: np.ndarray, t: np.ndarray, f: np.ndarray, order: np.ndarray, pos: np.ndarray
) -> np.ndarray:
    """Improve ``assign`` by single moves and pairwise swaps until nothing lowers the cost.
    A part with a positive fraction never loses its last group of positive weight (``pos``)."""
    s_count = len(t)
    a = np.zeros_like(t)
    np.add.at(a, assign, m)
    counts = np.bincount(assign[pos], minlength=s_count)
    g_count = len(assign)
    swaps = g_count <= 3000
    for _ in range(200):  # passes; each strictly lowers the cost, so this terminates far earlier
        improved = False
        for g in order:
            src = assign[g]
            if pos[g] and counts[src] <= 1 and f[src] > 0:
                continue
            base = _cost_rows(a[src], t[src]) + _cost_rows(a, t)
            new_src = _cost_rows(a[src] - m[g], t[src])
            delta = new_src + _cost_rows(a + m[g], t) - base
            delta[src] = 0.0
            dst = int(np.argmin(delta))
            if delta[dst] < -1e-9:
                a[src] -= m[g]
                a[dst] += m[g]
                counts[src] -= pos[g]
                counts[dst] += pos[g]
                assign[g] = dst
                improved = True
        if swaps:
            for g in order:
                src = assign[g]
                other = assign != src
                if not other.any():
                    continue
                idx = np.nonzero(other)[0]
                d = m[idx] - m[g]  # what the source part gains
                dst = assign[idx]
                before = _cost_rows(a[src], t[src]) + _cost_rows(a[dst], t[dst])
                after = _cost_rows(a[src] + d, t[src]) + _cost_rows(a[dst] - d, t[dst])
                delta = after - before
                # a swap of a positive-weight group with a zero-weight one must not empty a part
                empties = (pos[g] & ~pos[idx] & (counts[src] <= 1) & (f[src] > 0)) | (
                    ~pos[g] & pos[idx] & (counts[dst] <= 1) & (f[dst] > 0)
                )
                delta[empties] = 0.0
                j = int(np.argmin(delta))
                if delta[j] < -1e-9:
                    h = idx[j]
                    a[src] += d[j]
                    a[dst[j]] -= d[j]
                    counts[src] += int(pos[h]) - int(pos[g])
                    counts[dst[j]] += int(pos[g]) - int(pos[h])
                    assign[g], assign[h] = assign[h], src
                    improved = True
        if not improved:
            break
    return assign


def _greedy(order: np.ndarray, m: np.ndarray, t: np.ndarray, f: np.ndarray, pos: np.ndarray) -> np.ndarray:
    s_count = len(t)
    a = np.zeros_like(t)
    assign = np.full(len(m), -1, dtype=np.int64)
    counts = np.zeros(s_count, dtype=np.int64)
    for g in order:
        delta = _cost_rows(a + m[g], t) - _cost_rows(a, t)
        # prefer parts that are still empty, then the largest relative deficit
        deficit = (t[:, 0] - a[:, 0]) / np.maximum(t[:, 0], 1e-12)
        empty = (counts == 0) & (f > 0) & bool(pos[g])
        key = np.lexsort((np.arange(s_count), -deficit, delta, ~empty))
        s = int(key[0])
        assign[g] = s
        a[s] += m[g]
        counts[s] += int(pos[g])
    return assign


def _total_cost(assign: np.ndarray, m: np.ndarray, t: np.ndarray) -> float:
    a = np.zeros_like(t)
    np.add.at(a, assign, m)
    return float(_cost_rows(a, t).sum())


def assign_groups(
    weights: np.ndarray,
    strata: np.ndarray | None,
    fractions: np.ndarray,
    seed: int,
    trials: int = DEFAULT_TRIALS,
) -> np.ndarray:
    """Assign groups to splits. ``weights``: (G,), ``strata``: (G, K) weight of each group per stratum
    value (or None). Returns (G,) part indices; every part with a positive fraction gets a group
    of positive weight (given enough of them)."""
    w = np.asarray(weights, dtype=np.float64)
    cols = [w[:, None]] if strata is None else [w[:, None], np.asarray(strata, dtype=np.float64)]
    m = np.concatenate(cols, axis=1)
    total = m.sum(axis=0)
    scale = np.where(total > 0, 1.0 / np.maximum(total, 1e-12), 0.0)
    scale[1:] *= 1.0 / max(m.shape[1] - 1, 1)  # strata together weigh as much as the total
    m = m * scale
    t = fractions[:, None] * (total * scale)[None, :]
    g_count = len(w)
    pos = w > 0
    rng = np.random.default_rng(seed)
    best_cost, best = np.inf, np.zeros(g_count, dtype=np.int64)
    for trial in range(max(1, trials)):
        # largest-first (seeded tie order), then seeded random orders
        perm = rng.permutation(g_count)
        order = perm[np.argsort(-w[perm], kind="stable")] if trial == 0 else perm
        assign = _greedy(order, m, t, fractions, pos)
        assign = _local_search(assign, m, t, fractions, order, pos)
        cost = round(_total_cost(assign, m, t), 12)
        if cost < best_cost:
            best_cost, best = cost, assign.copy()
    return best


# ------------------------------------------------------------------------------------------------
# make_split
# ------------------------------------------------------------------------------------------------
def _split_command(params: dict[str, Any], part_names: tuple[str, ...], name: str, kind: str) -> list[str]:
    """The ``gaitdata split`` command line that makes this split again."""
    cmd = ["gaitdata", "split", "{root}", "--name", name, "--by", params["by"], "--seed", str(params["seed"])]
    if kind == "kfold":
        option(cmd, "--folds", params["folds"])
    else:
        cmd += ["--fractions", ",".join(f"{x:g}" for x in params["fractions"]), "--names", ",".join(part_names)]
    option(cmd, "--stratify", ",".join(params["stratify"]), "")
    option(cmd, "--labels", params["labels"])
    option(cmd, "--trials", params["trials"], DEFAULT_TRIALS)
    return cmd


def _lineage(
    root: DatasetRoot, videos: pd.DataFrame, params: dict[str, Any], part_names: tuple[str, ...], name: str, kind: str
) -> dict[str, Any]:
    labels = params["labels"]
    frames = root_frame_fingerprints(root, videos["video_id"].astype(str).tolist())
    fp = label_set_fingerprint(root, labels) if labels is not None else None
    return split_lineage(frames, labels, fp, _split_command(params, part_names, name, kind))


def build_split(
    root: DatasetRoot | str | os.PathLike,
    by: str | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    stratify: Sequence[str] = (),
    name: str = "default",
    folds: int | None = None,
    labels: str | None = None,
    names: Sequence[str] | None = None,
    trials: int = DEFAULT_TRIALS,
) -> Split:
    """Compute a split (nothing is written). See :func:`make_split`."""
    r = _as_root(root)
    check_split_name(name)
    if labels is not None:
        require_fresh_inputs(r, "split", labels=[labels])
    if isinstance(stratify, str):
        stratify = [s for s in stratify.split(",") if s]
    stratify = tuple(stratify)
    if folds is not None:
        if int(folds) < 2:
            raise GaitdataError(f"--folds must be at least 2, got {folds}")
        folds = int(folds)
        f = np.full(folds, 1.0 / folds)
        part_names = tuple(f"fold{i}" for i in range(folds))
        kind = "kfold"
    else:
        f, part_names = _check_fractions(fractions, names)
        kind = "holdout"
    videos = video_table(r, labels)
    unit = _resolve_unit(videos, by, r)
    allowed = ("subject", "session", "view", "condition", "kind")
    for col in stratify:
        if col not in allowed:
            raise GaitdataError(
                f"--stratify: {col!r} is not a recording column; choose from {', '.join(allowed)}"
            )
        if col == unit:
            raise GaitdataError(f"--stratify {col}: cannot stratify by the split unit itself")
    weight_col = "labelled_persons" if labels is not None else "frames"
    if videos[weight_col].sum() == 0:
        what = f"labelled persons in label set {labels!r}" if labels else "written frames"
        raise GaitdataError(f"{r.path}: no {what} to split; label or extract first")

    videos["group"] = videos["subject"] if unit == "subject" else videos["video_id"]
    groups = sorted(videos["group"].astype(str).unique().tolist())
    gidx = {g: i for i, g in enumerate(groups)}
    vg = videos["group"].astype(str).map(gidx).to_numpy()
    gw = np.bincount(vg, weights=videos[weight_col].to_numpy(dtype=np.float64), minlength=len(groups))
    n_needed = int((f > 0).sum())
    weighted = [g for g, x in zip(groups, gw, strict=True) if x > 0]
    if len(weighted) < n_needed:
        what = "labelled persons" if labels is not None else "written frames"
        raise GaitdataError(
            f"only {len(weighted)} {unit}(s) with {what} ({', '.join(weighted)}) for {n_needed} non-empty "
            f"parts; add recordings, use fewer parts/folds{' or --by video' if unit == 'subject' else ''}"
        )
    strata_m = None
    strata_keys: list[str] = []
    if stratify:
        key = videos[list(stratify)].astype(object).where(videos[list(stratify)].notna(), _NULL)
        skey = key.astype(str).agg("|".join, axis=1)
        strata_keys = sorted(skey.unique().tolist())
        kidx = skey.map({k: i for i, k in enumerate(strata_keys)}).to_numpy()
        strata_m = np.zeros((len(groups), len(strata_keys)))
        np.add.at(strata_m, (vg, kidx), videos[weight_col].to_numpy(dtype=np.float64))
        videos["stratum"] = skey
    assign = assign_groups(gw, strata_m, f, seed=seed, trials=trials)
    videos["part"] = [part_names[assign[g]] for g in vg]

    members: dict[str, dict[str, tuple[str, ...]]] = {}
    counts: dict[str, dict[str, Any]] = {}
    total_w = float(videos[weight_col].sum())
    for i, s in enumerate(part_names):
        sub = videos[videos["part"] == s]
        subj = tuple(sorted(sub["subject"].dropna().astype(str).unique().tolist()))
        members[s] = {"subjects": subj, "videos": tuple(sorted(sub["video_id"].astype(str).tolist()))}
        n_groups = int((assign == i).sum())
        c: dict[str, Any] = {
            "target_fraction": round(float(f[i]), 6),
            "weight_fraction": round(float(sub[weight_col].sum()) / total_w, 6) if total_w else 0.0,
            "group_fraction": round(n_groups / len(groups), 6),
            "groups": n_groups,
            "subjects": len(subj),
            "videos": len(sub),
            "frames": int(sub["frames"].sum()),
        }
        if labels is not None:
            c["labelled_frames"] = int(sub["labelled_frames"].sum())
            c["labelled_persons"] = int(sub["labelled_persons"].sum())
        if stratify:
            c["strata"] = {k: int(sub.loc[sub["stratum"] == k, weight_col].sum()) for k in strata_keys}
        counts[s] = c
    params = {
        "by": unit,
        "fractions": [round(float(x), 6) for x in f],
        "seed": int(seed),
        "stratify": list(stratify),
        "labels": labels,
        "folds": folds,
        "trials": int(trials),
    }
    inputs = {
        "videos": len(videos),
        "groups": len(groups),
        "fingerprint": inputs_fingerprint(videos, labels),
        "lineage": _lineage(r, videos, params, part_names, name, kind),
    }
    sp = Split(
        name=name, kind=kind, unit=unit, weight=weight_col, part_names=part_names, members=members,
        params=params, counts=counts, inputs=inputs, content_hash="",
    )  # fmt: skip
    return replace(sp, content_hash=content_hash(sp.content()))


@writes_root("split")
def make_split(
    root: DatasetRoot | str | os.PathLike,
    by: str | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    stratify: Sequence[str] = (),
    name: str = "default",
    folds: int | None = None,
    labels: str | None = None,
    *,
    names: Sequence[str] | None = None,
    trials: int = DEFAULT_TRIALS,
    near_duplicates: bool = True,
    frames_per_video: int = 8,
    strict: bool = False,
    region: str = "auto",
    progress: bool = False,
) -> Split:
    """Split the ok recordings of ``root`` by group, audit the result, and save ``splits/<name>.json``.

    ``by``: ``"subject"`` | ``"video"`` | None (subject when every recording names one, else video).
    ``fractions`` are met by frame count (by labelled-person count with ``labels``). ``folds=K``
    makes a k-fold split (``fold0..``) instead. ``stratify`` balances recording columns (e.g.
    ``("view", "condition")``) over the parts. The audit runs before saving: a video or subject in
    two parts (or, with ``strict``, a near-duplicate frame across parts) raises
    :class:`splits.audit.LeakageError` and nothing is written. ``near_duplicates``,
    ``frames_per_video``, ``region`` and ``strict`` configure the audit (see :mod:`splits.audit`).
    """
    r = _as_root(root)
    sp = build_split(r, by, fractions, seed, stratify, name, folds, labels, names=names, trials=trials)
    report = audit_split(
        r, sp, labels=labels, near_duplicates=near_duplicates, frames_per_video=frames_per_video,
        strict=strict, region=region, progress=progress,
    )  # fmt: skip
    report.raise_for_leakage()
    sp = replace(sp, audit_summary=report.summary())
    return replace(sp, path=save_split(r, sp))
