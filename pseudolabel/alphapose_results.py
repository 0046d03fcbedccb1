"""AlphaPose's own results files: read, checked, and matched to the frames of a dataset root.

Used as person boxes (``gaitdata label --boxes json:PATH``, :mod:`pseudolabel.boxes`) and as a label
set (``gaitdata import alphapose``, :mod:`pseudolabel.importers.alphapose`).

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
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.imagenames import FrameMap

RESULTS_NAME = "alphapose-results.json"
SCORE_MAX = 3.25  # mean(c) + box score + 1.25 * max(c), every term at most 1
DECOMPOSE_TOL = 1e-3
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
def clip_confidences(kp: np.ndarray) -> np.ndarray:
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
    conf = clip_confidences(p.keypoints) if p.keypoints is not None else np.ones(1)
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
    good = finite & (clip_confidences(kp) >= min_conf)
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
