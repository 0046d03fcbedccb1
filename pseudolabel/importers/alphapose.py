"""AlphaPose's own results files imported as a label set.

How the files are read and their image ids matched to frames: :mod:`pseudolabel.alphapose_results`.

**The label set** (:func:`import_alphapose`) has the contract of one written by ``gaitdata label``:
every written frame of every recording named gets rows (an explicit no-person row where AlphaPose
wrote nothing), persons ordered by score, tracks, COCO visibility from ``vis_thresholds``, the gait
subject, QA flags (depth-based ones when the recording has depth) and the same metadata keys.
Per person:

* ``keypoints``: x and y exactly as written; the confidence clipped into [0, 1] (the label
  contract); a joint whose x or y is not finite gets confidence 0 (so visibility 0). How many
  confidences were clipped, and the largest, is recorded in the metadata.
* ``raw_score``: AlphaPose's proposal score as written. ``score`` (in [0, 1]): when every person of
  the file decomposes as AlphaPose's formula says (``s = score - mean(c) - 1.25 * max(c)`` within
  [0, 1], to 1e-3), the detector score ``s`` is recovered and ``score = mean of the 17 clipped
  confidences * s`` (what ``gaitdata label --teacher alphapose`` computes, so both compare);
  otherwise ``score = min(raw / 3.25, 1)`` for the whole file. The method is in the metadata.
* ``bbox``: ``box`` (or ``bbox``) as written; without one, the extent of the joints whose
  confidence reaches ``vis_thresholds[0]``.

Provenance (file path, SHA-256, variant, counts, score method) is in the metadata under ``source``.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gaitdata._version import __version__
from gaitdata.dataset import DatasetRoot, conform, utc_now
from gaitdata.errors import GaitdataError
from gaitdata.imagenames import FrameMap
from gaitdata.labels import (
    LABEL_COLUMNS,
    check_label_set_name,
    decode_keypoints,
    encode_keypoints,
    write_labels,
)
from gaitdata.lock import writes_root
from gaitdata.schema import COCO17
from pseudolabel.alphapose_results import (
    RESULTS_NAME,
    Person,
    ResultsFile,
    clip_confidences,
    find_sources,
    match_frames,
    normalised_score,
    person_box,
    read_results,
    score_method,
)
from pseudolabel.runner import RecordingStats, RecordingTotals, recording_stats

TEACHER = "alphapose"


@dataclass(frozen=True)
class ImportSummary(RecordingTotals):
    label_set: str
    path: Path
    files: tuple[dict, ...]  # each file's description (source metadata)
    recordings: tuple[RecordingStats, ...]


def _person_rows(
    vid: str, frames: list[int], persons: list[tuple[int, Person]], method: str, min_conf: float
) -> tuple[list[dict], int, float]:
    """Label rows of one recording before post-processing; also (clipped confidences, max raw confidence)."""
    by_frame: dict[int, list[Person]] = {}
    for fi, p in persons:
        by_frame.setdefault(fi, []).append(p)
    rows: list[dict] = []
    clipped, top = 0, float("-inf")
    for fi in frames:
        found = by_frame.get(fi, [])
        if not found:
            rows.append({
                "video_id": vid, "frame_index": fi, "person_index": -1, "has_person": False,
                "teacher": TEACHER, "weights_hash": None, "qa_flags": [], "keypoints": None, "visibility": None,
            })  # fmt: skip
            continue
        ranked = []
        for p in found:
            kp = np.array(p.keypoints, dtype=np.float64)
            raw_c = kp[:, 2]
            conf = clip_confidences(kp)
            clipped += int(np.count_nonzero(np.isfinite(raw_c) & (raw_c != conf)))
            if np.isfinite(raw_c).any():
                top = max(top, float(np.nanmax(raw_c)))
            kp[:, 2] = conf
            box = person_box(p, min_conf)
            ranked.append((normalised_score(p, method), box, kp, p))
        ranked.sort(key=lambda r: (-r[0], r[1][0] if r[1] is not None else np.inf, r[3].entry))
        for k, (score, box, kp, p) in enumerate(ranked):
            x, y, w, h = box if box is not None else (np.nan,) * 4
            rows.append({
                "video_id": vid, "frame_index": fi, "person_index": k, "has_person": True,
                "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h, "score": score,
                "raw_score": p.score if np.isfinite(p.score) else None,
                "keypoints": encode_keypoints(kp),
                "teacher": TEACHER, "weights_hash": None, "qa_flags": [],
            })  # fmt: skip
    return rows, clipped, top


def _depth_features(
    root: DatasetRoot, video: pd.Series, frames: pd.DataFrame, df: pd.DataFrame, cfg: Any, workers: int = 2
) -> tuple[np.ndarray | None, list[list[int]] | None]:
    """Per row: torso depth (m) and joints on the background depth, as ``gaitdata label`` computes them."""
    from pseudolabel.boxes import read_depth, recording_background
    from pseudolabel.postprocess import depth_features

    has_depth = frames["depth_path"].notna().any()
    if not has_depth or not (cfg.qa or cfg.select_subject):
        return None, None
    scale = video.get("depth_scale")
    depth_scale = float(scale) if scale is not None and not pd.isna(scale) else 0.001
    background = recording_background(root, frames) if cfg.qa else None
    depth_of = dict(zip(frames["frame_index"].astype(int), frames["depth_path"], strict=True))
    person = df["has_person"].fillna(False).to_numpy(dtype=bool)
    need = sorted({int(f) for f, p in zip(df["frame_index"], person, strict=True) if p and not pd.isna(depth_of.get(int(f)))})
    with ThreadPoolExecutor(max_workers=max(int(workers), 1), thread_name_prefix="gaitdata-depth") as ex:
        depths = dict(zip(need, ex.map(lambda f: read_depth(root.abspath(depth_of[f])), need), strict=True))
    depth_m = np.full(len(df), np.nan)
    bg: list[list[int]] = [[] for _ in range(len(df))]
    fis = df["frame_index"].astype(int).tolist()
    kps = df["keypoints"].tolist()
    for i in np.flatnonzero(person):
        d = depths.get(fis[i])
        if d is None:
            continue
        kp = decode_keypoints(kps[i], COCO17.num_keypoints)
        kp[~(np.isfinite(kp[:, 0]) & np.isfinite(kp[:, 1])), :2] = -1.0  # off the image: no depth
        depth_m[i], bg[i] = depth_features(kp, d, background, depth_scale, cfg)
    return depth_m, bg


@writes_root("import")
def import_alphapose(
    path: str | os.PathLike,
    root: str | os.PathLike | DatasetRoot,
    label_set: str = "alphapose",
    *,
    video: str | None = None,
    overwrite: bool = False,
    vis_thresholds: tuple[float, float] = (0.2, 0.5),
    smooth: str | None = None,
    select_subject: bool = True,
    qa: bool = True,
    postprocess: Any = None,
    body17: bool = False,
    workers: int = 2,
) -> ImportSummary:
    """Import AlphaPose results (a file, or a folder of ``<video_id>/alphapose-results.json`` or
    ``<video_id>.json``) as label set ``label_set`` of ``root`` (see the module docstring).

    ``postprocess`` (a :class:`~pseudolabel.postprocess.PostprocessConfig`) overrides
    ``vis_thresholds``, ``smooth``, ``select_subject`` and ``qa``, as in ``gaitdata label``.
    Nothing is written unless every file is read and matched.
    """
    from pseudolabel.postprocess import PostprocessConfig, postprocess_recording

    r = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    r.meta()
    name = check_label_set_name(label_set)
    if r.label_path(name).is_file() and not overwrite:
        raise GaitdataError(f"label set {name!r} already exists ({r.label_path(name)}); pass --overwrite or choose --label-set")
    cfg = postprocess or PostprocessConfig(
        vis_thresholds=tuple(vis_thresholds), smooth=smooth, select_subject=select_subject, qa=qa
    )
    fmap = FrameMap(r)
    if not fmap.videos:
        raise GaitdataError(f"{r.path} has no extracted frames; run: gaitdata extract RECORDINGS --out {r.path}")

    # read and match everything before writing anything
    per_video: dict[str, list[tuple[int, Person]]] = {}
    methods: dict[str, str] = {}
    owner: dict[str, Path] = {}
    files: list[tuple[ResultsFile, str | None, str, list[str]]] = []
    for f, vid in find_sources(path, fmap, video):
        rf = read_results(f, body17=body17)
        keys = match_frames(rf, fmap, vid)
        vids = sorted({v for v, _ in keys} | ({vid} if vid is not None else set()))
        if not vids:
            raise GaitdataError(
                f"{f} lists no person and names no recording; pass --video VIDEO_ID, or keep it as "
                f"<video_id>/{RESULTS_NAME} so every frame of that recording is imported as 'no person'"
            )
        for v in vids:
            if v in owner:
                raise GaitdataError(f"recording {v} appears in two results files: {owner[v]} and {f}; import one of them")
            owner[v] = f
        method = score_method(rf)
        for p, (v, fi) in zip(rf.persons, keys, strict=True):
            per_video.setdefault(v, []).append((fi, p))
        for v in vids:
            methods[v] = method
            per_video.setdefault(v, [])
        files.append((rf, vid, method, vids))

    videos = r.read_videos().set_index("video_id", drop=False)
    parts: list[pd.DataFrame] = []
    stats = []
    clipped, top = 0, float("-inf")
    for vid in sorted(per_video):
        fr = fmap.frames[fmap.frames["video_id"] == vid].reset_index(drop=True)
        rows, n_clip, t = _person_rows(vid, fr["frame_index"].astype(int).tolist(), per_video[vid], methods[vid], cfg.vis_thresholds[0])
        clipped += n_clip
        top = max(top, t)
        df = conform(pd.DataFrame(rows), LABEL_COLUMNS, f"labels of {vid}")
        v = videos.loc[vid]
        height = float(v["height"]) if not pd.isna(v.get("height")) else float("nan")
        if np.isnan(height):
            import cv2

            im = cv2.imread(str(r.abspath(str(fr["rgb_path"].iloc[0]))), cv2.IMREAD_UNCHANGED)
            height = float(im.shape[0]) if im is not None else 480.0
        fps = float(v["fps"]) if not pd.isna(v.get("fps")) else 30.0
        depth_m, bg = _depth_features(r, v, fr, df, cfg, workers)
        df = postprocess_recording(
            df, n_frames=len(fr), image_height=height, fps=fps, depth_m=depth_m, background_joints=bg, cfg=cfg,
        )  # fmt: skip
        df = conform(df, LABEL_COLUMNS, f"labels of {vid}")
        parts.append(df)
        stats.append(recording_stats(df, resumed=False, num_keypoints=COCO17.num_keypoints))

    merged = pd.concat(parts, ignore_index=True)
    described = [{**rf.describe(), "recording": vid, "recordings": vids, "score_method": method}
                 for rf, vid, method, vids in files]  # fmt: skip
    summary = ImportSummary(label_set=name, path=r.label_path(name), files=tuple(described), recordings=tuple(stats))
    meta = json.loads(json.dumps({
        "label_set": name, "teacher": TEACHER, "teacher_config": None, "teacher_options": {}, "weights_hash": None,
        "weights_path": None, "device": None, "batch_size": None,
        "boxes": {"proposer": "alphapose", "note": "AlphaPose's own detector; bbox is the results' box field"},
        "vis_thresholds": list(cfg.vis_thresholds), "postprocess": cfg.to_dict(), "keypoint_schema": COCO17.name,
        "tool": "gaitdata", "tool_version": __version__, "created_at": utc_now(), **summary.meta(),
        "source": {
            "format": "alphapose-results",
            "files": described,
            "body17": bool(body17),
            "score": {
                "raw_score": "AlphaPose's proposal score as written: mean(c) + detector score + 1.25 * max(c)",
                "detector": "score = mean of the 17 clipped joint confidences * detector score recovered from raw_score",
                "scaled": "score = min(raw_score / 3.25, 1) (the file's scores do not decompose)",
                "mean_confidence": "score = mean of the 17 clipped joint confidences (the file has no scores)",
            },
            "confidences_clipped": clipped,
            "max_raw_confidence": top if np.isfinite(top) else None,
        },
    }, default=str))  # fmt: skip
    write_labels(r, name, merged, meta)
    return summary
