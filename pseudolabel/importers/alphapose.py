"""AlphaPose's own results files, read as they are: into a label set, or as person boxes.

**The format** (AlphaPose ``scripts/demo_inference.py``; written by ``write_json`` in
``alphapose/utils/pPose_nms.py``; described in ``docs/output.md``). ``--outdir OUT`` receives
``OUT/alphapose-results.json``, a JSON list with one object per detected person::

    {"image_id": "000123.jpg", "category_id": 1, "keypoints": [x1, y1, c1, ..., xK, yK, cK],
     "score": 2.71, "box": [x, y, w, h], "idx": ...}

* ``image_id`` is the input image's *file name* (``os.path.basename``); with ``--eval`` it is an
  integer (the digits after the last ``_`` of the name); with ``--video`` the frames are named
  ``<k>.jpg``, ``k`` counting decoded frames from 0. Images where nobody was found have no entry.
* ``keypoints``: K joints; K = 17 (COCO order) for the COCO models, 26 for Halpe-26, 136 for
  Halpe-136 full body, 133 for COCO-WholeBody (in all three the first 17 are the COCO-17 body
  joints in COCO order). ``c`` is the joint's heatmap peak: normally 0..1, a little above 1 is
  possible (the peak of a regressed heatmap is not bounded).
* ``score`` is AlphaPose's *proposal score* ``mean(c) + s + 1.25 * max(c)``, ``s`` the detector's
  box score: 0..3.25 when every term is at most 1 (hence not in [0, 1]).
* ``box`` is the detector's box ``[x, y, w, h]``; ``idx`` the detection or tracking id(s)
  (an integer with ``--pose_track``/``--pose_flow``, a list of merged detection ids otherwise).
* AlphaPose's detection files (``--detfile``) are lists of ``{image_id, bbox, score[, idx]}``.
* ``--format cmu`` / ``--format open`` write a different layout (an object per image with
  ``bodies``/``people``, 18 joints with a neck, no person score, no box): refused here.

**Frames.** ``image_id`` is matched to a written frame of the root: a path relative to the root
(``frames/<video_id>/rgb/000123.jpg``), any path ending in ``<video_id>/rgb/<name>`` or
``<video_id>/<name>``, or a bare file name (or integer) within the file's recording. The recording
of a file is ``video`` (``--video``), else the name of the folder holding the file (``<video_id>/
alphapose-results.json``) or the file's stem (``<video_id>.json``) when that is a video id, else
the root's only recording. A bare name is the frame's file name (``000123.jpg``) or, failing that,
a frame number (``123.jpg`` from AlphaPose's ``--video`` mode, or an ``--eval`` integer).

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

import hashlib
import json
import os
from collections.abc import Iterable
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
from gaitdata.labels import LABEL_COLUMNS, check_label_set_name, write_labels
from gaitdata.lock import writes_root
from gaitdata.schema import COCO17

RESULTS_NAME = "alphapose-results.json"
SCORE_MAX = 3.25  # mean(c) + box score + 1.25 * max(c), every term at most 1
DECOMPOSE_TOL = 1e-3
TEACHER = "alphapose"
# keypoint counts AlphaPose's models write, and what they are
LAYOUTS: dict[int, str] = {
    16: "MPII-16",
    17: "COCO-17",
    18: "CMU/OpenPose-18",
    26: "Halpe-26",
    133: "COCO-WholeBody-133",
    136: "Halpe-136 full body",
}
BODY17_LAYOUTS = (26, 133, 136)  # their first 17 joints are COCO-17, in COCO order


# ---- reading a file -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    """One entry of an AlphaPose results or detection file (category person)."""

    entry: int  # position in the file's list
    image_id: str | int
    keypoints: np.ndarray | None  # (17, 3) float64 x, y, c as written; None in a detection file
    confidences: np.ndarray | None  # (K,) every joint's c as written (K >= 17), for the score formula
    score: float  # as written; NaN when absent
    box: tuple[float, float, float, float] | None  # x, y, w, h ("box" or "bbox"); None when absent
    idx: Any = None  # AlphaPose's idx as written


@dataclass(frozen=True)
class ResultsFile:
    path: Path
    sha256: str
    variant: str  # "results" (poses) or "detections" (boxes only)
    persons: tuple[Person, ...]
    n_entries: int
    n_other_categories: int
    n_keypoints: int | None  # K as written (17, or 26/133/136 reduced to 17 with body17)
    image_ids: str  # "names", "paths", "integers" or "mixed"

    def describe(self) -> dict:
        return {
            "path": str(self.path.resolve()), "sha256": self.sha256, "format": "alphapose", "variant": self.variant,
            "keypoints_written": self.n_keypoints,
            "layout": LAYOUTS.get(self.n_keypoints, f"{self.n_keypoints} joints") if self.n_keypoints else None,
            "entries": self.n_entries, "persons": len(self.persons), "other_categories": self.n_other_categories,
            "image_ids": self.image_ids,
            "tracking_ids": any(_track_id(p.idx) is not None for p in self.persons),
        }  # fmt: skip


def _track_id(idx: Any) -> int | None:
    if isinstance(idx, bool) or not isinstance(idx, int | float):
        return None
    return int(idx) if float(idx).is_integer() else None


def _numbers(value: Any, what: str, path: Path, entry: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 1:
        raise GaitdataError(f"{path}: entry {entry}: {what} must be a flat list of numbers, got {str(value)[:60]}")
    return arr


def _refuse_object(d: dict, path: Path) -> GaitdataError:
    keys = list(d)[:5]
    if "images" in d and "annotations" in d:
        return GaitdataError(f"{path} is a COCO dataset file, not AlphaPose results; import it with: gaitdata import coco {path}")
    layouts = {"bodies": ("cmu", "CMU-Pose"), "people": ("open", "OpenPose")}
    found = next((k for k in layouts if k in d), None)
    if found is None:
        found = next((k for v in d.values() if isinstance(v, dict) for k in layouts if k in v), None)
    if found is not None:
        flag, name = layouts[found]
        return GaitdataError(
            f"{path} is AlphaPose '--format {flag}' output ({name} layout: per image '{found}' with 18 joints incl. a neck, "
            f"no person score or box), which gaitdata does not import; rerun AlphaPose without --format "
            f"(the default writes the COCO-style {RESULTS_NAME}) and import that"
        )
    return GaitdataError(
        f"{path}: expected AlphaPose results, a JSON list of {{image_id, category_id, keypoints, score, box}}; "
        f"got an object with keys {keys}"
    )


def read_results(path: str | os.PathLike, *, body17: bool = False, need_keypoints: bool = True) -> ResultsFile:
    """Read and check one AlphaPose results (or, with ``need_keypoints=False``, detection) file.

    Raises :class:`GaitdataError` with one line for: invalid JSON, another layout (COCO dataset,
    ``--format cmu/open``), entries that are not person results, a keypoint count other than 17
    (26/133/136 are reduced to their first 17 joints with ``body17``), bad boxes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AlphaPose results file {path} not found")
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GaitdataError(f"{path} is not valid JSON ({exc}); expected AlphaPose's {RESULTS_NAME}") from exc
    if isinstance(data, dict):
        raise _refuse_object(data, path)
    if not isinstance(data, list):
        raise GaitdataError(
            f"{path}: expected AlphaPose results, a JSON list of {{image_id, category_id, keypoints, score, box}}; "
            f"got {type(data).__name__}"
        )
    persons: list[Person] = []
    other = 0
    counts: dict[int, list[int]] = {}
    kinds: set[str] = set()
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "image_id" not in item:
            raise GaitdataError(
                f"{path}: entry {i} is not an AlphaPose result (an object with image_id, keypoints, score); "
                f"got {str(item)[:60]}"
            )
        cat = item.get("category_id", 1)
        if cat != 1:
            other += 1
            continue
        image_id = item["image_id"]
        if isinstance(image_id, bool) or not isinstance(image_id, str | int):
            raise GaitdataError(f"{path}: entry {i}: image_id must be a file name or an integer, got {image_id!r}")
        kinds.add("integers" if isinstance(image_id, int) else ("paths" if "/" in image_id or "\\" in image_id else "names"))
        kp = conf = None
        if item.get("keypoints") is not None:
            flat = _numbers(item["keypoints"], "keypoints", path, i)
            if flat.size % 3 or flat.size == 0:
                raise GaitdataError(f"{path}: entry {i}: keypoints must be x, y, c triples, got {flat.size} values")
            k = flat.size // 3
            counts.setdefault(k, []).append(i)
            full = flat.reshape(k, 3)
            conf = full[:, 2].copy()
            kp = full[:17].copy() if (k == 17 or (body17 and k in BODY17_LAYOUTS)) else None
        elif need_keypoints:
            raise GaitdataError(
                f"{path}: entry {i} has no keypoints: this is a detection file (image_id, bbox, score), "
                f"not pose results; use it as person boxes: gaitdata label ROOT --boxes json:{path}"
            )
        box_value = item.get("box", item.get("bbox"))
        box = None
        if box_value is not None:
            b = _numbers(box_value, "box", path, i)
            if b.size != 4:
                raise GaitdataError(f"{path}: entry {i}: box must be [x, y, w, h], got {box_value}")
            box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
        elif kp is None and conf is None:
            raise GaitdataError(f"{path}: entry {i} has neither keypoints nor a box (bbox)")
        score = item.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            raise GaitdataError(f"{path}: entry {i}: score must be a number, got {str(score)[:40]}")
        persons.append(
            Person(entry=i, image_id=image_id, keypoints=kp, confidences=conf,
                   score=float("nan") if score is None else float(score), box=box, idx=item.get("idx"))
        )  # fmt: skip
    wrong = {k: v for k, v in counts.items() if k != 17 and not (body17 and k in BODY17_LAYOUTS)}
    if wrong and need_keypoints:
        k, entries = max(wrong.items(), key=lambda kv: len(kv[1]))
        layout = f" ({LAYOUTS[k]})" if k in LAYOUTS else ""
        hint = (
            "; rerun AlphaPose with a COCO-17 model (e.g. configs/coco/resnet/256x192_res50_lr1e-3_1x.yaml with "
            "fast_res50_256x192.pth)"
        )
        if k in BODY17_LAYOUTS:
            hint += f", or pass --body17 to keep the 17 COCO body joints that {LAYOUTS[k]} lists first"
        raise GaitdataError(
            f"{path}: {len(entries)} of {len(persons)} persons have {k} keypoints{layout}, the first at entry {entries[0]}, "
            f"but gaitdata labels are COCO-17{hint}"
        )
    if len(counts) > 1 and need_keypoints:
        raise GaitdataError(f"{path}: persons with different keypoint counts {sorted(counts)}; one file holds one model's results")
    with_kp = sum(p.confidences is not None for p in persons)
    if with_kp not in (0, len(persons)) and need_keypoints:
        missing = next(p.entry for p in persons if p.keypoints is None)
        raise GaitdataError(f"{path}: entry {missing} has no keypoints while others have; expected one kind of file")
    return ResultsFile(
        path=path, sha256=hashlib.sha256(raw).hexdigest(), variant="results" if with_kp else "detections",
        persons=tuple(persons), n_entries=len(data), n_other_categories=other,
        n_keypoints=next(iter(counts)) if counts else None,
        image_ids=(next(iter(kinds)) if len(kinds) == 1 else "mixed") if kinds else "names",
    )  # fmt: skip


