"""Stale artefacts: lineage records (:mod:`gaitdata.lineage`) compared with the root as it is now.

An artefact is **stale** when something it was made from changed since (frames re-extracted,
a label set relabelled, a split or export made again, an input deleted) or when one of its
inputs is itself stale; **unknown** when it records no lineage (written before lineage was
tracked); **damaged** when its file cannot be read; **fresh** otherwise. :class:`LineageChecker` answers for one root (reading each table
once); :func:`check_root` lists every label set, split, export (under ``exports/``) and model run
(under ``models/``). The ``require_*`` functions are the one-line refusals of ``split``,
``export``, ``train`` and ``evaluate``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.io import sha256_file
from gaitdata.labels import label_set_fingerprint, read_label_meta
from gaitdata.lineage import command_line, model_lineage, root_frame_fingerprints

FRESH, STALE, UNKNOWN, DAMAGED = "fresh", "stale", "unknown", "damaged"
COCO_FORMAT = "gaitdata-coco"
_LISTED = 3  # recordings named in a message before "and N more"


class StaleInputError(GaitdataError):
    """An input of a command changed after it was made; the message names the refreshing command."""


class OtherExportsError(StaleInputError):
    """A training run folder holds a run trained on other export files than those given now."""


@dataclass(frozen=True)
class ArtefactState:
    """What is known about one artefact's inputs."""

    kind: str  # label set | split | export | model
    name: str
    path: Path
    state: str  # fresh | stale | unknown | damaged
    changes: tuple[str, ...] = ()  # what changed under it (or why its lineage is unknown)
    refresh: str | None = None  # the command that makes it again
    inputs: tuple[ArtefactState, ...] = field(default=(), repr=False)

    @property
    def stale(self) -> bool:
        return self.state == STALE

    def cause(self) -> ArtefactState:
        """The most upstream stale artefact among this one and its inputs (refresh that first)."""
        for inp in self.inputs:
            if inp.stale:
                return inp.cause()
        return self

    def label(self) -> str:
        return f"{self.kind} {self.name!r}"

    def describe(self) -> str:
        """One line: what changed and the command that refreshes it."""
        if self.state == UNKNOWN:
            what = "; ".join(self.changes)
            return f"{self.label()}: unknown lineage ({what}); to record it, make it again: {self.refresh or '-'}"
        if self.state == FRESH:
            return f"{self.label()}: up to date"
        if self.state == DAMAGED:
            return f"{self.label()}: {'; '.join(self.changes)}; make it again: {self.refresh or '-'}"
        cause = self.cause()
        what = [*self.changes, *([f"its input {cause.label()} is stale"] if cause is not self else [])]
        return f"{self.label()} is stale: {'; '.join(what)}; refresh: {self.refresh or 'make it again'}"


def _listing(ids: list[str]) -> str:
    more = f" and {len(ids) - _LISTED} more" if len(ids) > _LISTED else ""
    return ", ".join(ids[:_LISTED]) + more


def _state(changes: list[str], inputs: list[ArtefactState]) -> str:
    return STALE if changes or any(i.stale for i in inputs) else FRESH


def read_coco_info(path: Path) -> dict[str, Any] | None:
    """The ``info`` of a COCO file (read from its first line when gaitdata wrote it), else None."""
    try:
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
            if first.startswith('{"info":') and first.rstrip().endswith(","):
                info = json.loads(first.rstrip()[len('{"info":') : -1])
            else:
                fh.seek(0)
                info = json.load(fh).get("info")
    except (OSError, ValueError, AttributeError):
        return None
    return info if isinstance(info, dict) else None


