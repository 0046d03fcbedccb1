"""Upgrade a dataset root written by an older gaitdata to the current layout, in place.

``migrate(root)`` applies one step per schema version, then records the new version in
``dataset.json`` (with a ``migrations`` entry). Each step rewrites one file at a time with
atomic renames and can run again over its own partial result, and the version is written last:
an interrupted migration leaves a root that reads as the old version and finishes on a rerun.

Steps:

* **1 -> 2**: label-set metadata moves from ``labels/<set>.json`` into the parquet file, every
  label set is rewritten with the one Arrow schema (``qa_flags`` as ``list<string>``), and the
  resumable parts of labelling runs move from ``labels/.parts/`` to ``.gaitdata/labels/``, so
  that ``labels/`` holds nothing but label-set files. Label sets written before lineage was
  recorded stay without it ("unknown lineage" in ``gaitdata validate``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gaitdata._version import __version__
from gaitdata.dataset import SCHEMA_VERSION, DatasetRoot, conform, utc_now
from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_json
from gaitdata.labels import LABEL_COLUMNS, labels_table, meta_from_schema, work_dir, write_label_file
from gaitdata.lock import writes_root


@dataclass(frozen=True)
class MigrationReport:
    root: Path
    from_version: int
    to_version: int
    changes: tuple[str, ...] = ()

    @property
    def migrated(self) -> bool:
        return self.from_version != self.to_version


def _labels_v1_to_v2(root: DatasetRoot) -> list[str]:
    import pyarrow.parquet as pq

    changes: list[str] = []
    labels = root.labels_dir
    if not labels.is_dir():
        return changes
    for path in sorted(labels.glob("*.parquet")):
        name = path.stem
        sidecar = labels / f"{name}.json"
        meta = meta_from_schema(pq.read_schema(path))
        if sidecar.is_file():
            try:
                meta = json.loads(sidecar.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise GaitdataError(f"{sidecar}: unreadable label-set metadata ({exc}); fix or delete it, then rerun") from exc
        df = conform(pd.read_parquet(path), LABEL_COLUMNS, str(path))
        write_label_file(root, name, labels_table(df, name), {k: v for k, v in meta.items() if k != "fingerprint"})
        changes.append(f"label set {name}: metadata and rows in one file, fixed schema")
        if sidecar.is_file():
            sidecar.unlink()
    parts = labels / ".parts"
    if parts.is_dir():
        dest = work_dir(root) / "labels"
        dest.mkdir(parents=True, exist_ok=True)
        for d in sorted(p for p in parts.iterdir() if p.is_dir()):
            if (dest / d.name).exists():
                shutil.rmtree(d)
            else:
                os.replace(d, dest / d.name)
        shutil.rmtree(parts)
        changes.append(f"labelling parts moved to {dest}")
    leftovers = [p for p in labels.iterdir() if not (p.is_file() and p.suffix == ".parquet")]
    if leftovers:
        keep = work_dir(root) / "migrated" / "labels"
        keep.mkdir(parents=True, exist_ok=True)
        for p in leftovers:
            if p.suffix == ".tmp":
                p.unlink()  # an interrupted write of the old layout
            else:
                os.replace(p, keep / p.name)
        changes.append(f"{len(leftovers)} other file(s) moved out of labels/ to {keep}")
    return changes


STEPS: dict[int, Callable[[DatasetRoot], list[str]]] = {1: _labels_v1_to_v2}


@writes_root("migrate")
def migrate(root: DatasetRoot | str | os.PathLike) -> MigrationReport:
    """Upgrade ``root`` in place to :data:`gaitdata.dataset.SCHEMA_VERSION` (nothing to do when current)."""
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    if not r.meta_path.is_file():
        r.meta()  # the usual "not a dataset root" error
    try:
        meta = json.loads(r.meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GaitdataError(f"{r.meta_path} is not valid JSON ({exc}); restore it or re-extract.") from exc
    version = meta.get("schema_version")
    if version == SCHEMA_VERSION:
        return MigrationReport(r.path, version, version)
    if not isinstance(version, int) or version not in STEPS or version > SCHEMA_VERSION:
        raise GaitdataError(
            f"{r.meta_path}: dataset schema_version {version!r} cannot be migrated by gaitdata {__version__} "
            f"(it reads {SCHEMA_VERSION}); upgrade gaitdata or re-extract"
        )
    if not os.access(r.path, os.W_OK):
        raise GaitdataError(f"dataset root {r.path} is not writable; migrate it as its owner")
    changes: list[str] = []
    for v in range(version, SCHEMA_VERSION):
        changes += STEPS[v](r)
    meta["schema_version"] = SCHEMA_VERSION
    meta.setdefault("migrations", []).append(
        {"from": version, "to": SCHEMA_VERSION, "tool_version": __version__, "at": utc_now()}
    )
    atomic_write_json(r.meta_path, meta)
    return MigrationReport(r.path, version, SCHEMA_VERSION, tuple(changes))
