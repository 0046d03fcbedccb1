"""COCO person-keypoints export and import of label sets.

Export writes one file per part of a split (``train.json``, ``val.json``, ``test.json``; or
``fold0.json``...; or ``all.json`` without a split) to ``<root>/exports/coco/`` for the split
named ``default`` and ``<root>/exports/coco/<split>/`` for any other split (or ``out``).

**Image root.** ``images[].file_name`` is relative to the *dataset root* (e.g.
``frames/s01_walk/rgb/000012.jpg``); ``info.image_root`` gives the dataset root relative to the
JSON file's folder, so ``Path(json).parent / info["image_root"] / file_name`` is the image.
With ``images="copy"`` or ``"link"`` (symlinks) the frames are also materialised under
``<out>/images/<file_name>`` and ``info.image_root`` is ``"images"``.

**Fields.** Standard COCO plus extra fields that COCO readers ignore:

* ``images``: ``id``, ``file_name``, ``width``, ``height``; extra ``video_id``, ``frame_index``,
  ``subject``, ``depth_file`` (16-bit depth PNG relative to the dataset root, null without depth),
  ``timestamp_ms`` (colour timestamp). Frames labelled with *no person* are exported as images
  without annotations, so evaluation knows they exist; frames whose persons were all removed by
  a filter are left out (they do contain a person).
* ``annotations``: ``id``, ``image_id``, ``category_id`` 1, ``iscrowd`` 0, ``bbox`` [x, y, w, h],
  ``area`` (box area w*h), ``keypoints`` [x, y, v] * K with COCO's x = y = 0 where v = 0,
  ``num_keypoints`` (joints with v > 0), ``score``; extra ``keypoint_scores`` (per-joint
  confidence), ``invisible_xy`` ([joint, x, y] of the v = 0 joints, so nothing is lost),
  ``person_index``, ``track_id``, ``is_subject``, ``qa_flags`` (and ``teacher``/``weights_hash``
  when they differ between rows; otherwise they are in ``info``).
* ``categories``: one ``person`` category with the keypoint names and the 1-indexed skeleton.

**Ids** are deterministic: an image's id is 1 + its rank among all written frames of the root
ordered by (video_id, frame_index), so one frame has the same id in every export of the root; an
annotation's id is 1 + the rank of its person row among all person rows of the label set ordered
by (image id, person index), so ids are unique across the parts of an export (the parts can be
merged into one file) and one person keeps its id whatever the split, parts and filters.

**Lineage.** ``info.lineage`` names the label set and the split (with their fingerprints) and the
command that makes the export again; a stale label set or split (:mod:`gaitdata.staleness`) is
refused. A part without any person to export (nothing labelled in its videos, or nothing passing
the filters) is written as a valid file without annotations, with an :class:`EmptyPartWarning`.

The JSON is streamed to a temporary file (one image or annotation per line) and renamed when
every part is complete: a failure leaves no partial file. :func:`import_coco` turns such a file
(or any COCO person-keypoints file whose images match the root's frames) back into a label set;
export -> import -> export reproduces the file byte for byte, but for the label set named in
``info.lineage``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from gaitdata._version import __version__
from gaitdata.dataset import DatasetRoot, written_frames
from gaitdata.errors import GaitdataError
from gaitdata.io import apply_umask_mode
from gaitdata.labels import (
    LABEL_COLUMNS,
    check_label_set_name,
    decode_keypoints,
    encode_keypoints,
    label_set_fingerprint,
    read_label_meta,
    read_labels,
    write_labels,
)
from gaitdata.lineage import export_lineage, option
from gaitdata.lock import writes_root
from gaitdata.progress import progress_bar
from gaitdata.schema import KeypointSchema
from gaitdata.staleness import require_fresh_inputs

COCO_FORMAT = "gaitdata-coco"
COCO_FORMAT_VERSION = 1
IMAGE_MODES = ("none", "copy", "link")
_IMPORT_KEY = "imported_from"  # label-set metadata key written by import, not exported again
_NOT_EXPORTED = (_IMPORT_KEY, "lineage", "fingerprint")  # label-set metadata left out of info.label_meta
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _as_root(root: DatasetRoot | str | os.PathLike) -> DatasetRoot:
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    r.meta()
    return r


def default_out(root: DatasetRoot, split_name: str | None) -> Path:
    base = root.exports_dir / "coco"
    return base if split_name in (None, "default") else base / split_name


def categories(schema: KeypointSchema) -> list[dict[str, Any]]:
    return [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(schema.keypoints),
            "skeleton": schema.skeleton_1based(),
        }
    ]


def image_ids(frames: pd.DataFrame) -> pd.DataFrame:
    """Written frames with their stable COCO image id (1 + rank by (video_id, frame_index))."""
    ok = written_frames(frames).sort_values(["video_id", "frame_index"], kind="stable")
    ok = ok.reset_index(drop=True)
    ok["image_id"] = np.arange(1, len(ok) + 1, dtype=np.int64)
    return ok


def _missing_files(root: DatasetRoot, rels: list[str]) -> list[str]:
    """The relative paths that are not files (one directory listing per folder, not one stat per file)."""
    listing: dict[str, set[str]] = {}
    missing = []
    for rel in rels:
        folder, _, name = rel.rpartition("/")
        if folder not in listing:
            try:
                listing[folder] = {e.name for e in os.scandir(root.path / folder) if e.is_file()}
            except OSError:
                listing[folder] = set()
        if name not in listing[folder]:
            missing.append(rel)
    return missing


def _parts(
    root: DatasetRoot, split_name: str | None, parts: Sequence[str] | None = None
) -> tuple[dict[str, list[str]], str | None]:
    """``{part: video ids}`` of the split (only ``parts`` when given) and the split's content hash."""
    if split_name is None:
        videos = root.read_videos()
        part_videos = {"all": sorted(videos.loc[videos["status"] == "ok", "video_id"].astype(str))}
        split_hash = None
    else:
        from splits import load_split

        sp = load_split(root, split_name)
        part_videos, split_hash = {s: sp.videos(s) for s in sp.part_names}, sp.content_hash
    if parts is not None:
        unknown = [p for p in parts if p not in part_videos]
        if unknown:
            raise GaitdataError(f"split {split_name!r} has no part(s) {unknown}; it has: {', '.join(part_videos)}")
        part_videos = {p: part_videos[p] for p in parts}
    return part_videos, split_hash