# ---- scores and boxes ---------------------------------------------------------------------------
def _clip_conf(kp: np.ndarray) -> np.ndarray:
    """(17,) confidences in [0, 1]: NaN -> 0, joints without finite x, y -> 0."""
    c = np.clip(np.nan_to_num(kp[:, 2], nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return np.where(np.isfinite(kp[:, 0]) & np.isfinite(kp[:, 1]), c, 0.0)


def detector_score(p: Person) -> float:
    """The detector's box score recovered from the proposal score (NaN when it cannot be)."""
    if p.confidences is None or not np.isfinite(p.score):
        return float("nan")
    c = p.confidences
    if not np.isfinite(c).all():
        return float("nan")
    return float(p.score - c.mean() - 1.25 * c.max())


def score_method(rf: ResultsFile) -> str:
    """``detector`` (every person decomposes), ``scaled`` (raw / 3.25) or ``mean_confidence`` (no scores)."""
    if rf.variant == "detections":
        return "as_written"
    if not rf.persons:
        return "detector"
    if any(not np.isfinite(p.score) for p in rf.persons):
        return "mean_confidence"
    s = np.array([detector_score(p) for p in rf.persons])
    ok = np.isfinite(s) & (s >= -DECOMPOSE_TOL) & (s <= 1 + DECOMPOSE_TOL)
    return "detector" if ok.all() else "scaled"


def normalised_score(p: Person, method: str) -> float:
    if method == "as_written":
        return float(np.clip(p.score, 0.0, 1.0)) if np.isfinite(p.score) else 1.0
    conf = _clip_conf(p.keypoints) if p.keypoints is not None else np.ones(1)
    if method == "detector":
        return float(conf.mean() * np.clip(detector_score(p), 0.0, 1.0))
    if method == "scaled":
        return float(np.clip(p.score / SCORE_MAX, 0.0, 1.0))
    return float(conf.mean())


def box_score(p: Person, method: str) -> float:
    """The box's own score for a top-down teacher: the detector score where it can be recovered."""
    if method == "detector":
        return float(np.clip(detector_score(p), 0.0, 1.0))
    return normalised_score(p, method)


def person_box(p: Person, min_conf: float = 0.2) -> tuple[float, float, float, float] | None:
    """``box`` as written, else the extent of the confident joints (all finite joints if none is)."""
    if p.box is not None:
        return p.box
    if p.keypoints is None:
        return None
    kp = p.keypoints
    finite = np.isfinite(kp[:, 0]) & np.isfinite(kp[:, 1])
    good = finite & (_clip_conf(kp) >= min_conf)
    use = good if good.any() else finite
    if not use.any():
        return None
    (x0, y0), (x1, y1) = kp[use, :2].min(axis=0), kp[use, :2].max(axis=0)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


# ---- image ids -> frames ------------------------------------------------------------------------
def _examples(values: Iterable[Any], n: int = 3) -> str:
    out = []
    for v in values:
        if len(out) == n:
            out.append("...")
            break
        out.append(repr(v))
    return ", ".join(out)


def match_frames(rf: ResultsFile, fmap: FrameMap, video: str | None) -> list[tuple[str, int]]:
    """The frame of every person of ``rf`` (in order); one error line when any image id matches none."""
    keys: list[tuple[str, int]] = []
    bad: dict[str | int, None] = {}
    for p in rf.persons:
        k = fmap.resolve(p.image_id, video)
        if k is None:
            bad[p.image_id] = None
        else:
            keys.append(k)
    if bad:
        n_ids = len({p.image_id for p in rf.persons})
        bare = any(isinstance(i, int) or ("/" not in i and "\\" not in i) for i in bad)
        if video is None and bare:
            where = f"{fmap.root.path} (which has {len(fmap.videos)} recordings)"
            fix = (
                f"bare names need their recording: pass --video VIDEO_ID, or keep the file as "
                f"<video_id>/{RESULTS_NAME} or <video_id>.json"
            )
        else:
            where = f"recording {video}" if video is not None else str(fmap.root.path)
            fix = (
                f"run AlphaPose over ROOT/frames/<video_id>/rgb so image_id is the frame's file name, "
                f"or use paths relative to the dataset root (e.g. {next(iter(fmap.by_rel), 'frames/<video_id>/rgb/000000.jpg')})"
            )
        raise GaitdataError(
            f"{rf.path}: {len(bad)} of {n_ids} image {'id matches' if len(bad) == 1 else 'ids match'} no extracted frame of {where} "
            f"(e.g. {_examples(bad)}); {fix}"
        )
    return keys


# ---- sources: a file or a folder of them --------------------------------------------------------
def find_sources(path: str | os.PathLike, fmap: FrameMap, video: str | None = None) -> list[tuple[Path, str | None]]:
    """(results file, its recording or None) for a file, or a folder of ``<video_id>/alphapose-results.json``
    or ``<video_id>.json``; ``video`` names a single file's recording, or picks one recording of a folder."""
    path = Path(path)
    if path.is_file():
        return [(path, fmap.recording_of(path, video))]
    if not path.is_dir():
        raise FileNotFoundError(f"AlphaPose results {path} not found (a results file or a folder of them)")
    if (path / RESULTS_NAME).is_file():
        f = path / RESULTS_NAME
        return [(f, fmap.recording_of(f, video))]
    found: list[tuple[Path, str]] = []
    strays: list[str] = []
    for child in sorted(path.iterdir()):
        if child.is_dir():
            if (child / RESULTS_NAME).is_file():
                (found.append((child / RESULTS_NAME, child.name)) if child.name in fmap.indices else strays.append(child.name + "/"))
            elif child.name in fmap.indices:
                raise GaitdataError(
                    f"{child} is named after a recording but holds no {RESULTS_NAME}; did AlphaPose finish? "
                    f"(scripts/demo_inference.py writes it when the run ends)"
                )
        elif child.suffix == ".json":
            (found.append((child, child.stem)) if child.stem in fmap.indices else strays.append(child.name))
    if strays:
        raise GaitdataError(
            f"{path}: {len(strays)} result(s) name no recording of {fmap.root.path}: {_examples(strays)}; "
            f"expected <video_id>/{RESULTS_NAME} or <video_id>.json"
        )
    if video is not None:
        fmap.check_video(video)
        found = [(f, v) for f, v in found if v == video]
    if not found:
        raise GaitdataError(
            f"{path} holds no AlphaPose results{f' for {video}' if video else ''}: expected <video_id>/{RESULTS_NAME} "
            f"or <video_id>.json (or pass the results file itself)"
        )
    return [(f, v) for f, v in found]


def results_hash(path: str | os.PathLike) -> str | None:
    """SHA-256 of a results file, or of a folder's ``*.json`` files two levels deep (None when absent)."""
    path = Path(path)
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted([*path.glob("*.json"), *path.glob("*/*.json")]):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def boxes_by_frame(
    path: str | os.PathLike, root: DatasetRoot, video: str | None = None
) -> tuple[dict[tuple[str, int], np.ndarray], list[dict]]:
    """Person boxes ``{(video_id, frame_index): (N, 5) x, y, w, h, score}`` (best first) of AlphaPose
    results or detection file(s), and each file's description. The score is the detector's box score
    (recovered from a results file's proposal score, see the module docstring)."""
    fmap = FrameMap(root)
    out: dict[tuple[str, int], list[tuple[float, ...]]] = {}
    described = []
    for f, vid in find_sources(path, fmap, video):
        rf = read_results(f, need_keypoints=False, body17=True)
        method = score_method(rf)
        for p, key in zip(rf.persons, match_frames(rf, fmap, vid), strict=True):
            box = person_box(p)
            if box is not None:
                out.setdefault(key, []).append((*box, box_score(p, method)))
        described.append({**rf.describe(), "recording": vid, "box_score": method})
    return {k: np.asarray(sorted(v, key=lambda r: -r[4]), dtype=np.float64) for k, v in out.items()}, described


# ---- the label set ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportSummary:
    label_set: str
    path: Path
    files: tuple[dict, ...]  # each file's description (source metadata)
    recordings: tuple[Any, ...]  # pseudolabel.runner.RecordingStats per recording

    @property
    def n_frames(self) -> int:
        return sum(r.n_frames for r in self.recordings)

    @property
    def n_persons(self) -> int:
        return sum(r.n_persons for r in self.recordings)

    @property
    def n_no_person(self) -> int:
        return sum(r.n_no_person for r in self.recordings)


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
            conf = _clip_conf(kp)
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
                "keypoints": [float(v) for v in kp.reshape(-1)],
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
        kp = np.asarray(kps[i], np.float64).reshape(-1, 3).copy()
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
    from pseudolabel.runner import _recording_stats

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
        stats.append(_recording_stats(df, resumed=False))

    merged = pd.concat(parts, ignore_index=True)
    n_persons = sum(s.n_persons for s in stats)
    confs = [s.mean_confidence * s.n_persons for s in stats if s.n_persons]
    described = []
    for rf, vid, method, vids in files:
        described.append({**rf.describe(), "recording": vid, "recordings": vids, "score_method": method})
    meta = json.loads(json.dumps({
        "label_set": name, "teacher": TEACHER, "teacher_config": None, "teacher_options": {}, "weights_hash": None,
        "weights_path": None, "device": None, "batch_size": None,
        "boxes": {"proposer": "alphapose", "note": "AlphaPose's own detector; bbox is the results' box field"},
        "vis_thresholds": list(cfg.vis_thresholds), "postprocess": cfg.to_dict(), "keypoint_schema": COCO17.name,
        "tool": "gaitdata", "tool_version": __version__, "created_at": utc_now(),
        "summary": {
            "frames": sum(s.n_frames for s in stats), "persons": n_persons,
            "frames_without_person": sum(s.n_no_person for s in stats),
            "mean_confidence": sum(confs) / n_persons if n_persons else float("nan"),
            "flagged_persons": sum(s.n_flagged for s in stats),
        },
        "recordings": {s.video_id: {k: v for k, v in s.__dict__.items() if k != "video_id"} for s in stats},
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
    out = write_labels(r, name, merged, meta)
    return ImportSummary(label_set=name, path=out, files=tuple(described), recordings=tuple(stats))
