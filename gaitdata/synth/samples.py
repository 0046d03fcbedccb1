"""Writing synthetic recordings to containers, and the built-in sample set."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gaitdata.containers.kinds import KINDS
from gaitdata.errors import GaitdataError
from gaitdata.io import atomic_write_json, atomic_write_text
from gaitdata.progress import progress_bar
from gaitdata.synth.groundtruth import save_ground_truth, sidecar_path
from gaitdata.synth.recording import SynthRecording
from gaitdata.synth.walk import RENDER_VERSION, WalkSpec, render_walk

ID_PATTERN = "{subject}/{session}_{view}"
MANIFEST = "sample_set.json"
METADATA_CSV = "metadata.csv"


def write_recording(rec: SynthRecording, path: str | os.PathLike, kind: str, **opts: Any) -> Path:
    """Write ``rec`` as container ``kind`` (bag|db3|pair|video|images) plus its ground-truth sidecar.

    Delegates to :func:`gaitdata.containers.write`; returns the recording's path (the colour file of a
    pair, the folder of an image sequence). The sidecar is ``<returned path>.gt.npz``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown container kind {kind!r}; choose one of {', '.join(KINDS)}")
    from gaitdata.containers import write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = Path(write(rec, path, kind, **opts))
    save_ground_truth(rec, out)
    return out


@dataclass(frozen=True)
class SampleEntry:
    path: Path  # the recording (colour file of a pair, folder of images)
    kind: str
    subject: str
    session: str
    view: str
    condition: str
    direction: str
    n_colour_frames: int
    n_depth_frames: int


@dataclass(frozen=True)
class SampleSet:
    """A set of synthetic recordings under ``root`` with a metadata CSV and an id pattern for extraction."""

    root: Path
    entries: tuple[SampleEntry, ...]
    metadata_csv: Path
    id_pattern: str = ID_PATTERN

    @property
    def recordings(self) -> tuple[Path, ...]:
        return tuple(e.path for e in self.entries)

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(sorted({e.subject for e in self.entries}))


def sample_specs(
    n_subjects: int = 3, n_frames: int = 48, seed: int = 0, colour_size: tuple[int, int] = (640, 480),
    depth_size: tuple[int, int] = (480, 360),
) -> list[tuple[WalkSpec, str, str, str, str]]:  # fmt: skip
    """(spec, kind, session, view, condition) for every recording of the sample set.

    Each subject walks across (view ``side``) and towards the camera (view ``front``); container kinds
    rotate so that every kind appears; realism knobs (drops, stream offset, jitter, depth noise and
    holes, a bystander) vary between recordings.
    """
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be >= 1, got {n_subjects}")
    if n_frames < 2:
        raise ValueError(f"n_frames must be >= 2, got {n_frames}")
    out = []
    k = 0
    for i in range(n_subjects):
        subject = f"sub{i + 1:02d}"
        for j, (direction, view) in enumerate(
            (("left_to_right" if i % 2 == 0 else "right_to_left", "side"), ("toward", "front"))
        ):
            kind = KINDS[k % len(KINDS)]
            k += 1
            rseed = seed * 1000 + i * 10 + j
            knobs: dict[str, Any] = {
                "depth_offset_ms": (3.0, -4.0, 0.0)[k % 3],
                "jitter_ms": 0.4 if k % 2 else 0.0,
                "depth_noise_mm": 1.5,
                "depth_holes": 0.004,
            }
            if k % 3 == 1:
                knobs["drop_colour"] = (n_frames // 2,)
            if k % 3 == 2:
                knobs["drop_depth"] = (n_frames // 3,)
            condition = "normal"
            if i == n_subjects - 1 and j == 0 and n_subjects > 1:
                knobs["bystander"] = True
                condition = "bystander"
            spec = WalkSpec(
                subject=subject, seed=seed * 100 + i, direction=direction, n_frames=n_frames,
                colour_size=colour_size, depth_size=depth_size, name=f"{subject}_ses1_{view}",
                phase=(rseed * 0.37) % 1.0, with_depth=kind in ("bag", "db3", "pair"), **knobs,
            )  # fmt: skip
            out.append((spec, kind, "ses1", view, condition))
    return out


def _target(root: Path, spec: WalkSpec, kind: str, session: str, view: str) -> Path:
    return root / spec.subject / f"{session}_{view}"


def make_sample_set(
    out_dir: str | os.PathLike, n_subjects: int = 3, n_frames: int = 48, seed: int = 0, *,
    colour_size: tuple[int, int] = (640, 480), depth_size: tuple[int, int] = (480, 360), progress: bool = False,
    overwrite: bool = False,
) -> SampleSet:  # fmt: skip
    """Render and write a small, varied sample set (every container kind) with sidecars and a metadata CSV.

    Layout: ``<out_dir>/<subject>/<session>_<view>.<ext>`` (pairs: ``..._color.mp4`` + ``..._depth.mkv``,
    images: a folder), ``<out_dir>/metadata.csv`` (path, subject, session, view, condition) and
    ``<out_dir>/sample_set.json``. Extract with ``--id-pattern "{subject}/{session}_{view}"``. A
    complete set made with the same arguments is reused (rerunning is cheap and idempotent).
    """
    root = Path(out_dir).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GaitdataError(
            f"{root}: cannot create the sample-set folder ({exc}); choose a writable --out"
        ) from exc
    params = {"n_subjects": n_subjects, "n_frames": n_frames, "seed": seed, "colour_size": list(colour_size),
              "depth_size": list(depth_size), "version": RENDER_VERSION}  # fmt: skip
    manifest = root / MANIFEST
    if manifest.is_file() and not overwrite:
        existing = _load_manifest(root, params)
        if existing is not None:
            return existing
    specs = sample_specs(n_subjects, n_frames, seed, colour_size, depth_size)
    entries = []
    for spec, kind, session, view, condition in progress_bar(specs, desc="sample set", unit="recording",
                                                             enabled=progress):
        rec = render_walk(spec)
        path = write_recording(rec, _target(root, spec, kind, session, view), kind)
        entries.append(SampleEntry(
            path=path, kind=kind, subject=spec.subject, session=session, view=view, condition=condition,
            direction=spec.direction, n_colour_frames=len(rec.colour),
            n_depth_frames=0 if rec.depth is None else len(rec.depth),
        ))  # fmt: skip
    csv = root / METADATA_CSV
    lines = ["source_rel,subject,session,view,condition"]
    lines += [
        f"{e.path.relative_to(root).as_posix()},{e.subject},{e.session},{e.view},{e.condition}"
        for e in entries
    ]
    atomic_write_text(csv, "\n".join(lines) + "\n")
    doc = {"params": params, "id_pattern": ID_PATTERN, "metadata_csv": METADATA_CSV,
           "entries": [{**asdict(e), "path": e.path.relative_to(root).as_posix()} for e in entries]}  # fmt: skip
    atomic_write_json(manifest, doc)
    return SampleSet(root=root, entries=tuple(entries), metadata_csv=csv, id_pattern=ID_PATTERN)


def _load_manifest(root: Path, params: dict) -> SampleSet | None:
    try:
        doc = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if doc.get("params") != params:
        return None
    entries = []
    for e in doc.get("entries", []):
        p = root / e["path"]
        if not p.exists() or not sidecar_path(p).is_file():
            return None
        entries.append(SampleEntry(**{**e, "path": p}))
    csv = root / doc.get("metadata_csv", METADATA_CSV)
    if not csv.is_file() or not entries:
        return None
    return SampleSet(
        root=root, entries=tuple(entries), metadata_csv=csv, id_pattern=doc.get("id_pattern", ID_PATTERN)
    )