def _video_sizes(root: DatasetRoot, frames: pd.DataFrame) -> dict[str, tuple[int, int]]:
    videos = root.read_videos()
    sizes: dict[str, tuple[int, int]] = {}
    for v in videos.itertuples(index=False):
        if not pd.isna(v.width) and not pd.isna(v.height):
            sizes[str(v.video_id)] = (int(v.width), int(v.height))
    missing = set(frames["video_id"].astype(str)) - set(sizes)
    if missing:
        from PIL import Image

        first = frames[frames["video_id"].isin(list(missing))].drop_duplicates("video_id")
        for vid, rel in zip(first["video_id"].astype(str), first["rgb_path"].astype(str), strict=True):
            try:
                with Image.open(root.path / rel) as im:
                    sizes[vid] = im.size
            except OSError as exc:
                raise GaitdataError(
                    f"{root.videos_path}: no width/height for {vid} and {root.path / rel} is unreadable ({exc}); "
                    f"re-extract the recording"
                ) from exc
    return sizes


def _select(
    lab: pd.DataFrame, min_score: float, min_visible: int, exclude_flags: Sequence[str], subject_only: bool
) -> np.ndarray:
    """Boolean mask of person rows that pass the filters."""
    person = lab["has_person"].fillna(False).to_numpy(dtype=bool)
    keep = person.copy()
    if min_score > 0:
        keep &= lab["score"].fillna(-np.inf).to_numpy(dtype=np.float64) >= min_score
    vis = np.array([0 if v is None else int(np.count_nonzero(np.asarray(v) > 0)) for v in lab["visibility"]])
    keep &= vis >= int(min_visible)
    if exclude_flags:
        bad = set(exclude_flags)
        keep &= np.array(
            [not (fl is not None and bad.intersection(fl)) for fl in lab["qa_flags"]], dtype=bool
        )
    if subject_only:
        keep &= lab["is_subject"].fillna(False).to_numpy(dtype=bool)
    return keep


