"""Leakage audit of a split, and statistics per part (train/val/test, or fold).

Checks, in order:

1. **Membership** (hard error): a video listed in two parts; a subject whose videos sit in two
   parts (an error for subject-unit splits; for a split made ``--by video`` on purpose it is a
   warning, since that unit shares identities by design); videos listed that are not in the
   dataset root (warning) and ok recordings missing from every part (warning).
2. **Near-duplicate frames across parts** by perceptual hash: ``imagehash.phash`` (64-bit DCT
   hash of the grey image) of ``frames_per_video`` evenly spaced written frames per video (or every
   frame with ``all_frames``). Two frames in different parts whose hashes differ in at most
   ``threshold`` bits (default :data:`PHASH_THRESHOLD` = 4 of 64) are listed with their paths.
   Unrelated images differ by about 32 bits; a copied or re-encoded frame by 0-2. ``region``:
   ``"frame"`` hashes the whole frame; ``"person"`` hashes the labelled person's box (the gait
   subject, else the highest-scoring person; 10 % margin; the whole frame when the frame has no
   person; boxes from the statistics' label set, else the root's first label set); ``"auto"``
   (default) uses ``"person"`` when the root has a label set. Whole-frame hashes
   of a static camera are dominated by the background, so recordings of different people in one
   room match; person boxes compare the people. Near-duplicates are warnings unless ``strict``
   (then errors). Large searches use multi-index hashing (see :func:`cross_pairs`); counting
   stops beyond :data:`MAX_COUNTED` pairs and the report lists the closest :data:`MAX_LISTED`.
3. **Statistics** per part: subjects, videos, frames, labelled frames/persons, mean person score,
   mean joint confidence and QA-flag counts (from a label set).

The report's records keep the split file's keys (a statistics row names its part under ``split``,
a near-duplicate pair under ``split_a``/``split_b``): they are stored in the split file.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot, written_frames
from gaitdata.errors import GaitdataError, require
from gaitdata.lock import tables_lock
from gaitdata.progress import progress_bar
from splits.record import Split, inputs_fingerprint, load_split, video_table

PHASH_THRESHOLD = 4
REGIONS = ("auto", "frame", "person")
MAX_LISTED = 200  # near-duplicate pairs kept in the report
MAX_COUNTED = 1_000_000  # the search stops beyond this many pairs ("more than 1000000")


class LeakageError(GaitdataError):
    """A split shares a video or subject between its parts (or near-duplicate frames, when strict)."""

    def __init__(self, message: str, report: AuditReport):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class NearDuplicate:
    distance: int
    part_a: str
    path_a: str
    part_b: str
    path_b: str

    def to_dict(self) -> dict[str, Any]:
        """As stored in the split file."""
        return {"distance": self.distance, "split_a": self.part_a, "path_a": self.path_a, "split_b": self.part_b,
                "path_b": self.path_b}  # fmt: skip


@dataclass(frozen=True)
class AuditReport:
    name: str
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    video_overlap: dict[str, tuple[str, ...]] = field(default_factory=dict)
    subject_overlap: dict[str, tuple[str, ...]] = field(default_factory=dict)
    near_duplicates: tuple[NearDuplicate, ...] = ()
    n_near_duplicates: int = 0
    n_hashed: int = 0
    threshold: int = PHASH_THRESHOLD
    stats: tuple[dict[str, Any], ...] = ()
    labels: str | None = None
    region: str = "frame"

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_leakage(self) -> None:
        if self.errors:
            raise LeakageError(f"split {self.name!r} leaks: " + "; ".join(self.errors), self)

    def stats_frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.stats))

    def summary(self) -> dict[str, Any]:
        """Deterministic digest stored in the split file."""
        return {
            "ok": self.ok,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "near_duplicates": {
                "threshold": self.threshold,
                "region": self.region,
                "frames_hashed": self.n_hashed,
                "pairs": self.n_near_duplicates,
                "examples": [d.to_dict() for d in self.near_duplicates[:10]],
            },
            "labels": self.labels,
            "stats": [dict(s) for s in self.stats],
        }

    def to_dict(self) -> dict[str, Any]:
        d = self.summary()
        d["name"] = self.name
        d["video_overlap"] = {k: list(v) for k, v in self.video_overlap.items()}
        d["subject_overlap"] = {k: list(v) for k, v in self.subject_overlap.items()}
        d["near_duplicates"]["examples"] = [x.to_dict() for x in self.near_duplicates]
        return d


# ------------------------------------------------------------------------------------------------
# perceptual hashes
# ------------------------------------------------------------------------------------------------
def phash_file(
    path: str | os.PathLike, hash_size: int = 8, box: tuple[float, float, float, float] | None = None
) -> int:
    """64-bit perceptual hash (``imagehash.phash``) of an image file, or of the ``box`` (x, y, w, h,
    pixels) of it enlarged by 10 %, as an unsigned integer."""
    imagehash = require("imagehash", "core")
    from PIL import Image

    with Image.open(path) as im:
        w0, h0 = im.size
        if box is None:
            im.draft("L", (hash_size * 16, hash_size * 16))  # JPEG: decode at reduced scale, much faster
            h = imagehash.phash(im, hash_size=hash_size)
        else:
            x, y, bw, bh = box
            need = hash_size * 8 / max(min(bw, bh), 1.0)  # keep the crop >= 8x the hash size
            im.draft("L", (max(1, int(w0 * need)), max(1, int(h0 * need))))
            sx, sy = im.size[0] / w0, im.size[1] / h0
            mx, my = 0.1 * bw, 0.1 * bh
            crop = (
                max(0, int((x - mx) * sx)), max(0, int((y - my) * sy)),
                min(im.size[0], int(np.ceil((x + bw + mx) * sx))), min(im.size[1], int(np.ceil((y + bh + my) * sy))),
            )  # fmt: skip
            if crop[2] - crop[0] < 2 or crop[3] - crop[1] < 2:
                raise ValueError(f"box {box} is outside the {w0}x{h0} image")
            h = imagehash.phash(im.crop(crop), hash_size=hash_size)
    bits = np.packbits(np.asarray(h.hash, dtype=bool).ravel())
    return int.from_bytes(bits.tobytes(), "big")


def person_boxes(root: DatasetRoot, labels: str) -> dict[tuple[str, int], tuple[float, float, float, float]]:
    """Per labelled frame the box of its gait subject (else its highest-scoring person)."""
    from gaitdata.labels import read_labels

    lab = read_labels(root, labels)
    lab = lab[lab["has_person"].fillna(False).astype(bool)]
    lab = lab.dropna(subset=["bbox_x", "bbox_y", "bbox_w", "bbox_h"])
    lab = lab[(lab["bbox_w"] > 0) & (lab["bbox_h"] > 0)]
    order = lab.assign(
        _s=lab["is_subject"].fillna(False).astype(bool).astype(int), _c=lab["score"].fillna(-1.0)
    ).sort_values(
        ["video_id", "frame_index", "_s", "_c", "person_index"], ascending=[True, True, False, False, True]
    )
    best = order.drop_duplicates(["video_id", "frame_index"])
    return {
        (str(v), int(f)): (float(x), float(y), float(w), float(h))
        for v, f, x, y, w, h in zip(
            best["video_id"],
            best["frame_index"],
            best["bbox_x"],
            best["bbox_y"],
            best["bbox_w"],
            best["bbox_h"],
            strict=True,
        )
    }


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    b = x.view(np.uint8).reshape(*x.shape, 8)
    return np.unpackbits(b, axis=-1).sum(axis=-1)


def _exhaustive(
    hashes: np.ndarray, groups: np.ndarray, threshold: int, block: int, budget: int
) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """All matching pairs by blocked comparison (memory: block x block); stops once over ``budget``."""
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    found = 0
    n = len(hashes)
    for s in range(0, n, block):
        a = hashes[s : s + block]
        ga = groups[s : s + block]
        for t in range(s, n, block):
            d = _popcount(a[:, None] ^ hashes[t : t + block][None, :])
            mask = (d <= threshold) & (ga[:, None] != groups[t : t + block][None, :])
            if t == s:
                mask &= np.triu(np.ones_like(mask, dtype=bool), k=1)
            ii, jj = np.nonzero(mask)
            out_i.append(ii + s)
            out_j.append(jj + t)
            found += len(ii)
            if found > budget:
                return out_i, out_j, found
    return out_i, out_j, found


def cross_pairs(
    hashes: np.ndarray,
    groups: np.ndarray,
    threshold: int,
    block: int = 2048,
    brute_force_max: int = 4096,
    max_pairs: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j), i < j, with ``groups[i] != groups[j]`` and Hamming distance <= ``threshold``,
    sorted by (i, j). Exhaustive in blocks up to ``brute_force_max`` hashes; above, multi-index
    hashing: the 64 bits are cut into ``threshold + 1`` bands, and two hashes within ``threshold``
    bits agree exactly on at least one band (pigeonhole), so only hashes sharing a band value are
    compared. Same result, far fewer comparisons. With ``max_pairs``, the search stops once more
    than that many pairs are found (the result then holds more than ``max_pairs`` pairs, not all)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    groups = np.asarray(groups)
    n = len(hashes)
    budget = max_pairs if max_pairs is not None else n * n
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    if n <= brute_force_max:
        out_i, out_j, _ = _exhaustive(hashes, groups, threshold, block, budget)
    else:
        bands = threshold + 1
        shift = 0
        found = 0
        for b in range(bands):
            width = 64 // bands + (1 if b < 64 % bands else 0)
            key = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
            shift += width
            order = np.argsort(key, kind="stable")
            ks = key[order]
            starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
            ends = np.r_[starts[1:], n]
            multi = ends - starts > 1
            for s, e in zip(starts[multi].tolist(), ends[multi].tolist(), strict=True):
                idx = np.sort(order[s:e])
                ri, rj, k = _exhaustive(hashes[idx], groups[idx], threshold, block, budget - found)
                out_i.extend(idx[x] for x in ri)
                out_j.extend(idx[x] for x in rj)
                found += k
                if found > budget:
                    break
            if found > budget:
                break
    if not out_i:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    flat = np.unique(np.concatenate(out_i).astype(np.int64) * n + np.concatenate(out_j).astype(np.int64))
    i, j = flat // n, flat % n
    return i, j, _popcount(hashes[i] ^ hashes[j]).astype(np.int64)


def _sample(idx: np.ndarray, k: int) -> np.ndarray:
    if k <= 0 or len(idx) <= k:
        return idx
    pos = np.unique(np.round(np.linspace(0, len(idx) - 1, k)).astype(int))
    return idx[pos]


def _near_duplicates(
    root: DatasetRoot, v2s: dict[str, str], frames: pd.DataFrame, threshold: int, frames_per_video: int,
    all_frames: bool, progress: bool, boxes: dict[tuple[str, int], tuple[float, float, float, float]] | None,
) -> tuple[list[NearDuplicate], int, int, list[str]]:  # fmt: skip
    ok = written_frames(frames)
    ok = ok[ok["rgb_path"].notna() & ok["video_id"].isin(list(v2s))]
    ok = ok.sort_values(["video_id", "frame_index"], kind="stable")
    items: list[tuple[str, str, int]] = []  # (video_id, rgb path, frame index)
    for vid, grp in ok.groupby("video_id", sort=True):
        rels = grp["rgb_path"].astype(str).to_numpy()
        fidx = grp["frame_index"].astype(int).to_numpy()
        pick = np.arange(len(rels)) if all_frames else _sample(np.arange(len(rels)), frames_per_video)
        items.extend((str(vid), str(rels[i]), int(fidx[i])) for i in pick)
    hashes: list[int] = []
    kept: list[tuple[str, str]] = []
    unreadable: list[str] = []
    for vid, rel, fi in progress_bar(items, desc="perceptual hashes", unit="frame", enabled=progress,
                                     transient=True):  # fmt: skip
        box = boxes.get((vid, fi)) if boxes is not None else None
        try:
            hashes.append(phash_file(root.path / rel, box=box))
            kept.append((vid, rel))
        except (OSError, ValueError):
            unreadable.append(rel)
    part_idx = {s: i for i, s in enumerate(sorted(set(v2s.values())))}
    groups = np.array([part_idx[v2s[vid]] for vid, _ in kept], dtype=np.int64)
    ii, jj, dd = cross_pairs(np.array(hashes, dtype=np.uint64), groups, threshold, max_pairs=MAX_COUNTED)
    top = np.lexsort((jj, ii, dd))[:MAX_LISTED]  # closest first, then in (video, frame) order
    pairs = []
    for i, j, d in zip(ii[top].tolist(), jj[top].tolist(), dd[top].tolist(), strict=True):
        (va, a), (vb, b) = kept[i], kept[j]
        sa, sb = v2s[va], v2s[vb]
        if (sa, a) > (sb, b):
            (sa, a), (sb, b) = (sb, b), (sa, a)
        pairs.append(NearDuplicate(int(d), sa, a, sb, b))
    pairs.sort(key=lambda p: (p.distance, p.part_a, p.path_a, p.part_b, p.path_b))
    return pairs, len(kept), len(ii), unreadable


# ------------------------------------------------------------------------------------------------
# statistics
# ------------------------------------------------------------------------------------------------
def split_stats(
    root: DatasetRoot, split: Split, labels: str | None, videos: pd.DataFrame, frames: pd.DataFrame
) -> list[dict[str, Any]]:
    n_frames = written_frames(frames).groupby("video_id").size()
    lab = None
    if labels is not None:
        from gaitdata.labels import read_labels

        lab = read_labels(root, labels)
    subj_of = dict(zip(videos["video_id"].astype(str), videos["subject"], strict=True))
    rows = []
    for s in split.part_names:
        vids = split.videos(s)
        subjects = {subj_of.get(v) for v in vids} - {None}
        subjects = {x for x in subjects if not pd.isna(x)}
        row: dict[str, Any] = {
            "split": s,
            "subjects": len(subjects),
            "videos": len(vids),
            "frames": int(sum(int(n_frames.get(v, 0)) for v in vids)),
        }
        if lab is not None:
            sub = lab[lab["video_id"].isin(vids)]
            persons = sub[sub["has_person"].fillna(False).astype(bool)]
            row["labelled_frames"] = int(len(sub.drop_duplicates(["video_id", "frame_index"])))
            row["labelled_persons"] = int(len(persons))
            row["mean_score"] = round(float(persons["score"].mean()), 4) if len(persons) else None
            conf = [
                np.asarray(k, dtype=np.float64)[2::3]
                for k in persons["keypoints"]
                if k is not None and len(k)
            ]
            row["mean_joint_confidence"] = round(float(np.concatenate(conf).mean()), 4) if conf else None
            flags: Counter[str] = Counter()
            for fl in sub["qa_flags"]:
                if fl is not None:
                    flags.update(str(x) for x in fl)
            row["qa_flags"] = dict(sorted(flags.items()))
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------
# audit
# ------------------------------------------------------------------------------------------------
def audit_split(
    root: DatasetRoot | str | os.PathLike,
    split: Split,
    labels: str | None = None,
    near_duplicates: bool = True,
    threshold: int = PHASH_THRESHOLD,
    frames_per_video: int = 8,
    all_frames: bool = False,
    strict: bool = False,
    progress: bool = False,
    region: str = "auto",
) -> AuditReport:
    """Audit an in-memory :class:`Split` (see the module docstring). Never raises for leakage;
    call :meth:`AuditReport.raise_for_leakage`."""
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    r.meta()
    if not 0 <= int(threshold) <= 64:
        raise GaitdataError(
            f"--threshold is a Hamming distance between 64-bit hashes: 0..64, not {threshold}"
        )
    errors: list[str] = []
    warnings: list[str] = []
    if not split.hash_ok:
        warnings.append(f"{split.path}: content hash does not match: the file was edited after it was made")

    seen: dict[str, list[str]] = {}
    for s in split.part_names:
        for v in split.members[s]["videos"]:
            seen.setdefault(v, []).append(s)
    video_overlap = {v: tuple(ss) for v, ss in sorted(seen.items()) if len(ss) > 1}
    if video_overlap:
        ex = ", ".join(f"{v} in {'+'.join(ss)}" for v, ss in list(video_overlap.items())[:5])
        errors.append(f"{len(video_overlap)} video(s) in more than one part ({ex})")

    with tables_lock(r.path, exclusive=False):  # both tables of one moment, even during an extract
        videos = r.read_videos()
        frames = r.read_frames()
    subj_of = {
        str(v): (None if pd.isna(s) else str(s))
        for v, s in zip(videos["video_id"], videos["subject"], strict=True)
    }
    subj_parts: dict[str, set[str]] = {}
    for s in split.part_names:
        for v in split.members[s]["videos"]:
            subj = subj_of.get(v)
            if subj is not None:
                subj_parts.setdefault(subj, set()).add(s)
        for subj in split.members[s]["subjects"]:
            subj_parts.setdefault(subj, set()).add(s)
    order = {s: i for i, s in enumerate(split.part_names)}
    subject_overlap = {
        k: tuple(sorted(ss, key=order.__getitem__)) for k, ss in sorted(subj_parts.items()) if len(ss) > 1
    }
    if subject_overlap:
        ex = ", ".join(f"{k} in {'+'.join(ss)}" for k, ss in list(subject_overlap.items())[:5])
        msg = f"{len(subject_overlap)} subject(s) in more than one part ({ex})"
        if split.unit == "video":
            warnings.append(msg + ": identities are shared (the split was made --by video)")
        else:
            errors.append(msg)

    fp = split.inputs.get("fingerprint")
    if fp:
        try:
            now = inputs_fingerprint(video_table(r, split.params.get("labels")), split.params.get("labels"))
        except GaitdataError:
            now = None
        if now != fp:
            warnings.append(
                "the dataset root changed since the split was made (recordings, metadata, frame or label "
                f"counts); re-run gaitdata split {r.path} --name {split.name} to include the changes"
            )
    known = set(videos["video_id"].astype(str))
    unknown = sorted(set(seen) - known)
    if unknown:
        warnings.append(
            f"{len(unknown)} video(s) of the split are not in the dataset root (e.g. {', '.join(unknown[:3])})"
        )
    ok_videos = set(videos.loc[videos["status"] == "ok", "video_id"].astype(str))
    missing = sorted(ok_videos - set(seen))
    if missing:
        warnings.append(
            f"{len(missing)} ok recording(s) are in no part (e.g. {', '.join(missing[:3])}); "
            f"re-run gaitdata split to include them"
        )

    if labels is None:
        labels = split.params.get("labels")
        if labels is None and len(r.label_sets()) == 1:
            labels = r.label_sets()[0]
    if region not in REGIONS:
        raise GaitdataError(f"region must be one of {', '.join(REGIONS)}, not {region!r}")
    box_labels = labels if labels is not None else next(iter(r.label_sets()), None)
    if region == "person" and box_labels is None:
        raise GaitdataError(f"region 'person' needs a label set for the person boxes; {r.path} has none")
    region = ("person" if box_labels is not None else "frame") if region == "auto" else region
    pairs: list[NearDuplicate] = []
    n_pairs = n_hashed = 0
    if near_duplicates and len(split.part_names) > 1:
        v2s = {v: ss[0] for v, ss in seen.items() if v in known}
        boxes = person_boxes(r, box_labels) if region == "person" and box_labels is not None else None
        pairs, n_hashed, n_pairs, unreadable = _near_duplicates(
            r, v2s, frames, int(threshold), frames_per_video, all_frames, progress, boxes
        )
        if unreadable:
            warnings.append(
                f"{len(unreadable)} frame(s) could not be read for hashing (e.g. {unreadable[0]})"
            )
        if n_pairs:
            ex = pairs[0]
            count = f"more than {MAX_COUNTED}" if n_pairs > MAX_COUNTED else str(n_pairs)
            msg = (
                f"{count} near-duplicate frame pair(s) across parts (Hamming <= {threshold}), "
                f"e.g. {ex.path_a} ({ex.part_a}) ~ {ex.path_b} ({ex.part_b}), distance {ex.distance}"
            )
            (errors if strict else warnings).append(msg)

    stats = split_stats(r, split, labels, videos, frames)
    return AuditReport(
        name=split.name, errors=tuple(errors), warnings=tuple(warnings), video_overlap=video_overlap,
        subject_overlap=subject_overlap, near_duplicates=tuple(pairs[:MAX_LISTED]), n_near_duplicates=n_pairs,
        n_hashed=n_hashed, threshold=int(threshold), stats=tuple(stats), labels=labels, region=region,
    )  # fmt: skip


def audit(
    root: DatasetRoot | str | os.PathLike,
    name: str = "default",
    labels: str | None = None,
    *,
    near_duplicates: bool = True,
    threshold: int = PHASH_THRESHOLD,
    frames_per_video: int = 8,
    all_frames: bool = False,
    strict: bool = False,
    raise_on_leak: bool = True,
    progress: bool = False,
    region: str = "auto",
) -> AuditReport:
    """Audit the saved split ``<root>/splits/<name>.json``.

    Raises :class:`LeakageError` (a :class:`GaitdataError`, carrying ``.report``) when a video or
    subject is in two parts, unless ``raise_on_leak=False``. ``labels`` names the label set for
    the statistics (default: the split's, or the root's only label set).
    """
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    r.meta()
    sp = load_split(r, name)
    report = audit_split(
        r, sp, labels=labels, near_duplicates=near_duplicates, threshold=threshold,
        frames_per_video=frames_per_video, all_frames=all_frames, strict=strict, progress=progress, region=region,
    )  # fmt: skip
    if raise_on_leak:
        report.raise_for_leakage()
    return report


def print_report(report: AuditReport, console: Any = None, max_pairs: int = 10, warnings_to: Any = None) -> None:
    """Print the statistics table, the QA flags under it, some near-duplicate pairs, warnings and errors
    with rich (warnings and errors on ``warnings_to`` when given). Fits 80 columns."""
    from rich.console import Console
    from rich.table import Table

    from gaitdata.tables import key_column, make_table, num_column

    console = console or Console()
    warnings_to = warnings_to or console
    table = make_table(f"split {report.name}" + (f" (labels: {report.labels})" if report.labels else ""))
    cols = ["split", "subjects", "videos", "frames"]  # "split": the part (the key stored in the split file)
    if report.stats and "labelled_persons" in report.stats[0]:
        cols += ["labelled_frames", "labelled_persons", "mean_score", "mean_joint_confidence"]
    heads = {"split": "part", "labelled_frames": "labelled\nframes", "labelled_persons": "persons",
             "mean_score": "score", "mean_joint_confidence": "joint\nconf."}  # fmt: skip
    for c in cols:
        (key_column if c == "split" else num_column)(table, heads.get(c, c))
    for row in report.stats:
        cells = []
        for c in cols:
            v = row.get(c)
            if isinstance(v, float):
                cells.append(f"{v:.3f}")
            else:
                cells.append("-" if v is None else str(v))
        table.add_row(*cells)
    console.print(table)
    if report.labels is None:
        console.print("labelled persons, confidence and QA flags: name a label set (--labels SET)")
    elif any("qa_flags" in row for row in report.stats):
        flags = Table.grid(padding=(0, 1))
        flags.add_column(no_wrap=True)
        flags.add_column(overflow="fold", ratio=1)
        for row in report.stats:
            flags.add_row(f"  {row.get('split')}:", _flag_summary(row.get("qa_flags") or {}))
        console.print("QA flags (label rows flagged; per joint where the flag names one):")
        console.print(flags)
    if report.n_hashed:
        console.print(
            f"perceptual hashes ({report.region}): {report.n_hashed} frames, {report.n_near_duplicates} near-duplicate pair(s) "
            f"across parts (Hamming <= {report.threshold})"
        )
    for d in report.near_duplicates[:max_pairs]:
        console.print(f"  [yellow]~{d.distance}[/] {d.part_a}: {d.path_a}", highlight=False, soft_wrap=True)
        console.print(f"     {' ' * len(str(d.distance))}{d.part_b}: {d.path_b}", highlight=False, soft_wrap=True)
    for w in report.warnings:
        warnings_to.print(f"[yellow]warning:[/] {w}", highlight=False)
    for e in report.errors:
        warnings_to.print(f"[red]error:[/] {e}", highlight=False)


def _flag_summary(flags: dict[str, int]) -> str:
    """``{"background:left_knee": 5, "jitter:nose": 2}`` -> ``"background 5 (left_knee 5); jitter 2 (nose 2)"``."""
    if not flags:
        return "none"
    groups: dict[str, dict[str, int]] = {}
    for key, n in flags.items():
        kind, _, where = str(key).partition(":")
        groups.setdefault(kind, {})[where] = groups.setdefault(kind, {}).get(where, 0) + int(n)
    parts = []
    for kind, where in sorted(groups.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])):
        detail = ", ".join(f"{w} {n}" for w, n in sorted(where.items(), key=lambda kv: (-kv[1], kv[0])) if w)
        parts.append(f"{kind} {sum(where.values())}" + (f" ({detail})" if detail else ""))
    return "; ".join(parts)
