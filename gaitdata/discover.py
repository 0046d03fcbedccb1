"""Find recordings under files/directories, name them, and attach subject/session/view/condition.

Rules (documented in the README):

* ``*.bag`` -> ``bag``; ``*.db3`` -> ``db3``.
* ``<stem>_color.<video>`` with ``<stem>_depth.<video>`` or a ``<stem>_depth/`` folder -> ``pair``;
  a ``_color`` video without a depth partner, or any other video -> ``video``.
* A folder holding images directly -> ``images`` (except a pair's ``<stem>_depth/`` folder).
* Ignored: hidden names, ground-truth sidecars ``*.gt.npz``, timestamp CSVs, ``*_calib.json``,
  gaitdata dataset roots (folders holding ``dataset.json``) and anything else without a recording
  extension. A path given explicitly is never ignored: an
  unsupported one is reported as a failed recording.

``video_id`` is the path relative to the input root, without extension (and without ``_color`` for
pairs), with ``/`` -> ``__`` and any character other than a letter, digit, ``.``, ``-`` or ``_`` -> ``_``
(letters and digits of any script are kept, so ``测试.mp4`` is ``测试``); recordings that would share an id
(``rec.bag`` beside ``rec.mp4``) keep their extension (``rec.bag``, ``rec.mp4``). An ``--id-pattern`` with
more path levels than the relative path has reaches into the folders above the input root and the id
grows with it: ``extract day2/sub01 --id-pattern '{session}/{subject}/{any}'`` names ``walk.bag``
``day2__sub01__walk``. Recordings that still share an id (also when differing only in case) are
reported each with the other's path and a pattern that tells them apart; none of them is extracted.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

from gaitdata.containers.kinds import IMAGE_EXTS, RECORDING_EXTS, VIDEO_EXTS, classify_file
from gaitdata.errors import GaitdataError

META_FIELDS = ("subject", "session", "view", "condition")


@dataclass(frozen=True)
class Source:
    """One recording found by discovery."""

    kind: str  # bag | db3 | pair | video | images | unknown
    path: Path
    rel: str  # path relative to the input root (posix), as discovered
    video_id: str
    depth_path: Path | None = None
    meta: dict = field(default_factory=dict)  # subject/session/view/condition
    error: str | None = None  # set when discovery already knows it cannot be read
    id_conflict: str | None = None  # another recording of this batch has the same id: not extracted


def safe_id(rel: str) -> str:
    """Filesystem-safe id of a relative path: ``/`` -> ``__``; letters/digits of any script, ``.-_`` kept."""
    parts = [
        re.sub(r"[^\w.-]", "_", unicodedata.normalize("NFC", p))
        for p in Path(rel).as_posix().split("/")
        if p not in ("", ".")
    ]
    vid = "__".join(parts).strip("._") or "recording"
    return vid


def pattern_levels(pattern: str) -> int:
    """How many path levels (folders + name) an ``--id-pattern`` spans."""
    return pattern.strip("/").count("/") + 1


def _id_path(s: Source, levels: int = 1, keep_ext: bool = False) -> str:
    """The path an id and a pattern are taken from: relative to the input root, or, when the pattern
    spans more levels, the last ``levels`` levels of the absolute path (extension and ``_color`` dropped
    unless ``keep_ext``)."""
    strip = (lambda r: r) if keep_ext else (lambda r: _id_rel(r, s.kind))
    rel = strip(s.rel)
    if levels <= rel.count("/") + 1:
        return rel
    return "/".join(strip(s.path.as_posix()).lstrip("/").split("/")[-levels:])


def distinguishing_pattern(a: Path, b: Path, kind_a: str = "video", kind_b: str = "video") -> str | None:
    """The shortest ``{any}/.../{any}`` pattern under which two recordings get different ids (None if none does)."""
    pa = _id_rel(a.as_posix(), kind_a).lstrip("/").split("/")
    pb = _id_rel(b.as_posix(), kind_b).lstrip("/").split("/")
    for k in range(2, max(len(pa), len(pb)) + 1):
        if safe_id("/".join(pa[-k:])).casefold() != safe_id("/".join(pb[-k:])).casefold():
            return "/".join(["{any}"] * k)
    return None


def _id_rel(rel: str, kind: str) -> str:
    p = Path(rel)
    stem = p.name
    if kind in ("bag", "db3", "video", "pair") and p.suffix.lower() in RECORDING_EXTS:
        stem = p.stem
    if kind == "pair" and stem.endswith("_color"):
        stem = stem[: -len("_color")]
    return (p.parent / stem).as_posix()


def _ignored(name: str) -> bool:
    return (
        name.startswith(".")
        or name.endswith(".gt.npz")
        or name.endswith(".csv")
        or name.endswith("_calib.json")
    )


def _has_images(folder: Path) -> bool:
    try:
        return any(p.suffix.lower() in IMAGE_EXTS and p.is_file() for p in folder.iterdir())
    except OSError:
        return False


def _walk(root: Path) -> list[tuple[str, Path, Path | None]]:
    found: list[tuple[str, Path, Path | None]] = []
    pair_depths: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root, onerror=None):
        here = Path(dirpath)
        if (here / "dataset.json").is_file() and here != root:
            dirnames[:] = []  # a gaitdata dataset root (e.g. --out inside the input): its frames are outputs
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if _ignored(name):
                continue
            p = here / name
            kind, depth = classify_file(p)
            if kind == "unknown":
                continue
            if kind == "video" and p.stem.endswith("_depth"):
                continue  # a pair's depth video (or an orphan: reported by its colour partner's absence)
            if depth is not None:
                pair_depths.add(depth)
            found.append((kind, p, depth))
    folders = []
    for dirpath, dirnames, _ in os.walk(root):
        if (Path(dirpath) / "dataset.json").is_file():
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folders.append(Path(dirpath))
    for folder in folders:
        if folder in pair_depths or folder.name.endswith("_depth"):
            continue
        if _has_images(folder):
            found.append(("images", folder, None))
    return found


def discover(sources: list[str | os.PathLike], id_pattern: str | None = None,
             metadata_csv: str | os.PathLike | None = None) -> list[Source]:  # fmt: skip
    """Recordings under ``sources`` (files or folders, searched recursively), sorted by ``video_id``."""
    if id_pattern:
        compile_id_pattern(id_pattern)  # a malformed pattern is refused even when nothing is found
    out: list[Source] = []
    for src in sources:
        src = Path(src).expanduser()
        if not src.exists():
            kind = classify_file(src)[0]
            out.append(Source(kind, src.absolute(), src.name, safe_id(_id_rel(src.name, kind)),
                              error=f"{src}: no such file or directory; check the path"))  # fmt: skip
            continue
        if src.is_file():
            kind, depth = classify_file(src)
            rel = src.name
            err = None
            if kind == "unknown":
                err = (f"{src}: unsupported file type {src.suffix or '(no extension)'!r}; expected .bag, .db3, "
                       f"a video ({', '.join(VIDEO_EXTS)}) or a folder of images")  # fmt: skip
            out.append(Source(kind, src.resolve(), rel, safe_id(_id_rel(rel, kind)), depth, error=err))
            continue
        if not os.access(src, os.R_OK | os.X_OK):
            out.append(Source("unknown", src.resolve(), src.name, safe_id(src.name),
                              error=f"{src}: folder is not readable (permission denied)"))  # fmt: skip
            continue
        root = src.resolve()
        for kind, path, depth in _walk(root):
            rel = path.relative_to(root).as_posix() if path != root else path.name
            out.append(Source(kind, path, rel, safe_id(_id_rel(rel, kind)), depth))
    levels = pattern_levels(id_pattern) if id_pattern else 1
    if id_pattern:
        out = [
            replace(s, video_id=safe_id(_id_path(s, levels)), meta=parse_id_pattern(id_pattern, _id_path(s, levels)))
            for s in out
        ]
    if metadata_csv:
        out = apply_metadata_csv(out, metadata_csv)
    out = list({s.path: s for s in out}.values())  # the same recording given twice counts once
    out = _resolve_collisions(out, levels)
    out.sort(key=lambda s: (s.video_id, str(s.path)))
    return out


def _groups(sources: list[Source]) -> list[list[Source]]:
    ids: dict[str, list[Source]] = {}
    for s in sources:
        ids.setdefault(s.video_id.casefold(), []).append(s)  # case-insensitive filesystems: Walk == walk
    return [g for g in ids.values() if len(g) > 1]


def _resolve_collisions(out: list[Source], levels: int) -> list[Source]:
    """Recordings sharing an id keep their extension (rec.bag, rec.mp4); those still sharing one are flagged."""
    for group in _groups(out):
        for s in group:
            out[out.index(s)] = replace(s, video_id=safe_id(_id_path(s, levels, keep_ext=True)))
    for group in _groups(out):
        for s in group:
            s = replace(s, video_id=safe_id(_id_path(s, levels)))  # report the id they were both to get
            others = [o for o in group if o.path != s.path]
            hint = distinguishing_pattern(s.path, others[0].path, s.kind, others[0].kind)
            fix = (f"give them distinct ids with --id-pattern '{hint}' (ids from the last {hint.count('/') + 1} "
                   f"path levels; name fields such as {{subject}} in it)" if hint else "rename one of them")  # fmt: skip
            msg = (f"{s.path}: video_id {s.video_id!r} is also the id of "
                   f"{', '.join(str(o.path) for o in others)} in this run; {fix}")  # fmt: skip
            out[next(i for i, o in enumerate(out) if o.path == s.path)] = replace(s, id_conflict=msg)
    return out


def compile_id_pattern(pattern: str) -> re.Pattern:
    """``{subject}/{session}_{view}`` -> a regex with named groups (fields: subject, session, view, condition)."""
    names = re.findall(r"{(\w+)}", pattern)
    stray = next((m for m in re.finditer(r"{\w+}|[{}]", pattern) if len(m.group()) == 1), None)
    if stray:
        fields = ", ".join(f"{{{f}}}" for f in (*META_FIELDS, "any"))
        raise GaitdataError(
            f"--id-pattern {pattern!r}: unmatched {stray.group()!r} (character {stray.start() + 1}); "
            f"name fields as {fields}, e.g. '{{subject}}/{{session}}_{{view}}'"
        )
    unknown = sorted(set(names) - set(META_FIELDS) - {"any"})
    if unknown:
        raise GaitdataError(
            f"--id-pattern {pattern!r}: unknown field(s) {unknown}; use {', '.join(META_FIELDS)} or {{any}}"
        )
    regex = ""
    for i, piece in enumerate(re.split(r"({\w+})", pattern)):
        if i % 2:
            name = piece[1:-1]
            regex += r"[^/]*?" if name == "any" or name in regex else f"(?P<{name}>[^/]+?)"
        else:
            regex += re.escape(piece)
    return re.compile(r"(?:^|.*/)" + regex + r"$")


def parse_id_pattern(pattern: str, rel_no_ext: str) -> dict:
    m = compile_id_pattern(pattern).match(rel_no_ext)
    return {k: v for k, v in m.groupdict().items() if v} if m else {}


def apply_metadata_csv(sources: list[Source], csv_path: str | os.PathLike) -> list[Source]:
    """Merge a CSV (key column ``video_id``, ``source_rel`` or ``path``; columns subject/session/view/condition)."""
    import pandas as pd

    csv_path = Path(csv_path)
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise GaitdataError(f"{csv_path}: cannot read the metadata CSV ({exc})") from exc
    key = next((k for k in ("video_id", "source_rel", "path") if k in df.columns), None)
    fields = [f for f in META_FIELDS if f in df.columns]
    if key is None or not fields:
        raise GaitdataError(
            f"{csv_path}: the metadata CSV needs a key column (video_id, source_rel or path) and at least one of "
            f"{', '.join(META_FIELDS)}; found {list(df.columns)}"
        )
    rows = {
        str(r[key]).strip(): {f: str(r[f]).strip() for f in fields if str(r[f]).strip()}
        for _, r in df.iterrows()
    }
    out = []
    for s in sources:
        cands = [s.video_id, s.rel, _id_rel(s.rel, s.kind), s.path.name, str(s.path)]
        hit = next((rows[c] for c in cands if c in rows), None)
        out.append(replace(s, meta={**s.meta, **hit}) if hit else s)
    return out