def _floats(a: np.ndarray) -> list[str]:
    """JSON text of each value of a float array (``repr``, as ``json`` writes floats; null if not finite)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    out = list(map(repr, a.tolist()))
    for i in np.nonzero(~np.isfinite(a))[0].tolist():
        out[i] = "null"
    return out


def _strs(values: Iterable[Any]) -> list[str]:
    if isinstance(values, pd.Series):
        values = values.tolist()  # one conversion; iterating an Arrow-backed Series is slow
    return [
        "null" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else _DUMPS(str(v))
        for v in values
    ]


def _float_col(df: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _annotation_lines(persons: pd.DataFrame, k: int, per_row_source: bool) -> Iterator[str]:
    """One JSON line per person row (rows without usable keypoints or box are skipped).

    Built from whole-column arrays: the per-row work is string assembly only.
    """
    kp_list = persons["keypoints"].tolist()
    vis_list = persons["visibility"].tolist()
    ok = np.array(
        [
            kp is not None and len(kp) == 3 * k and vs is not None and len(vs) == k
            for kp, vs in zip(kp_list, vis_list, strict=True)
        ],
        dtype=bool,
    )
    if not ok.all():
        persons = persons[ok]
        kp_list = [x for x, g in zip(kp_list, ok, strict=True) if g]
        vis_list = [x for x, g in zip(vis_list, ok, strict=True) if g]
    n = len(persons)
    if n == 0:
        return
    kp = np.stack([decode_keypoints(x, k) for x in kp_list])
    v = np.asarray([np.asarray(x, dtype=np.int64) for x in vis_list]).reshape(n, k)
    v = np.where(np.isfinite(kp[..., 0]) & np.isfinite(kp[..., 1]), v, 0)
    bbox = np.stack([_float_col(persons, c) for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")], axis=1)
    usable = np.ones(n, dtype=bool)
    for i in np.nonzero(~np.isfinite(bbox).all(axis=1))[0].tolist():  # no box: the visible joints' extent
        good = v[i] > 0
        if not good.any():
            usable[i] = False
            continue
        (x0, y0), (x1, y1) = kp[i, good, :2].min(axis=0), kp[i, good, :2].max(axis=0)
        bbox[i] = (x0, y0, x1 - x0, y1 - y0)
    xs, ys, cs = _floats(kp[..., 0]), _floats(kp[..., 1]), _floats(kp[..., 2])
    vv = v.ravel().tolist()
    bs = _floats(bbox)
    areas = _floats(bbox[:, 2] * bbox[:, 3])
    scores = _floats(_float_col(persons, "score"))
    nvis = (v > 0).sum(axis=1).tolist()
    iids = persons["image_id"].astype("int64").tolist()
    pidx = persons["person_index"].astype("int64").tolist()
    tracks = ["null" if pd.isna(t) else str(int(t)) for t in persons["track_id"].tolist()]
    subj = ["null" if pd.isna(b) else ("true" if b else "false") for b in persons["is_subject"].tolist()]
    flags = ["[]" if fl is None else _DUMPS([str(f) for f in fl]) for fl in persons["qa_flags"].tolist()]
    if per_row_source:
        teachers = _strs(persons["teacher"])
        hashes = _strs(persons["weights_hash"])
    ann_ids = persons["ann_id"].astype("int64").tolist()
    for i in range(n):
        if not usable[i]:
            continue
        ann_id = ann_ids[i]
        base = i * k
        kps: list[str] = []
        inv: list[str] = []
        for j in range(k):
            t = base + j
            if vv[t] > 0:
                kps.append(f"{xs[t]},{ys[t]},{vv[t]}")
            else:
                kps.append("0,0,0")
                inv.append(f"[{j},{xs[t]},{ys[t]}]")
        b = 4 * i
        line = (
            f'{{"id":{ann_id},"image_id":{iids[i]},"category_id":1,"iscrowd":0,'
            f'"bbox":[{bs[b]},{bs[b + 1]},{bs[b + 2]},{bs[b + 3]}],"area":{areas[i]},"num_keypoints":{nvis[i]},'
            f'"keypoints":[{",".join(kps)}],"score":{scores[i]},"keypoint_scores":[{",".join(cs[base : base + k])}],'
            f'"invisible_xy":[{",".join(inv)}],"person_index":{pidx[i]},"track_id":{tracks[i]},'
            f'"is_subject":{subj[i]},"qa_flags":{flags[i]}'
        )
        if per_row_source:
            line += f',"teacher":{teachers[i]},"weights_hash":{hashes[i]}'
        yield line + "}"


def _image_lines(images: pd.DataFrame) -> Iterator[str]:
    ids = images["image_id"].astype("int64").tolist()
    names = _strs(images["rgb_path"])
    widths = images["width"].astype("int64").tolist()
    heights = images["height"].astype("int64").tolist()
    vids = _strs(images["video_id"])
    fidx = images["frame_index"].astype("int64").tolist()
    subjects = _strs(images["subject"])
    depth = _strs(images["depth_path"])
    ts = _floats(_float_col(images, "colour_ts_ms"))
    fflags = images["frame_flags"].tolist()
    for i in range(len(ids)):
        line = (
            f'{{"id":{ids[i]},"file_name":{names[i]},"width":{widths[i]},"height":{heights[i]},'
            f'"video_id":{vids[i]},"frame_index":{fidx[i]},"subject":{subjects[i]},"depth_file":{depth[i]},'
            f'"timestamp_ms":{ts[i]}'
        )
        if fflags[i]:
            line += ',"qa_flags":' + _DUMPS([str(f) for f in fflags[i]])
        yield line + "}"


def _write_part(
    fh: IO[str], info: dict[str, Any], cats: list[dict[str, Any]], images: pd.DataFrame, persons: pd.DataFrame,
    k: int, per_row_source: bool,
) -> tuple[int, int]:  # fmt: skip
    """Stream one COCO file: a header, one image per line, one annotation per line."""
    fh.write(
        '{"info":' + _DUMPS(info) + ',\n"licenses":[],\n"categories":' + _DUMPS(cats) + ',\n"images":[\n'
    )
    n_img = n_ann = 0
    for line in _image_lines(images):
        fh.write((",\n" if n_img else "") + line)
        n_img += 1
    fh.write('\n],\n"annotations":[\n')
    for line in _annotation_lines(persons, k, per_row_source):
        fh.write((",\n" if n_ann else "") + line)
        n_ann += 1
    fh.write("\n]}\n")
    return n_img, n_ann


class EmptyPartWarning(UserWarning):
    """A part of the split has no person to export; its file is written without annotations."""


@dataclass(frozen=True)
class _PartPlan:
    """What one part file will hold."""

    part: str
    images: pd.DataFrame  # frames with image_id, width, height, subject, frame_flags
    persons: pd.DataFrame  # person rows with image_id and ann_id
    empty_reason: str | None = None  # why the part has no annotation


def _check_args(images: str, min_score: float, min_visible: int) -> None:
    if images not in IMAGE_MODES:
        raise GaitdataError(f"images must be one of {', '.join(IMAGE_MODES)}, not {images!r}")
    if min_score < 0 or min_score > 1:
        raise GaitdataError(f"--min-score is a person score in [0, 1], got {min_score}")
    if min_visible < 0:
        raise GaitdataError(f"--min-visible must be >= 0, got {min_visible}")


def _check_label_frames(root: DatasetRoot, lab: pd.DataFrame, labels: str, frames: pd.DataFrame) -> None:
    """Every labelled frame must be a written frame of the root."""
    key = lab[["video_id", "frame_index"]].drop_duplicates()
    known = key.merge(frames[["video_id", "frame_index"]], how="left", indicator=True)
    stray = known[known["_merge"] == "left_only"]
    if len(stray):
        ex = ", ".join(
            f"{a}#{b}" for a, b in stray[["video_id", "frame_index"]].head(3).itertuples(index=False)
        )
        raise GaitdataError(
            f"label set {labels!r} has {len(stray)} frame(s) that are not written frames of {root.frames_path} "
            f"(e.g. {ex}); re-label the root"
        )


def annotation_ids(lab: pd.DataFrame, frames: pd.DataFrame) -> pd.Series:
    """Annotation id of each row of a label set (NA for no-person rows).

    1 + the rank of the person row among all person rows of the label set ordered by (image id,
    person index): unique across the parts of an export, and the same in every export of the
    label set whatever its split, parts and filters.
    """
    person = lab["has_person"].fillna(False).to_numpy(dtype=bool)
    keyed = lab.loc[person, ["video_id", "frame_index", "person_index"]].merge(
        frames[["video_id", "frame_index", "image_id"]], on=["video_id", "frame_index"], how="left"
    )
    keyed.index = lab.index[person]
    order = keyed.sort_values(["image_id", "person_index"], kind="stable").index
    ids = pd.Series(pd.NA, index=lab.index, dtype="Int64")
    ids.loc[order] = np.arange(1, len(order) + 1, dtype=np.int64)
    return ids


def _apply_filters(
    lab: pd.DataFrame, min_score: float, min_visible: int, exclude_flags: Sequence[str], subject_only: bool,
    exclude_frames: Iterable[tuple[str, int]] | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:  # fmt: skip
    """The rows left after ``exclude_frames`` (with a ``_keep`` column: the person passes the filters)."""
    key = lab[["video_id", "frame_index"]].drop_duplicates()
    lab = lab.assign(_keep=_select(lab, min_score, min_visible, exclude_flags, subject_only))
    if exclude_frames is not None:
        ex = pd.DataFrame(list(exclude_frames), columns=["video_id", "frame_index"])
        if len(ex):
            ex["frame_index"] = ex["frame_index"].astype("Int64")
            ex["video_id"] = ex["video_id"].astype("string")
            m = lab[["video_id", "frame_index"]].merge(ex.drop_duplicates(), how="left", indicator=True)
            lab = lab[(m["_merge"] == "left_only").to_numpy()]
    filters = {
        "min_score": float(min_score),
        "min_visible": int(min_visible),
        "exclude_flags": sorted(set(exclude_flags)),
        "subject_only": bool(subject_only),
        "excluded_frames": 0
        if exclude_frames is None
        else int(len(key) - len(lab[["video_id", "frame_index"]].drop_duplicates())),
    }
    return lab, filters


def _label_source(lab: pd.DataFrame) -> tuple[bool, dict[str, Any]]:
    """(whether every row has one teacher and weights hash, that teacher and hash)."""
    teachers = (
        lab[["teacher", "weights_hash"]].astype(object).where(lab[["teacher", "weights_hash"]].notna(), None)
    )
    uniform = len(teachers.drop_duplicates()) <= 1
    source = (
        teachers.iloc[0].to_dict() if uniform and len(teachers) else {"teacher": None, "weights_hash": None}
    )
    return uniform, source


def _plan_part(
    part: str, videos: list[str], lab: pd.DataFrame, frames: pd.DataFrame, sizes: dict[str, tuple[int, int]],
    subj: dict[str, Any], describe: str,
) -> _PartPlan:  # fmt: skip
    """The images and annotations of one part (``describe`` names the part, its split and label set)."""
    sub = lab[lab["video_id"].isin(videos)]
    if sub.empty:
        return _PartPlan(
            part, frames.iloc[:0].assign(width=[], height=[], subject=[], frame_flags=[]), sub,
            f"{describe} has no labelled frame ({len(videos)} video(s)); label them or choose another split",
        )  # fmt: skip
    has_person = (
        sub.assign(_hp=sub["has_person"].fillna(False).astype(bool))
        .groupby(["video_id", "frame_index"], sort=False)["_hp"]
        .any()
    )
    kept = sub[sub["_keep"]]
    kept_frames = set(zip(kept["video_id"], kept["frame_index"], strict=True))
    frame_keys = [(v, f) for (v, f), hp in has_person.items() if (not hp) or (v, f) in kept_frames]
    fk = pd.DataFrame(frame_keys, columns=["video_id", "frame_index"]).astype(
        {"video_id": "string", "frame_index": "Int64"}
    )
    imgs = fk.merge(frames, on=["video_id", "frame_index"], how="left").sort_values("image_id", kind="stable")
    imgs["width"] = [sizes[v][0] for v in imgs["video_id"].astype(str)]
    imgs["height"] = [sizes[v][1] for v in imgs["video_id"].astype(str)]
    imgs["subject"] = [subj.get(v) for v in imgs["video_id"].astype(str)]
    empty = sub[~sub["has_person"].fillna(False).astype(bool)]
    eflags = {
        (v, f): [str(x) for x in fl]
        for v, f, fl in zip(empty["video_id"], empty["frame_index"], empty["qa_flags"], strict=True)
        if fl is not None and len(fl)
    }
    imgs["frame_flags"] = [eflags.get((v, f)) for v, f in zip(imgs["video_id"], imgs["frame_index"], strict=True)]
    persons = kept.merge(frames[["video_id", "frame_index", "image_id"]], on=["video_id", "frame_index"])
    persons = persons.sort_values(["image_id", "person_index"], kind="stable").reset_index(drop=True)
    reason = None
    if persons.empty:
        any_person = bool(sub["has_person"].fillna(False).any())
        reason = (
            f"{describe}: no person passes the filters; relax --min-score/--min-visible/--exclude-flag"
            if any_person
            else f"{describe}: no person was labelled in its {len(videos)} video(s)"
        )
    return _PartPlan(part, imgs.reset_index(drop=True), persons, reason)


def _export_command(
    labels: str, split_name: str | None, parts: Sequence[str] | None, filters: dict[str, Any],
    exclude_frames: bool, images: str,
) -> list[str]:  # fmt: skip
    """The ``gaitdata export coco`` command line that makes this export again (``--out``: the folder
    the file is in, added when the command is shown, so that the file does not depend on its place)."""
    cmd = ["gaitdata", "export", "coco", "{root}", "--labels", labels, "--split", split_name or "none"]
    for p in parts or ():
        cmd += ["--part", p]
    option(cmd, "--min-score", f"{filters['min_score']:g}", "0")
    option(cmd, "--min-visible", filters["min_visible"], 1)
    for f in filters["exclude_flags"]:
        cmd += ["--exclude-flag", f]
    option(cmd, "--subject-only", filters["subject_only"])
    option(cmd, "--exclude-frames", "FRAMES.csv" if exclude_frames else None)
    option(cmd, f"--{images}-images", images != "none")
    return cmd


def _remove_dead_temporaries(out_dir: Path) -> list[Path]:
    """Delete part files an export killed on this host left behind (``.<part>.json.<host>-<pid>-*.tmp``
    whose process is gone). An export elsewhere, or still running, keeps its temporary files."""
    host = socket.gethostname()
    removed = []
    for p in out_dir.glob(".*.json.*.tmp"):
        tag = p.name.split(".json.", 1)[1]
        who, _, pid = tag.rpartition("-")[0].rpartition("-")
        if who != host or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _write_parts(
    root: DatasetRoot, out_dir: Path, plans: list[_PartPlan], info: dict[str, Any], schema: KeypointSchema,
    per_row_source: bool, images: str, progress: bool,
) -> dict[str, Path]:  # fmt: skip
    """Stream every part to a temporary file; rename them all into place once all are complete."""
    cats = categories(schema)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(out_dir)
    tmp_paths: dict[str, str] = {}
    results: dict[str, Path] = {}
    try:
        for plan in plans:
            part_info = {
                **info,
                "description": f"gaitdata COCO person keypoints: split {info['split'] or '-'}, part {plan.part}",
                "part": plan.part,
            }
            fd, tmp = tempfile.mkstemp(prefix=f".{plan.part}.json.{socket.gethostname()}-{os.getpid()}-", suffix=".tmp", dir=out_dir)
            tmp_paths[plan.part] = tmp
            apply_umask_mode(fd)  # mkstemp creates 0600; the file gets the umask's mode like any other
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                _write_part(fh, part_info, cats, plan.images, plan.persons, schema.num_keypoints, per_row_source)
                fh.flush()
                os.fsync(fh.fileno())
            if images != "none":
                _materialise(root, out_dir / "images", plan.images["rgb_path"].astype(str), images, progress)
        for part, tmp in tmp_paths.items():
            final = out_dir / f"{part}.json"
            os.replace(tmp, final)
            results[part] = final
        tmp_paths.clear()
    finally:
        for tmp in tmp_paths.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return results


@writes_root("export", out="out", out_elsewhere_reads_only=True)
def export_coco(
    root: DatasetRoot | str | os.PathLike,
    labels: str,
    split_name: str | None = "default",
    out: str | os.PathLike | None = None,
    min_score: float = 0.0,
    min_visible: int = 1,
    exclude_flags: Sequence[str] = (),
    subject_only: bool = False,
    exclude_frames: Iterable[tuple[str, int]] | None = None,
    progress: bool = False,
    *,
    parts: Sequence[str] | None = None,
    images: str = "none",
    check_images: bool = True,
) -> dict[str, Path]:
    """Export label set ``labels`` as one COCO person-keypoints file per part of split ``split_name``.

    Returns ``{part: path}`` (e.g. ``{"train": .../train.json, "val": ..., "test": ...}``).
    ``split_name=None`` exports every written frame as ``all.json``. Filters: ``min_score`` (person
    score), ``min_visible`` (joints with v > 0), ``exclude_flags`` (drop persons with any of these
    QA flags), ``subject_only`` (only the gait subject), ``exclude_frames`` (set of
    ``(video_id, frame_index)`` left out entirely, e.g. frames tagged in review). ``parts`` limits
    the parts written; ``images`` = ``"copy"``/``"link"`` materialises the frames beside the JSON.

    A part without any person to export is written without annotations and reported with an
    :class:`EmptyPartWarning`; only when no part has one is the export refused. A stale label set
    or split (see :mod:`gaitdata.staleness`) is refused before anything is written.
    """
    r = _as_root(root)
    _check_args(images, min_score, min_visible)
    schema = r.keypoint_schema()
    lab = read_labels(r, labels)
    part_videos, split_hash = _parts(r, split_name, parts)
    require_fresh_inputs(r, "export", labels=[labels], split=split_name)
    out_dir = Path(out).expanduser().resolve() if out is not None else default_out(r, split_name)
    frames = image_ids(r.read_frames())
    _check_label_frames(r, lab, labels, frames)
    lab = lab.assign(ann_id=annotation_ids(lab, frames))
    sizes = _video_sizes(r, frames[frames["video_id"].isin(lab["video_id"].unique())])
    vids = r.read_videos()
    subj = dict(zip(vids["video_id"].astype(str), vids["subject"], strict=True))
    uniform, source = _label_source(lab)
    lab, filters = _apply_filters(lab, min_score, min_visible, exclude_flags, subject_only, exclude_frames)

    plans = [
        _plan_part(p, v, lab, frames, sizes, subj, f"part {p!r} of split {split_name!r} (label set {labels!r})")
        for p, v in part_videos.items()
    ]
    if all(p.empty_reason for p in plans):
        raise GaitdataError("nothing to export: " + "; ".join(str(p.empty_reason) for p in plans))
    for p in plans:
        if p.empty_reason:
            warnings.warn(f"{p.empty_reason}; {p.part}.json is written without annotations", EmptyPartWarning, 2)
    if check_images or images != "none":
        missing = _missing_files(r, [rel for p in plans for rel in p.images["rgb_path"].astype(str)])
        if missing:
            raise GaitdataError(
                f"{len(missing)} image file(s) referenced by {r.frames_path} are missing (e.g. {r.path / missing[0]}); "
                f"re-extract them (gaitdata validate {r.path} lists them) or pass check_images=False"
            )
    meta = {key: v for key, v in read_label_meta(r, labels).items() if key not in _NOT_EXPORTED}
    command = _export_command(labels, split_name, parts, filters, exclude_frames is not None, images)
    info = {
        "description": "",
        "format": COCO_FORMAT,
        "format_version": COCO_FORMAT_VERSION,
        "version": __version__,
        "image_root": "images" if images != "none" else os.path.relpath(r.path, out_dir),
        "keypoint_schema": schema.name,
        "split": split_name,
        "split_hash": split_hash,
        "part": "",
        "filters": filters,
        "teacher": source["teacher"] if uniform else None,
        "weights_hash": source["weights_hash"] if uniform else None,
        "label_meta": meta,
        "lineage": export_lineage(labels, label_set_fingerprint(r, labels), split_name, split_hash, command),
    }
    return _write_parts(r, out_dir, plans, info, schema, not uniform, images, progress)


def count_entries(path: str | os.PathLike) -> tuple[int, int]:
    """(images, annotations) of a file written by :func:`export_coco`, counted line by line."""
    section = None
    counts = {"images": 0, "annotations": 0}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith('"images"'):
                section = "images"
            elif line.startswith('"annotations"'):
                section = "annotations"
            elif line.startswith("{") and section is not None:
                counts[section] += 1
    return counts["images"], counts["annotations"]


def _materialise(root: DatasetRoot, dest: Path, rels: Iterable[str], mode: str, progress: bool) -> None:
    for rel in progress_bar(list(rels), desc=f"{mode} images", unit="image", enabled=progress, transient=True):
        src = root.path / rel
        dst = dest / rel
        if dst.is_symlink() or dst.exists():
            if mode == "link" and dst.is_symlink() and os.readlink(dst) == str(src):
                continue
            if mode == "copy" and not dst.is_symlink() and dst.stat().st_size == src.stat().st_size:
                continue
            dst.unlink()
        dst.parent.mkdir(parents=True, exist_ok=True)
        if mode == "copy":
            tmp = dst.with_name(f".{dst.name}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        else:
            os.symlink(src, dst)


# ------------------------------------------------------------------------------------------------
# import
# ------------------------------------------------------------------------------------------------
def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"COCO file {path} does not exist")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GaitdataError(f"{path} is not valid JSON ({exc})") from exc
    if (
        not isinstance(d, dict)
        or not isinstance(d.get("images"), list)
        or not isinstance(d.get("annotations"), list)
    ):
        raise GaitdataError(f"{path} is not a COCO file: it needs 'images' and 'annotations' lists")
    return d


_FIFTYONE_FIX = (
    "FiftyOne's COCO exporter copies the media and renames clashing names (000000-2.jpg) unless told otherwise: "
    "export with dataset.export(labels_path=..., dataset_type=fo.types.COCODetectionDataset, label_field=..., "
    "export_media=False, rel_dir=ROOT) so file_name is relative to the dataset root (or abs_paths=True)"
)


def _from_fiftyone(d: dict[str, Any]) -> bool:
    info = d.get("info") if isinstance(d.get("info"), dict) else {}
    return "voxel51" in str(info.get("url") or "") or "fiftyone" in str(info.get("url") or "")


def _person_category(d: dict[str, Any], path: Path, schema: KeypointSchema) -> tuple[int | None, list[str]]:
    """The person category's id (None: the file has no categories) and notes on what was assumed.

    A category that names its keypoints must name the root's schema. One that names none (FiftyOne
    writes none) is read as the root's schema when every annotation has that many points.
    """
    cats = [c for c in d.get("categories") or [] if isinstance(c, dict)]
    named = [c for c in cats if c.get("keypoints")]
    if named:
        cat = next((c for c in named if c.get("name") == "person"), named[0])
        if list(cat["keypoints"]) != list(schema.keypoints):
            raise GaitdataError(
                f"{path}: keypoints {cat['keypoints'][:3]}... ({len(cat['keypoints'])}) do not match the root's schema "
                f"{schema.name} ({schema.num_keypoints}: {list(schema.keypoints[:3])}...); convert the file first"
            )
        return int(cat["id"]), []
    cat = next((c for c in cats if c.get("name") == "person"), cats[0] if len(cats) == 1 else None)
    if cats and cat is None:
        raise GaitdataError(
            f"{path}: no category lists keypoint names and none is named 'person' "
            f"({', '.join(repr(c.get('name')) for c in cats[:4])}); this is not a COCO person-keypoints file"
        )
    cat_id = int(cat["id"]) if cat is not None else None
    k = schema.num_keypoints
    sizes = sorted({
        len(a.get("keypoints") or [])
        for a in d["annotations"]
        if cat_id is None or a.get("category_id", cat_id) == cat_id
    })  # fmt: skip
    if sizes and sizes != [3 * k]:
        raise GaitdataError(
            f"{path}: category {cat.get('name') if cat else '-'!r} lists no keypoint names and its annotations hold "
            f"{', '.join(str(n // 3) for n in sizes)} points; without names only {k}-point ({schema.name}) "
            f"annotations can be read: add the 'keypoints' names to the category"
        )
    label = f"category {cat.get('name')!r}" if cat else "the file (no categories)"
    names = ", ".join(schema.keypoints[:3]) + ", ..., " + schema.keypoints[-1]
    return cat_id, [f"{path.name}: {label} lists no keypoint names; its {k}-point annotations are read as {schema.name} ({names})"]


@writes_root("import")
@dataclass(frozen=True)
class _ImportTarget:
    """What every imported file is matched against: the root's written frames and keypoint schema."""

    root: DatasetRoot
    schema: KeypointSchema
    frame_keys: frozenset[tuple[str, int]]
    fmap: Any  # gaitdata.imagenames.FrameMap
    default_video: str | None


