"""A label set written on another machine (e.g. ``gaitdata label --teacher centernet`` on a GPU
machine over a copy of the root) brought into this root.

The label set is ``labels/<name>.parquet``, its metadata inside (or, from a gaitdata before
dataset schema 2, beside it in ``labels/<name>.json``). It fits this root when it was made over the
same extraction: every row names a written frame of this root, and every recording it covers has
rows for all of its written frames. Both are checked, as are the columns, keys and keypoint
lengths; then the table is written with the label-set writer (atomically) and the metadata gains
``copied_from`` (path and SHA-256 of the file read). Its lineage keeps the frame fingerprints it
was made from on the other machine, so ``gaitdata validate`` says whether they are this root's.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from gaitdata.dataset import DatasetRoot, conform, written_frames
from gaitdata.errors import GaitdataError
from gaitdata.labels import LABEL_COLUMNS, check_label_set_name, meta_from_schema, write_labels
from gaitdata.lineage import label_set_lineage
from gaitdata.lock import writes_root


def _frame_list(keys: list[tuple[str, int]], n: int = 3) -> str:
    return ", ".join(f"{v}#{f}" for v, f in keys[:n]) + (" ..." if len(keys) > n else "")


@writes_root("import")
def import_label_set(
    src: str | os.PathLike,
    root: str | os.PathLike | DatasetRoot,
    label_set: str | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Add the label set ``src`` (``<name>.parquet``, or its ``.json``) to ``root`` as ``label_set``
    (default: its own name); returns the written path. One error line when it does not fit."""
    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    r.meta()
    src = Path(src)
    if src.suffix == ".json":
        src = src.with_suffix(".parquet")
    if not src.is_file():
        raise FileNotFoundError(f"label set {src} not found (expected labels/<name>.parquet from another root)")
    name = check_label_set_name(label_set or src.stem)
    dest = r.label_path(name)
    if dest.is_file() and not overwrite:
        if dest.resolve() == src.resolve():
            raise GaitdataError(f"{src} is already label set {name!r} of {r.path}")
        raise GaitdataError(f"label set {name!r} already exists ({dest}); pass --overwrite or choose --label-set")
    raw = src.read_bytes()
    try:
        df = pd.read_parquet(src)
    except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
        raise GaitdataError(f"{src} is not a readable Parquet table ({type(exc).__name__}: {exc})") from exc
    try:
        df = conform(df, LABEL_COLUMNS, str(src))
    except (ValueError, TypeError) as exc:
        raise GaitdataError(f"{src} is not a gaitdata label set: {exc}") from exc
    import pyarrow.parquet as pq

    meta = meta_from_schema(pq.read_schema(src))
    meta_path = src.with_suffix(".json")
    if not meta and meta_path.is_file():
        meta = json.loads(meta_path.read_text())

    schema = r.keypoint_schema()
    k = schema.num_keypoints
    person = df["has_person"].fillna(False).to_numpy(dtype=bool)
    for i in person.nonzero()[0]:
        kp, vis = df.at[i, "keypoints"], df.at[i, "visibility"]
        if kp is None or len(kp) != 3 * k or vis is None or len(vis) != k:
            raise GaitdataError(
                f"{src}: row {i} ({df.at[i, 'video_id']}#{df.at[i, 'frame_index']}) does not hold {k} keypoints "
                f"with visibility ({schema.name}); it was made for another schema"
            )
    if df[["video_id", "frame_index", "person_index"]].duplicated().any():
        raise GaitdataError(f"{src}: duplicate (video_id, frame_index, person_index) rows; it is not one label set")

    frames = r.read_frames()
    ok = written_frames(frames)
    written = set(zip(ok["video_id"].astype(str), ok["frame_index"].astype(int), strict=True))
    keys = sorted(set(zip(df["video_id"].astype(str), df["frame_index"].astype(int), strict=True)))
    stray = [key for key in keys if key not in written]
    if stray:
        raise GaitdataError(
            f"{src}: {len(stray)} labelled frame(s) are not written frames of {r.path} (e.g. {_frame_list(stray)}); "
            f"it was made over another extraction: label this root instead, or extract with the same settings"
        )
    have = set(keys)
    for vid in sorted({v for v, _ in keys}):
        want = sorted((v, f) for v, f in written if v == vid)
        missing = [key for key in want if key not in have]
        if missing:
            raise GaitdataError(
                f"{src}: covers {len(want) - len(missing)} of {len(want)} written frames of {vid} "
                f"(missing e.g. {_frame_list(missing)}); the other root's frames differ or its run did not finish"
            )
    meta["copied_from"] = {"path": str(src.resolve()), "sha256": hashlib.sha256(raw).hexdigest()}
    made_on = (meta.get("lineage") or {}).get("frames")
    command = ["gaitdata", "import", "labels", str(src.resolve()), "--root", "{root}", "--label-set", name, "--overwrite"]
    lineage = label_set_lineage(r, df["video_id"].astype(str).unique(), command=command, frames=made_on)
    return write_labels(r, name, df, meta, lineage=lineage)
