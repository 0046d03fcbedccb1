"""Sequence names for gait-recognition toolkits: subject id, sequence type and view per recording.

Gait-recognition code (OpenGait, FastPoseGait, GaitGraph) identifies a sequence by three names,
``<id>/<type>/<view>``, and its CASIA-B evaluators select gallery and probe sequences by the type
(``nm-01`` .. ``nm-06``, ``bg-01``, ``bg-02``, ``cl-01``, ``cl-02``) and compare views
(``000`` .. ``180``). Two namings are offered:

* ``plain``: subject as recorded, type ``<condition>-<session>`` (``normal-ses1``), view as
  recorded; a second recording with the same three names gets ``-2``, ``-3``... on its type.
* ``casiab`` (:class:`CasiaBNaming`): zero-padded numeric subject ids (``001``), types
  ``<code>-<NN>`` and three-digit view codes. The type code comes from the recording's condition
  through ``type_map`` (default: normal/walk → ``nm``, bag → ``bg``, coat/clothing → ``cl``; the
  key ``*`` catches every other or missing condition). Sequence numbers count, per subject and
  type code, the sessions in natural order (``ses2`` before ``ses10``): all views of one session
  share a number, as the eleven cameras of one CASIA-B walk do; a second recording of the same
  session, type and view takes the next number. The view code comes from ``view_map`` (default
  front → ``000``, side → ``090``, back → ``180``); numeric views are zero-padded (``90`` → ``090``).
  Subject ids are the numbers ending the subject names (``sub07`` → ``007``) when every subject
  has a distinct one, else 1..N in natural order of the names; at least three digits, all ids of
  one root the same width, so string order (the toolkits sort directory names) is numeric order.

Names are computed over every recording of the root, so an export of one part of a split names a
recording as the export of the whole root does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from gaitdata.errors import GaitdataError

if TYPE_CHECKING:
    from splits import Split

UNKNOWN_SUBJECT = "_unknown"
NAMINGS = ("plain", "casiab")
CASIAB_TYPES = ("nm", "bg", "cl")  # the type codes CASIA-B evaluators know
DEFAULT_TYPE_MAP: dict[str, str] = {
    "normal": "nm", "walk": "nm", "nm": "nm", "bag": "bg", "bg": "bg", "coat": "cl", "clothing": "cl", "cl": "cl",
}  # fmt: skip
DEFAULT_VIEW_MAP: dict[str, str] = {"front": "000", "side": "090", "back": "180"}
ANY = "*"

_CODE = re.compile(r"^[a-z][a-z0-9]*$")
_VIEW_CODE = re.compile(r"^\d{3}$")
_CASIAB_TYPE = re.compile(r"^([a-z][a-z0-9]*)-(\d{2,})$")
_TRAILING_NUMBER = re.compile(r"(\d+)$")


def safe_name(name: str) -> str:
    """``name`` with every character other than letters, digits, ``-_.`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or UNKNOWN_SUBJECT


def natural_key(text: str) -> list[str | int]:
    """Sort key that orders digit runs by value: ``ses2`` < ``ses10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _text(value: object) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    s = str(value).strip()
    return s or None


def parse_casiab_type(seq_type: str) -> tuple[str, int]:
    """``"nm-01"`` -> ``("nm", 1)``; raises :class:`GaitdataError` for anything else."""
    m = _CASIAB_TYPE.match(seq_type)
    if not m:
        raise GaitdataError(f"{seq_type!r} is not a CASIA-B sequence type like 'nm-01'")
    return m.group(1), int(m.group(2))


def parse_map(items: Iterable[str], what: str) -> dict[str, str]:
    """``["normal=nm", "bag=bg,coat=cl"]`` -> ``{"normal": "nm", "bag": "bg", "coat": "cl"}``."""
    out: dict[str, str] = {}
    for item in items:
        for pair in (p.strip() for p in item.split(",")):
            if not pair:
                continue
            key, sep, value = pair.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise GaitdataError(f"{what}: {pair!r} is not NAME=CODE (e.g. {what} normal=nm)")
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class SequenceName:
    """Where one recording goes in an id/type/view tree."""

    subject: str
    seq_type: str
    view: str


@dataclass(frozen=True)
class CasiaBNaming:
    """Options of the CASIA-B naming (see the module docstring). Map keys are case-insensitive;
    entries given here are added to (and override) the defaults."""

    type_map: Mapping[str, str] = field(default_factory=dict)
    view_map: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        types = {**DEFAULT_TYPE_MAP, **{str(k).lower(): str(v).lower() for k, v in self.type_map.items()}}
        views = {**DEFAULT_VIEW_MAP, **{str(k).lower(): str(v) for k, v in self.view_map.items()}}
        for k, v in types.items():
            if not _CODE.match(v):
                raise GaitdataError(f"type map: code {v!r} for {k!r} must be letters/digits, e.g. nm, bg, cl")
        for k, v in views.items():
            if not _VIEW_CODE.match(v):
                raise GaitdataError(f"view map: code {v!r} for {k!r} must be three digits, e.g. 090")
        object.__setattr__(self, "type_map", types)
        object.__setattr__(self, "view_map", views)

    def type_code(self, condition: str | None) -> str | None:
        if condition is not None and condition.lower() in self.type_map:
            return self.type_map[condition.lower()]
        return self.type_map.get(ANY)

    def view_code(self, view: str | None) -> str | None:
        if view is None:
            return self.view_map.get(ANY)
        if view.lower() in self.view_map:
            return self.view_map[view.lower()]
        return f"{int(view):03d}" if view.isdigit() and int(view) < 1000 else self.view_map.get(ANY)


@dataclass(frozen=True)
class SequenceNames:
    """Names of the recordings of one root; ``problems`` says why a recording has none."""

    naming: str
    names: dict[str, SequenceName]
    subject_ids: dict[str, str]  # subject as recorded -> id directory
    problems: dict[str, str] = field(default_factory=dict)

    def check(self, video_ids: Iterable[str]) -> None:
        """Raise one error listing the recordings among ``video_ids`` that have no name."""
        bad = [f"{v}: {self.problems[v]}" for v in video_ids if v in self.problems]
        if bad:
            more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
            raise GaitdataError(
                f"{self.naming} naming: {len(bad)} recording(s) cannot be named: {'; '.join(bad[:3])}{more}"
            )

    def subject_id(self, subject: object) -> str | None:
        s = _text(subject)
        return None if s is None else self.subject_ids.get(s)


def plain_names(videos: pd.DataFrame) -> SequenceNames:
    """``<subject>/<condition>-<session>/<view>`` with ``-2``, ``-3``... on repeated types."""
    names: dict[str, SequenceName] = {}
    used: set[tuple[str, str, str]] = set()
    for row in videos.sort_values("video_id").itertuples(index=False):
        subject = _text(row.subject)
        subdir = safe_name(subject) if subject is not None else UNKNOWN_SUBJECT
        view = safe_name(_text(row.view) or "000")
        seq = safe_name(f"{_text(row.condition) or 'walk'}-{_text(row.session) or '01'}")
        n = 1
        while (subdir, seq if n == 1 else f"{seq}-{n}", view) in used:
            n += 1
        seq = seq if n == 1 else f"{seq}-{n}"
        used.add((subdir, seq, view))
        names[str(row.video_id)] = SequenceName(subdir, seq, view)
    subjects = {s: safe_name(s) for s in (_text(x) for x in videos["subject"]) if s is not None}
    return SequenceNames("plain", names, subjects)


def casiab_subject_ids(subjects: Iterable[str]) -> dict[str, str]:
    """Zero-padded numeric ids: trailing numbers when distinct for every subject, else 1..N."""
    subs = sorted(set(subjects), key=natural_key)
    if not subs:
        return {}
    nums = {s: int(m.group(1)) if (m := _TRAILING_NUMBER.search(s)) else None for s in subs}
    if any(n is None for n in nums.values()) or len(set(nums.values())) != len(subs):
        nums = {s: i + 1 for i, s in enumerate(subs)}
    width = max(3, len(str(max(n for n in nums.values() if n is not None))))
    return {s: f"{n:0{width}d}" for s, n in nums.items()}


def casiab_names(videos: pd.DataFrame, naming: CasiaBNaming | None = None) -> SequenceNames:
    """CASIA-B names (``001/nm-01/090``) for every recording that can have one."""
    naming = naming or CasiaBNaming()
    ids = casiab_subject_ids(s for s in (_text(x) for x in videos["subject"]) if s is not None)
    problems: dict[str, str] = {}
    rows = []
    for row in videos.sort_values("video_id").itertuples(index=False):
        vid, subject = str(row.video_id), _text(row.subject)
        condition, view = _text(row.condition), _text(row.view)
        code, vcode = naming.type_code(condition), naming.view_code(view)
        if subject is None:
            problems[vid] = "no subject (give subjects at extraction: --id-pattern or --metadata)"
        elif code is None:
            problems[vid] = f"condition {condition!r} has no type code (add --type-map {condition or '*'}=nm)"
        elif vcode is None:
            problems[vid] = f"view {view!r} has no three-digit code (add --view-map {view or '*'}=090)"
        else:
            rows.append((vid, ids[subject], code, _text(row.session) or "", vcode))
    names: dict[str, SequenceName] = {}
    df = pd.DataFrame(rows, columns=["video_id", "sid", "code", "session", "view"])
    if len(df):
        df["take"] = df.groupby(["sid", "code", "session", "view"]).cumcount()
        for (sid, code), g in df.groupby(["sid", "code"], sort=False):
            keys = sorted({(s, t) for s, t in zip(g["session"], g["take"], strict=True)},
                          key=lambda st: (natural_key(st[0]), st[1]))  # fmt: skip
            number = {k: i + 1 for i, k in enumerate(keys)}
            for r in g.itertuples(index=False):
                names[r.video_id] = SequenceName(sid, f"{code}-{number[(r.session, r.take)]:02d}", r.view)
    return SequenceNames("casiab", names, ids, problems)


def sequence_names(
    videos: pd.DataFrame, naming: str = "plain", casiab: CasiaBNaming | None = None
) -> SequenceNames:
    if naming not in NAMINGS:
        raise GaitdataError(f"naming must be one of {', '.join(NAMINGS)}, not {naming!r}")
    return casiab_names(videos, casiab) if naming == "casiab" else plain_names(videos)


def check_subject_parts(split: Split) -> None:
    """Raise when a subject has recordings in two parts of ``split`` (a split by video)."""
    seen: dict[str, str] = {}
    for p in split.part_names:
        for s in split.subjects(p):
            if seen.setdefault(s, p) != p:
                raise GaitdataError(
                    f"split {split.name!r} puts subject {s!r} in parts {seen[s]!r} and {p!r}; gait recognition "
                    f"is tested on people it never saw: make a split by subject (gaitdata split ROOT --by subject)"
                )


def partition(
    split: Split,
    names: SequenceNames,
    test_parts: Sequence[str] = ("test",),
    train_parts: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """OpenGait's ``{"TRAIN_SET": [ids], "TEST_SET": [ids]}`` from a split's parts.

    ``train_parts`` defaults to every part not in ``test_parts``. Ids are the subject directories of
    ``names``. A subject in both sets (a split by video) is an error: gait recognition is tested
    on people it never saw.
    """
    parts = tuple(split.part_names)
    test = tuple(test_parts)
    train = tuple(train_parts) if train_parts is not None else tuple(p for p in parts if p not in test)
    for p in (*test, *train):
        if p not in parts:
            raise GaitdataError(
                f"split {split.name!r} has no part {p!r}; it has: {', '.join(parts)} "
                f"(choose with --test-part/--train-part)"
            )
    sets: dict[str, set[str]] = {"TRAIN_SET": set(), "TEST_SET": set()}
    for key, chosen in (("TRAIN_SET", train), ("TEST_SET", test)):
        for p in chosen:
            sets[key].update(i for i in (names.subject_id(s) for s in split.subjects(p)) if i)
    both = sorted(sets["TRAIN_SET"] & sets["TEST_SET"])
    if both:
        raise GaitdataError(
            f"split {split.name!r} puts subject(s) {', '.join(both[:5])} in both training and test parts; "
            f"gait recognition needs a split by subject: gaitdata split ROOT --by subject --name NAME"
        )
    return {key: sorted(v) for key, v in sets.items()}