def import_coco(
    file: str | os.PathLike | Sequence[str | os.PathLike],
    root: DatasetRoot | str | os.PathLike,
    label_set: str,
    *,
    overwrite: bool = False,
    teacher: str | None = None,
    video: str | None = None,
) -> Path:
    """Read COCO person-keypoints file(s) into label set ``label_set`` of ``root``; returns its path.

    Images are matched to frames by their ``video_id``/``frame_index`` fields, else by
    ``file_name`` (:class:`gaitdata.imagenames.FrameMap`: relative to the dataset root, an absolute
    path inside it or ending in ``<video_id>/rgb/<name>``, or a bare name within ``video`` or the
    root's only recording). Confidence comes from ``keypoint_scores``, else from a list-valued
    ``score`` of one value per keypoint (FiftyOne writes that), else 1 for v > 0 and 0 otherwise;
    images without annotations become "no person" rows. Files of other tools: a category without
    keypoint names but with the schema's point count is read as the root's schema; a missing
    ``bbox`` is the extent of the visible points. What was assumed is listed in the label set's
    metadata (``import_notes``). Several files (e.g. the parts of one split) merge into one label set.
    """
    r = _as_root(root)
    check_label_set_name(label_set)
    if r.label_path(label_set).is_file() and not overwrite:
        raise GaitdataError(
            f"label set {label_set!r} already exists ({r.label_path(label_set)}); choose another name or pass --overwrite"
        )
    files = [Path(file)] if isinstance(file, str | os.PathLike) else [Path(f) for f in file]
    if not files:
        raise GaitdataError("no COCO file given")
    target = _import_target(r, video)
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    notes: list[str] = []
    for path in files:
        file_rows, info_meta, file_notes = _import_file(path, target, teacher)
        rows += file_rows
        notes += file_notes
        if info_meta and not meta:
            meta = info_meta
    df = _imported_table(rows, files)
    meta[_IMPORT_KEY] = [str(p) for p in files]
    if notes:
        meta["import_notes"] = notes
    return write_labels(r, label_set, df, meta)


