"""The split record and its file, and the inputs a split is computed from.

A :class:`Split` is saved as ``<root>/splits/<name>.json`` (see :meth:`Split.to_dict`) and read back
with :func:`load_split`. :func:`video_table` is what a split is computed from (one row per ok
recording with its written-frame and labelled-person counts) and :func:`inputs_fingerprint` its
digest, stored in the split so that an audit can tell when the root changed under it. Both making
a split (:mod:`splits.core`) and auditing one (:mod:`splits.audit`) build on this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from gaitdata.dataset import DatasetRoot, written_frames
from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_text

SPLIT_FORMAT = "gaitdata-split"
SPLIT_FORMAT_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")



def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=3)


def check_split_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise GaitdataError(f"split name {name!r} must be letters, digits, '_', '-', '.' (no slashes)")
    return name


def split_path(root: DatasetRoot | str | os.PathLike, name: str) -> Path:
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    return r.splits_dir / f"{check_split_name(name)}.json"


def list_splits(root: DatasetRoot | str | os.PathLike) -> list[str]:
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    return sorted(p.stem for p in r.splits_dir.glob("*.json")) if r.splits_dir.is_dir() else []


# ------------------------------------------------------------------------------------------------
# the Split record
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """A saved assignment of videos (and subjects) to the named *parts* of a split (train/val/test).

    ``members[part] = {"subjects": (...), "videos": (...)}``. For k-fold splits the parts are
    ``fold0 .. fold{K-1}``; :meth:`fold` gives the (train, test) videos of one fold. (The split file
    keeps its own keys: ``split_names`` lists the parts and ``splits`` holds their members.)
    """

    name: str
    kind: str  # holdout | kfold
    unit: str  # subject | video
    weight: str  # frames | labelled_persons
    part_names: tuple[str, ...]
    members: dict[str, dict[str, tuple[str, ...]]]
    params: dict[str, Any]
    counts: dict[str, dict[str, Any]]
    inputs: dict[str, Any]
    content_hash: str
    audit_summary: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    hash_ok: bool = True

    # ---- queries -------------------------------------------------------------------------------
    def _check(self, part: str) -> str:
        if part not in self.members:
            raise GaitdataError(
                f"split {self.name!r} has no part {part!r}; it has: {', '.join(self.part_names)}"
            )
        return part

    def videos(self, part: str) -> list[str]:
        return list(self.members[self._check(part)]["videos"])

    def subjects(self, part: str) -> list[str]:
        return list(self.members[self._check(part)]["subjects"])

    def all_videos(self) -> list[str]:
        return sorted({v for m in self.members.values() for v in m["videos"]})

    def part_of_video(self, video_id: str) -> str | None:
        """The part holding ``video_id`` (the first one, should a hand-edited file list it twice)."""
        for s in self.part_names:
            if video_id in self.members[s]["videos"]:
                return s
        return None

    def video_to_part(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for s in self.part_names:
            for v in self.members[s]["videos"]:
                out.setdefault(v, s)
        return out

    @property
    def folds(self) -> int | None:
        return len(self.part_names) if self.kind == "kfold" else None

    def fold(self, k: int) -> tuple[list[str], list[str]]:
        """(train videos, test videos) of fold ``k`` of a k-fold split."""
        if self.kind != "kfold":
            raise GaitdataError(f"split {self.name!r} is a {self.kind} split, not k-fold; use .videos(part)")
        if not 0 <= k < len(self.part_names):
            raise GaitdataError(f"split {self.name!r} has folds 0..{len(self.part_names) - 1}, not {k}")
        test = self.videos(self.part_names[k])
        train = sorted(
            v for s in self.part_names if s != self.part_names[k] for v in self.members[s]["videos"]
        )
        return train, test

    # ---- former names (deprecated) -------------------------------------------------------------
    @property
    def split_names(self) -> tuple[str, ...]:
        """Deprecated: use :attr:`part_names`."""
        _deprecated("Split.split_names", "Split.part_names")
        return self.part_names

    def split_of_video(self, video_id: str) -> str | None:
        """Deprecated: use :meth:`part_of_video`."""
        _deprecated("Split.split_of_video", "Split.part_of_video")
        return self.part_of_video(video_id)

    def video_to_split(self) -> dict[str, str]:
        """Deprecated: use :meth:`video_to_part`."""
        _deprecated("Split.video_to_split", "Split.video_to_part")
        return self.video_to_part()

    # ---- serialisation -------------------------------------------------------------------------
    def content(self) -> dict[str, Any]:
        """Everything the content hash covers (membership, parameters, counts, inputs)."""
        return {
            "format": SPLIT_FORMAT,
            "format_version": SPLIT_FORMAT_VERSION,
            "name": self.name,
            "kind": self.kind,
            "unit": self.unit,
            "weight": self.weight,
            "params": self.params,
            "split_names": list(self.part_names),
            "splits": {
                s: {"subjects": list(self.members[s]["subjects"]), "videos": list(self.members[s]["videos"])}
                for s in self.part_names
            },
            "counts": self.counts,
            "inputs": self.inputs,
        }

    def to_dict(self) -> dict[str, Any]:
        d = self.content()
        d["content_hash"] = self.content_hash
        d["audit"] = self.audit_summary
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def content_hash(content: dict[str, Any]) -> str:
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def split_from_dict(d: dict[str, Any], path: Path | None = None) -> Split:
    where = str(path) if path else "split"
    if d.get("format") != SPLIT_FORMAT:
        raise GaitdataError(
            f"{where} is not a gaitdata split file (format {d.get('format')!r}); recreate it with gaitdata split"
        )
    if d.get("format_version") != SPLIT_FORMAT_VERSION:
        raise GaitdataError(
            f"{where}: split format version {d.get('format_version')} is not supported; recreate it with gaitdata split"
        )
    try:
        names = tuple(d["split_names"])
        members = {
            s: {
                "subjects": tuple(d["splits"][s].get("subjects", [])),
                "videos": tuple(d["splits"][s]["videos"]),
            }
            for s in names
        }
        sp = Split(
            name=d["name"], kind=d["kind"], unit=d["unit"], weight=d["weight"], part_names=names,
            members=members, params=d.get("params", {}), counts=d.get("counts", {}), inputs=d.get("inputs", {}),
            content_hash=d.get("content_hash", ""), audit_summary=d.get("audit", {}), path=path,
        )  # fmt: skip
    except (KeyError, TypeError) as exc:
        raise GaitdataError(
            f"{where}: malformed split file (missing {exc}); recreate it with gaitdata split"
        ) from exc
    return replace(sp, hash_ok=sp.content_hash == content_hash(sp.content()))


def load_split(root: DatasetRoot | str | os.PathLike, name: str) -> Split:
    """Read ``<root>/splits/<name>.json``. A file edited by hand loads with ``hash_ok = False``."""
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    path = split_path(r, name)
    if not path.is_file():
        have = list_splits(r)
        raise GaitdataError(
            f"split {name!r} not found ({path}); available: {', '.join(have) or 'none'}. "
            f"Create it with: gaitdata split {r.path} --name {name}"
        )
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GaitdataError(f"{path} is not valid JSON ({exc}); recreate it with gaitdata split") from exc
    return split_from_dict(d, path)


def save_split(root: DatasetRoot | str | os.PathLike, split: Split) -> Path:
    """Write the split atomically to ``<root>/splits/<name>.json``."""
    path = split_path(root, split.name)
    atomic_write_text(path, split.to_json())
    return path


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------
def video_table(root: DatasetRoot, labels: str | None = None) -> pd.DataFrame:
    """One row per ok video: metadata columns, ``frames`` (written frames) and, with ``labels``,
    ``labelled_frames`` and ``labelled_persons``."""
    videos = root.read_videos()
    videos = videos[videos["status"] == "ok"].copy()
    if videos.empty:
        raise GaitdataError(
            f"{root.videos_path}: no recordings with status ok to split. Extract recordings first: "
            f"gaitdata extract RECORDINGS --out {root.path}"
        )
    n_frames = written_frames(root.read_frames()).groupby("video_id").size()
    videos["frames"] = videos["video_id"].map(n_frames).fillna(0).astype("int64")
    if labels is not None:
        from gaitdata.labels import read_labels

        lab = read_labels(root, labels)
        persons = lab[lab["has_person"].fillna(False).astype(bool)].groupby("video_id").size()
        lframes = lab.drop_duplicates(["video_id", "frame_index"]).groupby("video_id").size()
        videos["labelled_persons"] = videos["video_id"].map(persons).fillna(0).astype("int64")
        videos["labelled_frames"] = videos["video_id"].map(lframes).fillna(0).astype("int64")
    return videos.sort_values("video_id", kind="stable").reset_index(drop=True)


def inputs_fingerprint(videos: pd.DataFrame, labels: str | None) -> str:
    """Digest of what a split was computed from (ok recordings, their metadata and weights)."""
    cols = ["video_id", "subject", "view", "condition", "frames"]
    return _fingerprint(videos, cols + (["labelled_persons"] if labels is not None else []))


def _fingerprint(videos: pd.DataFrame, cols: list[str]) -> str:
    h = hashlib.sha256()
    for row in videos[cols].itertuples(index=False):
        h.update(
            json.dumps([None if pd.isna(x) else (x if isinstance(x, str) else int(x)) for x in row]).encode()
        )
    return "sha256:" + h.hexdigest()[:32]
