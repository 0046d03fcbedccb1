"""What a browse build will do: the FiftyOne dataset name, label-set fields and split of a root.

Validated before the database starts; nothing here imports FiftyOne.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError

RGB, DEPTH = "rgb", "depth"
META_COLS = ("subject", "session", "view", "condition")
_RESERVED = {
    "id", "filepath", "tags", "metadata", "group", "media_type", "created_at", "last_modified_at",
    "depth", "split", "video_id", "subject", "session", "view", "condition", "frame_index",
    "colour_frame_number", "colour_ts_ms", "depth_ts_ms", "frames",
}  # fmt: skip


@dataclass(frozen=True)
class BuildPlan:
    """What one build will do (validated before the database starts)."""

    root: DatasetRoot
    name: str
    label_sets: tuple[str, ...]
    fields: dict[str, str]  # label set -> keypoints field (boxes: "<field>_boxes")
    split_name: str | None
    video_part: dict[str, str]  # video_id -> its part of the split (the samples' "split" field)
    notes: tuple[str, ...] = ()


def dataset_name(root: DatasetRoot) -> str:
    """``gaitdata-<root folder>-<8 hex of the absolute path>``: stable per root, unique per path."""
    digest = hashlib.sha1(str(root.path).encode()).hexdigest()[:8]
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", root.path.name).strip("-") or "root"
    return f"gaitdata-{base}-{digest}"


def field_name(label_set: str) -> str:
    """FiftyOne field for a label set: dots/dashes become underscores; reserved names get a prefix."""
    f = re.sub(r"[^A-Za-z0-9_]", "_", label_set)
    if f in _RESERVED or f[0].isdigit() or f.endswith("_boxes") or f.startswith("oks_"):
        f = "labels_" + f
    return f


def video_part_map(root: DatasetRoot, split: str | None) -> tuple[str | None, dict[str, str]]:
    """(split name, video_id -> part) for ``split``; ``None`` picks ``default`` or the only split."""
    from splits.record import load_split

    have = sorted(p.stem for p in root.splits_dir.glob("*.json")) if root.splits_dir.is_dir() else []
    if split is None:
        if "default" in have:
            split = "default"
        elif len(have) == 1:
            split = have[0]
        else:
            return None, {}
    if split not in have:
        raise GaitdataError(
            f"split {split!r} not found in {root.splits_dir}; available: {', '.join(have) or 'none'}. "
            f"Create one with: gaitdata split {root.path}"
        )
    return split, load_split(root, split).video_to_part()


def plan(root: str | os.PathLike | DatasetRoot, labels: Sequence[str] | None = None, split: str | None = None) -> BuildPlan:
    """Validate the inputs of a build (root, label sets, split) without touching FiftyOne."""
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    r.meta()
    available = r.label_sets()
    notes: list[str] = []
    if labels is None:
        chosen = list(available)
    else:
        chosen = list(dict.fromkeys(labels))
        unknown = [name for name in chosen if name not in available]
        if unknown:
            raise GaitdataError(
                f"label set(s) {', '.join(map(repr, unknown))} not found in {r.labels_dir}; available: "
                f"{', '.join(available) or 'none'}"
            )
    if not chosen:
        notes.append(f"no label sets in {r.labels_dir}: browsing frames only (label them with: gaitdata label {r.path})")
    fields = {name: field_name(name) for name in chosen}
    clash = [f for f in set(fields.values()) if list(fields.values()).count(f) > 1]
    if clash:
        raise GaitdataError(f"label sets {sorted(n for n, f in fields.items() if f in clash)} map to one field; rename one")
    split_name, vmap = video_part_map(r, split)
    if split_name is None:
        notes.append("no split selected: no split field or split views (create one with: gaitdata split ROOT)")
    return BuildPlan(r, dataset_name(r), tuple(chosen), fields, split_name, vmap, tuple(notes))