class LineageChecker:
    """Staleness of the artefacts of one dataset root; each table and file is read once."""

    def __init__(self, root: DatasetRoot | str | os.PathLike):
        self.root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
        self._frames: dict[str, str] | None = None
        self._cache: dict[tuple[str, str], ArtefactState | None] = {}

    # ---- helpers -------------------------------------------------------------------------------
    def frames(self) -> dict[str, str]:
        if self._frames is None:
            self._frames = root_frame_fingerprints(self.root)
        return self._frames

    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root.path))
        except ValueError:
            return str(path)

    def _frame_changes(self, recorded: dict[str, str], since: str) -> list[str]:
        now = self.frames()  # a recording the tables did not know (recorded None) may stay unknown
        gone = sorted(v for v, fp in recorded.items() if v not in now and fp is not None)
        changed = sorted(v for v, fp in recorded.items() if v in now and now[v] != fp)
        out = []
        if changed:
            out.append(f"frames of {len(changed)} recording(s) changed since {since} ({_listing(changed)})")
        if gone:
            out.append(f"{len(gone)} recording(s) are no longer in the root ({_listing(gone)})")
        return out

    def _label_input(self, rec: dict | None, since: str) -> tuple[list[str], list[ArtefactState]]:
        if not rec or not rec.get("name"):
            return [], []
        name = str(rec["name"])
        try:
            now = label_set_fingerprint(self.root, name)
        except GaitdataError:
            now = None
        if now is None:
            return [f"label set {name!r} no longer exists"], []
        changes = [] if now == rec.get("fingerprint") else [f"label set {name!r} changed since {since}"]
        state = self.label_set(name)
        return changes, [state] if state is not None else []

    # ---- artefacts -----------------------------------------------------------------------------
    def label_set(self, name: str) -> ArtefactState | None:
        """The state of label set ``name`` (None when it does not exist)."""
        key = ("label set", name)
        if key in self._cache:
            return self._cache[key]
        self._cache[key] = None  # a label set derived from itself does not recurse
        path = self.root.label_path(name)
        if not path.is_file():
            return None
        try:
            meta = read_label_meta(self.root, name)
        except Exception as exc:  # a damaged file: report it, do not stop the check of the others
            st = ArtefactState("label set", name, path, DAMAGED, (f"{path} is unreadable: {exc}",),
                               f"gaitdata label {self.root.path} --label-set {name} --overwrite")  # fmt: skip
            self._cache[key] = st
            return st
        rec = meta.get("lineage")
        if not isinstance(rec, dict):
            teacher = meta.get("teacher")
            cmd = f"gaitdata label {self.root.path}{f' --teacher {teacher}' if teacher else ''} --label-set {name} --overwrite"
            st = ArtefactState("label set", name, path, UNKNOWN, ("no lineage recorded",), cmd)
        else:
            changes = self._frame_changes(rec.get("frames") or {}, "it was labelled")
            inputs: list[ArtefactState] = []
            for src, fp in (rec.get("sources") or {}).items():
                c, i = self._label_input({"name": src, "fingerprint": fp}, "it was derived from it")
                changes += c
                inputs += i
            refresh = command_line(rec.get("command"), self.root) or f"make label set {name!r} again the way it was made"
            st = ArtefactState("label set", name, path, _state(changes, inputs), tuple(changes), refresh, tuple(inputs))
        self._cache[key] = st
        return st

    def split(self, name: str) -> ArtefactState | None:
        key = ("split", name)
        if key in self._cache:
            return self._cache[key]
        path = self.root.splits_dir / f"{name}.json"
        st = None
        if path.is_file():
            try:
                d = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                d = exc
            rec = (d.get("inputs") or {}).get("lineage") if isinstance(d, dict) else None
            if not isinstance(d, dict):
                st = ArtefactState(
                    "split", name, path, DAMAGED, (f"{path} is unreadable: {d}",), f"gaitdata split {self.root.path} --name {name}"
                )
            elif not isinstance(rec, dict):
                st = ArtefactState(
                    "split", name, path, UNKNOWN, ("no lineage recorded",), f"gaitdata split {self.root.path} --name {name}"
                )
            else:
                changes, inputs = self._label_input(rec.get("label_set"), "the split was made")
                changes = self._frame_changes(rec.get("frames") or {}, "the split was made") + changes
                refresh = command_line(rec.get("command"), self.root)
                st = ArtefactState("split", name, path, _state(changes, inputs), tuple(changes), refresh, tuple(inputs))
        self._cache[key] = st
        return st

    def export_file(self, path: str | os.PathLike) -> ArtefactState | None:
        """The state of one COCO file written by ``gaitdata export coco`` (None for other files)."""
        path = Path(path)
        key = ("export", str(path.resolve()))
        if key in self._cache:
            return self._cache[key]
        info = read_coco_info(path) if path.is_file() else None
        st = None
        if info is not None and info.get("format") == COCO_FORMAT:
            name = self._rel(path)
            rec = info.get("lineage")
            if not isinstance(rec, dict):
                st = ArtefactState("export", name, path, UNKNOWN, ("no lineage recorded",), "gaitdata export coco ...")
            else:
                changes, inputs = self._label_input(rec.get("label_set"), "the export")
                sp = rec.get("split")
                if isinstance(sp, dict) and sp.get("name"):
                    changes_s, inputs_s = self._split_input(str(sp["name"]), sp.get("content_hash"))
                    changes += changes_s
                    inputs += inputs_s
                cmd = rec.get("command")
                refresh = command_line([*cmd, "--out", str(path.parent)] if cmd else None, self.root)
                st = ArtefactState("export", name, path, _state(changes, inputs), tuple(changes), refresh, tuple(inputs))
        self._cache[key] = st
        return st

    def _split_input(self, name: str, content_hash: str | None) -> tuple[list[str], list[ArtefactState]]:
        state = self.split(name)
        if state is None:
            return [f"split {name!r} no longer exists"], []
        try:
            now = json.loads(state.path.read_text(encoding="utf-8")).get("content_hash")
        except (OSError, ValueError, AttributeError):
            now = None
        changes = [] if now == content_hash else [f"split {name!r} changed since the export"]
        return changes, [state]

    def model(self, run_dir: str | os.PathLike) -> ArtefactState | None:
        """The state of a training run folder (None when it holds no ``config.json``)."""
        run_dir = Path(run_dir)
        key = ("model", str(run_dir.resolve()))
        if key in self._cache:
            return self._cache[key]
        cfg_path = run_dir / "config.json"
        st = None
        if cfg_path.is_file():
            try:
                cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                cfg = exc
            rec = cfg.get("lineage") if isinstance(cfg, dict) else None
            name = self._rel(run_dir)
            if not isinstance(cfg, dict):
                st = ArtefactState(
                    "model", name, run_dir, DAMAGED, (f"{cfg_path} is unreadable: {cfg}",),
                    f"gaitdata train {self.root.path} --out {run_dir} --overwrite",
                )  # fmt: skip
            elif not isinstance(rec, dict):
                st = ArtefactState(
                    "model", name, run_dir, UNKNOWN, ("no lineage recorded",),
                    f"gaitdata train {self.root.path} --out {run_dir} --overwrite",
                )  # fmt: skip
            else:
                changes: list[str] = []
                inputs: list[ArtefactState] = []
                export_dir = Path(rec.get("export_dir") or ".")
                for fname, sha in (rec.get("files") or {}).items():
                    f = export_dir / fname
                    if not f.is_file():
                        changes.append(f"export file {self._rel(f)} no longer exists")
                        continue
                    if sha256_file(f) != sha:
                        changes.append(f"export file {self._rel(f)} was written again since training")
                    ex = self.export_file(f)
                    if ex is not None:
                        inputs.append(ex)
                refresh = command_line(rec.get("command"), self.root)
                if refresh:
                    refresh += f" (and the training options in {cfg_path})"
                st = ArtefactState("model", name, run_dir, _state(changes, inputs), tuple(changes), refresh, tuple(inputs))
        self._cache[key] = st
        return st

    # ---- the whole root ------------------------------------------------------------------------
    def all(self) -> list[ArtefactState]:
        """Every label set, split, export file under ``exports/`` and model run under ``models/``."""
        out: list[ArtefactState | None] = [self.label_set(n) for n in self.root.label_sets()]
        if self.root.splits_dir.is_dir():
            out += [self.split(p.stem) for p in sorted(self.root.splits_dir.glob("*.json"))]
        if self.root.exports_dir.is_dir():
            out += [self.export_file(p) for p in sorted(self.root.exports_dir.rglob("*.json"))]
        if self.root.models_dir.is_dir():
            out += [self.model(p.parent) for p in sorted(self.root.models_dir.glob("*/config.json"))]
        return [s for s in out if s is not None]


