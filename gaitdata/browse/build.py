"""Build or update the FiftyOne grouped dataset of a dataset root.

One group per written frame: slice ``rgb`` (the colour frame; person boxes and keypoints of every
label set, one field pair per set; the raw 16-bit depth as a ``Heatmap``) and slice ``depth`` (an
8-bit colourised preview generated under ``<root>/.fiftyone/previews``). Sample fields: video_id,
subject, session, view, condition, frame_index, colour_frame_number, colour/depth timestamps,
split (plus a ``split:<name>`` tag). Label-set QA flags become label tags.

Updates are incremental: frames already in the dataset are left alone (user tags stay); new
frames are added; a label set whose file changed is rewritten in its fields only.

The steps live in small modules: :mod:`~gaitdata.browse.plan` (inputs),
:mod:`~gaitdata.browse.previews` (depth previews), :mod:`~gaitdata.browse.samples` (documents),
:mod:`~gaitdata.browse.agreement` (OKS between label sets) and
:mod:`~gaitdata.browse.fo_internals` (the direct writes to FiftyOne's storage).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gaitdata.browse.agreement import agreement_field, frame_agreement, pair_agreement
from gaitdata.browse.fo_internals import SampleSpec, add_specs, write_docs
from gaitdata.browse.plan import (
    DEPTH,
    META_COLS,
    RGB,
    BuildPlan,
    dataset_name,
    field_name,
    plan,
    video_part_map,
)
from gaitdata.browse.previews import (
    depth_units_range,
    frame_size,
    make_preview,
    make_previews,
    preview_relpath,
    video_depth_range,
)
from gaitdata.browse.samples import LABEL_SUFFIXES, heatmap_doc, label_docs, make_specs, skeleton_polyline_doc
from gaitdata.dataset import DatasetRoot, written_frames
from gaitdata.errors import GaitdataError
from gaitdata.io import file_fingerprint
from gaitdata.labels import read_labels
from gaitdata.lock import tables_lock
from gaitdata.schema import KeypointSchema

__all__ = [
    "DEPTH", "LABEL_SUFFIXES", "RGB", "BuildPlan", "BuildReport", "SampleSpec", "add_specs", "agreement_field",
    "build_dataset", "dataset_name", "declare_label_fields", "depth_units_range", "field_name", "frame_agreement",
    "heatmap_doc", "label_docs", "make_preview", "make_previews", "make_specs", "plan", "preview_relpath",
    "rgb_view", "save_views", "set_label_fields", "set_split", "skeleton_polyline_doc", "video_part_map",
    "write_docs",
]  # fmt: skip

FIELD_INFO_KEY = "gaitdata"
LOW_CONFIDENCE = 0.5  # mean keypoint confidence below which a person is "low confidence"
DISAGREEMENT_OKS = 0.8  # lowest OKS between two label sets below which a frame is a "disagreement"
FIELD_COLOURS = ("#ff00ff", "#00e5ff", "#ffd400", "#ff6a00", "#7cff00", "#ff4f9a")  # one per label set


@dataclass
class BuildReport:
    """Counts of one build, stored in ``dataset.info['gaitdata']['last_build']``."""

    added_frames: int = 0
    existing_frames: int = 0
    removed_frames: int = 0
    updated_label_sets: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Build:
    """What the steps of one build share."""

    fo: Any
    ds: Any
    p: BuildPlan
    schema: KeypointSchema
    tables: dict[str, pd.DataFrame]  # label set -> its rows
    sizes: dict[str, tuple[int, int]]  # video -> frame (width, height)
    ranges: dict[str, list[float]]  # video -> depth colour scale
    editable: bool
    progress: bool

    @property
    def skeleton(self) -> list[tuple[int, int]] | None:
        return list(self.schema.skeleton) if self.editable else None

    def say(self, msg: str) -> None:
        if self.progress:
            print(msg, flush=True)


# ---- dataset and fields ------------------------------------------------------------------------
def _new_dataset(fo: Any, name: str, schema: KeypointSchema) -> Any:
    ds = fo.Dataset(name, persistent=True)
    ds.add_group_field("group", default=RGB)
    ds.default_skeleton = fo.KeypointSkeleton(
        labels=list(schema.keypoints), edges=[[a, b] for a, b in schema.skeleton]
    )
    return ds


def _open_dataset(fo: Any, p: BuildPlan, schema: KeypointSchema, rebuild: bool) -> Any:
    """The root's grouped dataset (created when missing, first deleted with ``rebuild``)."""
    if rebuild and fo.dataset_exists(p.name):
        fo.delete_dataset(p.name)
    if not fo.dataset_exists(p.name):
        return _new_dataset(fo, p.name, schema)
    ds = fo.load_dataset(p.name)
    if ds.media_type != "group":
        raise GaitdataError(f"FiftyOne dataset {p.name} is not a grouped dataset; delete it with: "
                            f"gaitdata browse {p.root.path} --rebuild")  # fmt: skip
    return ds