def _import_target(r: DatasetRoot, video: str | None) -> _ImportTarget:
    from gaitdata.imagenames import FrameMap

    frames = image_ids(r.read_frames())
    keys = frozenset((str(v), int(f)) for v, f in zip(frames["video_id"], frames["frame_index"], strict=True))
    fmap = FrameMap(r, frames)
    default_video = fmap.check_video(video) if video is not None else (fmap.videos[0] if len(fmap.videos) == 1 else None)
    return _ImportTarget(r, r.keypoint_schema(), keys, fmap, default_video)


def _import_file(
    path: Path, target: _ImportTarget, teacher: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """The label rows of one COCO file, the label-set metadata it carries (``info.label_meta``) and
    notes on what was assumed."""
    d = _load_json(path)
    cat_id, notes = _person_category(d, path, target.schema)
    info = d.get("info") or {}
    meta = dict(info["label_meta"]) if isinstance(info.get("label_meta"), dict) else {}
    default_teacher = teacher or info.get("teacher") or f"coco:{path.stem}"
    default_hash = info.get("weights_hash")
    img_key, img_flags = _match_images(d, path, target)
    anns = sorted(
        (a for a in d["annotations"] if cat_id is None or int(a.get("category_id", cat_id)) == cat_id),
        key=lambda a: a.get("id", 0),
    )
    rows: list[dict[str, Any]] = []
    counts: dict[int, int] = {}  # persons per image so far
    n_box = n_scores = 0
    for a in anns:
        iid = int(a["image_id"])
        if iid not in img_key:
            raise GaitdataError(f"{path}: annotation {a.get('id')} refers to unknown image {iid}")
        row, no_box, per_joint_score = _annotation_row(a, path, target.schema.num_keypoints)
        pi = row["person_index"] if row["person_index"] is not None else counts.get(iid, 0)
        counts[iid] = max(counts.get(iid, 0), int(pi) + 1)
        vid, fi = img_key[iid]
        row.update(video_id=vid, frame_index=fi, person_index=int(pi))
        row["teacher"] = a.get("teacher", default_teacher)
        row["weights_hash"] = a.get("weights_hash", default_hash)
        rows.append(row)
        n_box += no_box
        n_scores += per_joint_score
    if n_box:
        notes.append(f"{path.name}: {n_box} of {len(anns)} annotations have no bbox; it is the extent of their visible points")
    if n_scores:
        notes.append(
            f"{path.name}: {n_scores} annotations give one score per keypoint (as FiftyOne writes): read as joint "
            f"confidences, person score = their mean over the visible joints"
        )
    for iid, (vid, fi) in img_key.items():
        if iid not in counts:
            rows.append({
                "video_id": vid, "frame_index": fi, "person_index": -1, "has_person": False,
                "teacher": default_teacher, "weights_hash": default_hash, "qa_flags": img_flags[iid],
            })  # fmt: skip
    return rows, meta, notes


def _match_images(
    d: dict[str, Any], path: Path, target: _ImportTarget
) -> tuple[dict[int, tuple[str, int]], dict[int, list[str]]]:
    """Per COCO image id: the written frame it shows and its QA flags; every image must match one."""
    img_key: dict[int, tuple[str, int]] = {}
    img_flags: dict[int, list[str]] = {}
    unmatched: list[str] = []
    for im in d["images"]:
        if "video_id" in im and "frame_index" in im:
            kk = (str(im["video_id"]), int(im["frame_index"]))
        else:
            fn = str(im.get("file_name", ""))
            kk = target.fmap.resolve(fn, target.default_video)
            if kk is None:
                unmatched.append(fn)
                continue
        if kk not in target.frame_keys:
            raise GaitdataError(
                f"{path}: image {im.get('id')} is frame {kk[0]}#{kk[1]}, not a written frame of {target.root.path}"
            )
        img_key[int(im["id"])] = kk
        img_flags[int(im["id"])] = list(im.get("qa_flags") or [])
    if unmatched:
        shown = ", ".join(repr(n) for n in unmatched[:3]) + (", ..." if len(unmatched) > 3 else "")
        fix = (
            _FIFTYONE_FIX
            if _from_fiftyone(d)
            else "file_name must be relative to the dataset root (e.g. frames/<video_id>/rgb/000000.jpg), "
            "or bare names with --video VIDEO_ID"
        )
        raise GaitdataError(
            f"{path}: {len(unmatched)} of {len(d['images'])} images match no frame of {target.root.frames_path} "
            f"by file_name (e.g. {shown}); {fix}"
        )
    return img_key, img_flags


def _annotation_row(a: dict[str, Any], path: Path, k: int) -> tuple[dict[str, Any], bool, bool]:
    """The label row of one annotation (without its frame, teacher and weights hash; ``person_index``
    None when the file does not say), whether its box was made from the points, and whether its
    score was one value per keypoint."""
    kp = np.asarray(a.get("keypoints", []), dtype=np.float64)
    if kp.size != 3 * k:
        raise GaitdataError(f"{path}: annotation {a.get('id')} has {kp.size // 3} keypoints, expected {k}")
    kp = kp.reshape(k, 3)  # COCO's x, y, v
    vis = kp[:, 2].astype(np.int64)
    scores = a.get("keypoint_scores")
    score = a.get("score", 1.0)
    per_joint_score = scores is None and isinstance(score, list) and len(score) == k
    if per_joint_score:  # one confidence per keypoint
        scores = score
        c = np.array([np.nan if v is None else float(v) for v in score])
        seen = c[(vis > 0) & np.isfinite(c)]
        score = float(seen.mean()) if seen.size else 0.0
    conf = (
        [np.nan if c is None else float(c) for c in scores] if scores is not None else np.where(vis > 0, 1.0, 0.0).tolist()
    )
    xy = kp[:, :2].copy()
    for j, x, y in a.get("invisible_xy") or []:
        xy[int(j)] = (np.nan if x is None else x, np.nan if y is None else y)
    bbox = a.get("bbox")
    no_box = not bbox
    if no_box:
        bbox = [np.nan] * 4
        if (vis > 0).any():  # the extent of the visible points
            (x0, y0), (x1, y1) = kp[vis > 0, :2].min(axis=0), kp[vis > 0, :2].max(axis=0)
            bbox = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    row = {
        "person_index": a.get("person_index"), "has_person": True,
        "bbox_x": bbox[0], "bbox_y": bbox[1], "bbox_w": bbox[2], "bbox_h": bbox[3],
        "score": score, "raw_score": a.get("raw_score"),
        "keypoints": encode_keypoints(np.column_stack([xy, np.asarray(conf, dtype=np.float64)])),
        "visibility": vis.tolist(), "num_visible": int((vis > 0).sum()),
        "track_id": a.get("track_id"), "is_subject": a.get("is_subject"),
        "qa_flags": list(a.get("qa_flags") or []),
    }  # fmt: skip
    return row, no_box, per_joint_score


def _imported_table(rows: list[dict[str, Any]], files: list[Path]) -> pd.DataFrame:
    """The label table of all imported rows; a (frame, person) given twice is an error."""
    df = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    if df.empty:
        raise GaitdataError(f"{', '.join(map(str, files))}: no images to import")
    for c in ("score", "raw_score", "bbox_x", "bbox_y", "bbox_w", "bbox_h"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    dup = df.duplicated(["video_id", "frame_index", "person_index"])
    if dup.any():
        v, f, p = df.loc[dup, ["video_id", "frame_index", "person_index"]].iloc[0]
        raise GaitdataError(f"frame {v}#{f} person {p} appears twice across {', '.join(map(str, files))}")
    return df