def check_root(root: DatasetRoot | str | os.PathLike) -> list[ArtefactState]:
    """The state of every derived artefact of ``root`` (see :meth:`LineageChecker.all`)."""
    return LineageChecker(root).all()


# ------------------------------------------------------------------------------------------------
# refusals
# ------------------------------------------------------------------------------------------------
def require_fresh(state: ArtefactState | None, verb: str) -> None:
    """Raise :class:`StaleInputError` (one line naming the refreshing command) when ``state`` is stale."""
    if state is None or not state.stale:
        return
    cause = state.cause()
    what = "; ".join(cause.changes) or "an input is stale"
    msg = f"{verb} refused: {cause.label()} is stale ({what}); refresh it with: {cause.refresh or 'make it again'}"
    if cause is not state:
        msg += f", then refresh {state.label()}: {state.refresh or 'make it again'}"
    raise StaleInputError(msg)


def require_fresh_inputs(
    root: DatasetRoot, verb: str, *, labels: Iterable[str] = (), split: str | None = None
) -> LineageChecker:
    """Refuse ``verb`` when a named label set or split is stale; returns the checker for more checks."""
    checker = LineageChecker(root)
    for name in labels:
        require_fresh(checker.label_set(name), verb)
    if split is not None:
        require_fresh(checker.split(split), verb)
    return checker