def _ensure_fields(fo: Any, ds: Any) -> None:
    """Declare the metadata fields (so all-None values, e.g. no split, still have a type)."""
    have = ds.get_field_schema()
    wanted = {f: fo.StringField for f in ("video_id", "split", *META_COLS)}
    wanted.update({f: fo.IntField for f in ("frame_index", "colour_frame_number")})
    wanted.update({f: fo.FloatField for f in ("colour_ts_ms", "depth_ts_ms")})
    for f, ftype in wanted.items():
        if f not in have:
            ds.add_sample_field(f, ftype)


def declare_label_fields(fo: Any, ds: Any, fields: Iterable[str], heatmap: bool = True, editable: bool = False) -> None:
    """Declare ``<f>`` (Keypoints), ``<f>_boxes`` (Detections), with ``editable`` ``<f>_edit``
    (Polylines) for each label field, and ``depth`` (Heatmap)."""
    schema = ds.get_field_schema()
    wanted: dict[str, Any] = {}
    for f in fields:
        wanted.update({f: fo.Keypoints, f + "_boxes": fo.Detections})
        if editable:
            wanted[f + "_edit"] = fo.Polylines
    if heatmap:
        wanted["depth"] = fo.Heatmap
    for f, cls in wanted.items():
        if f not in schema:
            ds.add_sample_field(f, fo.EmbeddedDocumentField, embedded_doc_type=cls)


def rgb_view(ds: Any) -> Any:
    """The ``rgb`` slice as a flat view (the review queues are built on it)."""
    return ds.select_group_slices(RGB)


# ---- frames ------------------------------------------------------------------------------------
def _written_frames(root: DatasetRoot) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(videos indexed by id, the frames written with a colour image of a known video)."""
    with tables_lock(root.path, exclusive=False):  # both tables of one moment, even during an extract
        videos = root.read_videos().set_index("video_id", drop=False)
        frames = root.read_frames()
    frames = written_frames(frames)
    frames = frames[frames["rgb_path"].notna()]
    return videos, frames[frames["video_id"].isin(videos.index)].reset_index(drop=True)


def _drop_stale_frames(ds: Any, p: BuildPlan, keys: list[tuple[str, int]], report: BuildReport) -> set[tuple[str, int]]:
    """Delete the groups of frames no longer written in the root; return the frames still there."""
    if RGB not in (ds.group_slices or []):
        return set()
    rgb = rgb_view(ds)
    gids = rgb.values("group.id")
    have_keys = list(zip(rgb.values("video_id"), rgb.values("frame_index"), strict=True))
    current = set(keys)
    stale = [g for g, key in zip(gids, have_keys, strict=True) if key not in current]
    if stale:  # frames no longer written in the root (re-extracted, removed): drop their groups
        ds.delete_groups(stale)
        report.removed_frames = len(stale)
        report.notes.append(f"{len(stale)} frames no longer in {p.root.frames_path} were removed from the dataset")
    return set(have_keys) & current


def _frame_geometry(root: DatasetRoot, videos: pd.DataFrame, frames: pd.DataFrame) -> tuple[dict, dict]:
    """(video -> frame size, video -> depth colour scale)."""
    sizes: dict[str, tuple[int, int]] = {}
    for vid, grp in frames.groupby("video_id", sort=False):
        sizes[str(vid)] = frame_size(root, videos.loc[vid].to_dict(), str(grp["rgb_path"].iloc[0]))
    ranges = {str(v): video_depth_range(root, videos.loc[v, "depth_scale"], grp)
              for v, grp in frames.groupby("video_id", sort=False)}  # fmt: skip
    return sizes, ranges


def _add_frames(b: _Build, new: pd.DataFrame, videos: pd.DataFrame, batch_size: int, report: BuildReport) -> None:
    """Depth previews, then the samples of the ``new`` frames in batches."""
    root = b.p.root
    jobs = [(str(r.depth_path), preview_relpath(r.video_id, int(r.frame_index)), b.ranges[r.video_id])
            for r in new.itertuples(index=False) if r.depth_path is not None and not pd.isna(r.depth_path)]  # fmt: skip
    b.say(f"browse: {len(jobs)} depth previews ({sum(not root.abspath(j[1]).is_file() for j in jobs)} new)")
    bad_depth = make_previews(root, jobs)
    for rel, err in list(bad_depth.items())[:3]:
        report.skipped.append(f"depth {rel}: {err}")
    if len(bad_depth) > 3:
        report.skipped.append(f"... and {len(bad_depth) - 3} more depth frames without a preview")
    new_keys = list(zip(new["video_id"].astype(str), new["frame_index"].astype(int), strict=True))
    k = b.schema.num_keypoints
    per_set = {name: label_docs(b.tables[name], b.sizes, new_keys, k, b.skeleton) for name in b.p.label_sets}
    declare_label_fields(b.fo, b.ds, [b.p.fields[n] for n in b.p.label_sets], editable=b.editable)
    b.say(f"browse: adding {len(new)} frames to FiftyOne dataset {b.p.name}")
    for start in range(0, len(new), batch_size):
        chunk = new.iloc[start : start + batch_size]
        add_specs(b.fo, b.ds, make_specs(b.p, chunk, videos, b.sizes, b.ranges, per_set, bad_depth))
    report.added_frames = len(new)


# ---- labels ------------------------------------------------------------------------------------
def set_label_fields(fo: Any, ds: Any, fld: str, values: dict[tuple[str, int], dict[str, dict]],
                     keys: Iterable[tuple[str, int]], editable: bool = False) -> None:  # fmt: skip
    """Set the fields of label field ``fld`` on the rgb samples of ``keys`` (frames without rows: None)."""
    declare_label_fields(fo, ds, [fld], heatmap=False, editable=editable)
    suffixes = LABEL_SUFFIXES if editable else LABEL_SUFFIXES[:2]
    rgb = rgb_view(ds)
    wanted = set(keys)
    ids, vids, fis = rgb.values("id"), rgb.values("video_id"), rgb.values("frame_index")
    updates = {}
    for i, v, f in zip(ids, vids, fis, strict=True):
        if (v, f) in wanted:
            docs = values.get((v, f), {})
            updates[i] = {fld + sfx: docs.get(sfx) for sfx in suffixes}
    write_docs(fo, ds, updates)


def _update_label_sets(b: _Build, changed: list[str], old_keys: list[tuple[str, int]], known_sets: dict,
                       fingerprints: dict[str, str], report: BuildReport) -> None:  # fmt: skip
    """Rewrite the fields of the label sets that changed on disk on the frames already there."""
    k = b.schema.num_keypoints
    for name in changed:
        if name in known_sets and old_keys:
            b.say(f"browse: label set {name} changed; updating its fields")
        if old_keys:
            docs = label_docs(b.tables[name], b.sizes, old_keys, k, b.skeleton)
            set_label_fields(b.fo, b.ds, b.p.fields[name], docs, old_keys, b.editable)
        report.updated_label_sets.append(name)
        known_sets[name] = {"field": b.p.fields[name], "fingerprint": fingerprints[name]}


def _set_agreement(b: _Build, refresh: bool) -> None:
    """``oks_<first>_vs_<other>`` per frame for each other label set (recomputed when ``refresh``)."""
    rgb = rgb_view(b.ds)
    first = b.p.label_sets[0] if b.p.label_sets else None
    for other in b.p.label_sets[1:]:
        f = agreement_field(b.p.fields[first], b.p.fields[other])
        if f not in b.ds.get_field_schema():
            b.ds.add_sample_field(f, b.fo.FloatField)
        elif not refresh:
            continue  # nothing changed since it was computed
        scores = pair_agreement(b.p.root, first, other)
        ids, vids, fis = rgb.values("id"), rgb.values("video_id"), rgb.values("frame_index")
        rgb.set_values(f, {i: scores.get((v, fi)) for i, v, fi in zip(ids, vids, fis, strict=True)}, key_field="id")


# ---- split, views, colours -----------------------------------------------------------------------
def set_split(p: BuildPlan, ds: Any) -> int:
    """Write the split field and ``split:<part>`` tags on both slices where they differ; other tags stay.

    Returns the number of samples changed.
    """
    view = ds.select_group_slices()
    ids, vids, parts, tags = view.values("id"), view.values("video_id"), view.values("split"), view.values("tags")
    new_split, new_tags = {}, {}
    for i, v, old, t in zip(ids, vids, parts, tags, strict=True):
        part = p.video_part.get(v)
        if part != old:
            new_split[i] = part
        keep = [x for x in (t or []) if not x.startswith("split:")] + ([f"split:{part}"] if part else [])
        if keep != list(t or []):
            new_tags[i] = keep
    if new_split:
        view.select(list(new_split)).set_values("split", new_split, key_field="id")
    if new_tags:
        view.select(list(new_tags)).set_values("tags", new_tags, key_field="id")
    return len(set(new_split) | set(new_tags))


def save_views(ds: Any, p: BuildPlan, video_level: bool = False) -> list[str]:
    """(Re)create the saved review views; returns their names."""
    from fiftyone import ViewField as F

    rgb = rgb_view(ds)
    names: list[str] = []
    for old in ds.list_saved_views():
        ds.delete_saved_view(old)

    def save(name: str, view: Any, description: str) -> None:
        ds.save_view(name, view, description=description, overwrite=True)
        names.append(name)

    if p.label_sets:
        primary = p.fields[p.label_sets[0]]
        save("low-confidence", rgb.filter_labels(primary, F("mean_confidence") < LOW_CONFIDENCE),
             f"persons of {p.label_sets[0]} with mean keypoint confidence < {LOW_CONFIDENCE}")  # fmt: skip
        flagged = rgb.match_labels(filter=F("tags").length() > 0, fields=[p.fields[n] for n in p.label_sets])
        save("qa-flagged", flagged, "frames with a QA-flagged person in any label set")
        for other in p.label_sets[1:]:
            f = agreement_field(primary, p.fields[other])
            save(f"disagree-{re.sub(r'[^A-Za-z0-9-]', '-', other)}".lower(),
                 rgb.match(F(f) < DISAGREEMENT_OKS).sort_by(f),
                 f"frames where {other} and {p.label_sets[0]} agree with OKS < {DISAGREEMENT_OKS}")  # fmt: skip
    for part in sorted(set(p.video_part.values())):
        save(f"split-{re.sub(r'[^A-Za-z0-9-]', '-', part)}".lower(), rgb.match(F("split") == part),
             f"{part} frames of split {p.split_name}")  # fmt: skip
    if video_level:
        save("videos", rgb.group_by("video_id", order_by="frame_index"),
             "one item per recording; frames in order with their labels")  # fmt: skip
    return names


def _set_colours(fo: Any, ds: Any, p: BuildPlan, known_sets: dict) -> None:
    """One colour per label field the dataset holds (also those of earlier builds), in a stable order."""
    all_fields = list(dict.fromkeys([*(p.fields[n] for n in p.label_sets), *(v["field"] for v in known_sets.values())]))
    colours = [{"path": f + suffix, "fieldColor": FIELD_COLOURS[i % len(FIELD_COLOURS)]}
               for i, f in enumerate(all_fields) for suffix in LABEL_SUFFIXES]  # fmt: skip
    ds.app_config.color_scheme = fo.ColorScheme(color_by="field", fields=colours)


# ---- the build ---------------------------------------------------------------------------------
def build_dataset(
    root: str | os.PathLike | DatasetRoot,
    labels: Sequence[str] | None = None,
    split: str | None = None,
    db_dir: str | os.PathLike | None = None,
    video_level: bool = False,
    progress: bool = False,
    batch_size: int = 500,
    rebuild: bool = False,
    editable: bool = False,
) -> Any:
    """Build or update the persistent grouped FiftyOne dataset of ``root``; return the ``fo.Dataset``.

    ``labels``: label sets to show (default: all; unknown names raise an error listing the
    available ones). ``split``: split to tag samples with (default: ``default`` or the only one).
    ``db_dir``: FiftyOne database directory (default ``<root>/.fiftyone/db``, or
    ``$GAITDATA_FIFTYONE_DIR/db``). ``video_level``: also save a view with one item per recording
    (frames in order). ``rebuild``: delete the FiftyOne dataset first (review tags are lost).
    ``editable``: also add ``<set>_edit`` skeleton polylines, which FiftyOne's in-App annotation
    can move (its keypoints cannot be edited in the App); once on, it stays on for the dataset.
    The build report is in ``dataset.info['gaitdata']['last_build']``.
    """
    p = plan(root, labels, split)
    from gaitdata.browse.db import connect

    fo = connect(p.root.path, db_dir)
    report = BuildReport(notes=list(p.notes))
    schema = p.root.keypoint_schema()
    ds = _open_dataset(fo, p, schema, rebuild)
    _ensure_fields(fo, ds)
    info = dict(ds.info.get(FIELD_INFO_KEY, {}))
    known_sets: dict[str, dict] = dict(info.get("label_sets", {}))

    videos, frames = _written_frames(p.root)
    keys = list(zip(frames["video_id"].astype(str), frames["frame_index"].astype(int), strict=True))
    have = _drop_stale_frames(ds, p, keys, report)
    report.existing_frames = len(have)
    new_mask = np.array([key not in have for key in keys], dtype=bool)
    sizes, ranges = _frame_geometry(p.root, videos, frames)
    tables = {name: read_labels(p.root, name) for name in p.label_sets}
    fingerprints = {name: file_fingerprint(p.root.label_path(name)) for name in p.label_sets}
    changed = [n for n in p.label_sets if known_sets.get(n, {}).get("fingerprint") != fingerprints[n]]
    if editable and not info.get("editable"):
        changed = list(p.label_sets)  # the existing frames need their editable skeletons too
    editable = editable or bool(info.get("editable"))
    b = _Build(fo, ds, p, schema, tables, sizes, ranges, editable, progress)

    if new_mask.any():
        _add_frames(b, frames[new_mask].reset_index(drop=True), videos, batch_size, report)
    if RGB not in (ds.group_slices or []):
        report.notes.append(f"no written frames in {p.root.frames_path}: the dataset is empty")
        ds.info[FIELD_INFO_KEY] = {**info, "root": str(p.root.path)}
        ds.save()
        return ds
    old_keys = [key for key, is_new in zip(keys, new_mask, strict=True) if not is_new]
    _update_label_sets(b, changed, old_keys, known_sets, fingerprints, report)
    if report.added_frames or changed:
        ds.add_dynamic_sample_fields()  # person_index, score, ... of the keypoints: filterable in the App
    set_split(p, ds)
    _set_agreement(b, refresh=bool(changed or new_mask.any()))
    save_views(ds, p, video_level=video_level)
    _set_colours(fo, ds, p, known_sets)
    info.update(root=str(p.root.path), label_sets=known_sets, fields=p.fields, split=p.split_name, editable=editable,
                last_build={"added_frames": report.added_frames, "existing_frames": report.existing_frames,
                            "removed_frames": report.removed_frames, "updated_label_sets": report.updated_label_sets,
                            "skipped": report.skipped, "notes": report.notes})  # fmt: skip
    ds.info[FIELD_INFO_KEY] = info
    ds.save()
    return ds