def check_train_inputs(
    root: str | os.PathLike,
    export_dir: str | os.PathLike | None,
    *,
    model: str,
    out: str | os.PathLike | None,
    overwrite: bool,
    train_split: str = "train",
    val_split: str = "val",
) -> dict[str, Any]:
    """The checks ``train`` makes before it starts; returns the run's lineage record.

    Refuses when an export file is stale, or when the run folder holds a run trained on other
    export files and ``overwrite`` is not set (continuing it would mix two datasets).
    """
    root_path = Path(root)
    export_dir = Path(export_dir) if export_dir is not None else root_path / "exports" / "coco"
    run_dir = Path(out) if out is not None else root_path / "models" / model
    checker = LineageChecker(root_path)
    files = {}
    for part in (train_split, val_split):
        f = export_dir / f"{part}.json"
        if f.is_file():
            require_fresh(checker.export_file(f), "train")
            files[f.name] = sha256_file(f)
    command = ["gaitdata", "train", "{root}", "--export", str(export_dir.resolve()), "--model", model,
               "--out", str(run_dir.resolve()), "--overwrite"]  # fmt: skip
    rec = model_lineage(export_dir.resolve(), files, command)
    if not overwrite and (run_dir / "config.json").is_file():
        try:
            before = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("lineage")
        except (OSError, ValueError, AttributeError):
            before = None
        if isinstance(before, dict) and before.get("files") != rec["files"]:
            raise OtherExportsError(
                f"train refused: {run_dir} holds a run trained on other export files than {export_dir} holds now; "
                f"pass --overwrite to train again from the start, or choose another --out"
            )
    return rec


def check_evaluate_inputs(
    root: str | os.PathLike,
    model_path: str | os.PathLike,
    *,
    split: str = "test",
    export: str | os.PathLike | None = None,
    labels: str | None = None,
    gt: str | None = None,
) -> dict[str, Any]:
    """The checks ``evaluate`` makes before it starts; returns what the evaluation is made from.

    Refuses when the model run, the evaluation export file, or a named label set is stale.
    """
    checker = LineageChecker(root)
    p = Path(model_path)
    run_dir = p if p.is_dir() else p.parent
    model_state = checker.model(run_dir)
    require_fresh(model_state, "evaluate")
    trained_on = None
    try:
        trained_on = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("lineage", {}).get("export_dir")
    except (OSError, ValueError, AttributeError):
        trained_on = None
    if export is not None:
        coco_file = Path(export) if Path(export).suffix == ".json" else Path(export) / f"{split}.json"
    elif trained_on and (Path(trained_on) / f"{split}.json").is_file():
        coco_file = Path(trained_on) / f"{split}.json"
    else:
        coco_file = checker.root.exports_dir / "coco" / f"{split}.json"
    require_fresh(checker.export_file(coco_file), "evaluate")
    for name in (labels, gt):
        if name and name != "auto":
            require_fresh(checker.label_set(name), "evaluate")
    return {
        "model": model_state.state if model_state is not None else UNKNOWN,
        "export_file": str(coco_file.resolve()),
        "export_sha256": sha256_file(coco_file) if coco_file.is_file() else None,
    }
