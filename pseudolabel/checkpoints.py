"""Loading official checkpoints into our own modules, strictly and reproducibly.

The checkpoint-exact teachers (AlphaPose FastPose, CenterNet) load the files their authors
published *unchanged*. Loading follows timm's ``checkpoint_filter_fn`` habit:

1. :func:`read_checkpoint` reads the file with ``torch.load(..., weights_only=True)`` (no arbitrary
   code runs) and turns every failure (missing, empty, truncated, not a PyTorch file, pickled
   objects that are not tensors) into one :class:`CheckpointError` naming the file.
2. :func:`clean_state_dict` unwraps ``{'state_dict': ...}`` / ``{'model': ...}`` and strips the
   ``module.`` prefix that ``nn.DataParallel`` adds.
3. An optional ``filter_fn(state_dict, model) -> state_dict`` remaps keys. It is a pure function
   (no side effects, returns a new dict); :func:`make_filter_fn` builds one from regex renames and
   drop patterns.
4. :func:`check_state_dict` compares keys and shapes with the model and raises an error listing the
   missing, unexpected and shape-mismatched keys and which checkpoint was expected;
   ``model.load_state_dict(strict=True)`` then copies the tensors.

``load_checkpoint`` returns the file's sha256, which label sets record as the teacher's weights
hash. :func:`resolve_weights` finds a teacher's file: a path the user names, else the folder named
by ``GAITDATA_WEIGHTS_DIR``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gaitdata.errors import CheckpointError, GaitdataError, require
from gaitdata.io import load_torch_file

if TYPE_CHECKING:  # pragma: no cover
    import torch

StateDict = dict[str, "torch.Tensor"]
FilterFn = Callable[[StateDict, "torch.nn.Module"], StateDict]

WEIGHTS_ENV = "GAITDATA_WEIGHTS_DIR"  # the folder of official checkpoints, when --weights is not given
_WRAPPER_KEYS = ("state_dict", "model")  # tried in this order
_MAX_LISTED = 12  # keys listed per category in a mismatch message

__all__ = [
    "WEIGHTS_ENV", "CheckpointError", "check_state_dict", "clean_state_dict", "load_checkpoint", "make_filter_fn",
    "read_checkpoint", "resolve_weights", "sha256_file",
]  # fmt: skip


def resolve_weights(weights: str | os.PathLike | None, file_name: str, teacher: str, what: str, source: str) -> Path:
    """The checkpoint a teacher loads: ``weights`` (a file, or a folder holding ``file_name``), else
    ``$GAITDATA_WEIGHTS_DIR/file_name``. When neither exists, one line says what ``teacher`` needs
    (``what``, e.g. "AlphaPose's official checkpoint"), where to download it (``source``) and where to put it."""
    if weights is not None:
        p = Path(weights).expanduser()
        if p.is_dir():
            p = p / file_name
        if not p.is_file():
            raise GaitdataError(
                f"{teacher} weights not found: {p}; pass the path of {what} {file_name} with "
                f"--weights PATH (or put it in the folder named by {WEIGHTS_ENV})"
            )
        return p
    folder = os.environ.get(WEIGHTS_ENV)
    if folder and (Path(folder).expanduser() / file_name).is_file():
        return Path(folder).expanduser() / file_name
    where = f"{WEIGHTS_ENV}={folder} has no {file_name}" if folder else f"{WEIGHTS_ENV} is not set"
    raise GaitdataError(
        f"the {teacher} teacher needs {what} {file_name} ({where}): download it from {source}, then pass "
        f"--weights /path/to/{file_name} or put it in a folder and set {WEIGHTS_ENV} to that folder"
    )


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a whole file (recorded as the weights hash of a label set)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_checkpoint(path: str | os.PathLike, *, expected: str | None = None) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with clear errors.

    ``expected`` describes the checkpoint the caller wants (e.g. "AlphaPose fast_res50_256x192.pth");
    it is repeated in error messages so that the user knows what to put where. A file holding
    pickled Python objects beyond weights is refused (:class:`gaitdata.errors.UnsafeCheckpointError`).
    """
    require("torch", "teachers")
    return load_torch_file(path, expected=expected, fix="download it again")


def clean_state_dict(obj: Any, *, source: str = "checkpoint") -> StateDict:
    """Unwrap ``'state_dict'``/``'model'`` containers and strip ``module.``; a pure function.

    Raises :class:`CheckpointError` when the result is not a flat ``str -> Tensor`` mapping.
    """
    torch = require("torch", "teachers")
    sd = obj
    for _ in range(2):  # e.g. {'model': {'state_dict': ...}} in some training loops
        if isinstance(sd, Mapping):
            inner = next((sd[k] for k in _WRAPPER_KEYS if isinstance(sd.get(k), Mapping)), None)
            if inner is not None and not any(torch.is_tensor(v) for v in sd.values()):
                sd = inner
    if not isinstance(sd, Mapping):
        raise CheckpointError(
            f"{source}: expected a state_dict (a dict of tensors), found {type(sd).__name__}"
        )
    out: StateDict = {}
    non_tensor: list[str] = []
    for k, v in sd.items():
        if not torch.is_tensor(v):
            non_tensor.append(str(k))
            continue
        key = str(k)
        out[key[len("module.") :] if key.startswith("module.") else key] = v
    if not out:
        raise CheckpointError(f"{source}: holds no tensors (top-level entries: {_fmt_keys(list(sd.keys()))})")
    if non_tensor:
        raise CheckpointError(
            f"{source}: the state_dict holds non-tensor entries {_fmt_keys(non_tensor)}; "
            "is this a training checkpoint of another program?"
        )
    return out


def make_filter_fn(renames: Iterable[tuple[str, str]] = (), drop: Iterable[str] = ()) -> FilterFn:
    """Build a pure ``filter_fn(state_dict, model)``: drop keys matching any ``drop`` regex, then
    apply each ``(pattern, replacement)`` of ``renames`` with :func:`re.sub`, in order."""
    rename_rules = [(re.compile(p), r) for p, r in renames]
    drop_rules = [re.compile(p) for p in drop]

    def filter_fn(state_dict: StateDict, model: Any = None) -> StateDict:
        out: StateDict = {}
        for k, v in state_dict.items():
            if any(d.search(k) for d in drop_rules):
                continue
            for pat, rep in rename_rules:
                k = pat.sub(rep, k)
            out[k] = v
        return out

    return filter_fn


def _fmt_keys(keys: list[str], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)})"


def check_state_dict(
    state_dict: Mapping[str, Any], model: torch.nn.Module, *, source: str = "checkpoint",
    expected: str | None = None, strict: bool = True,
) -> None:  # fmt: skip
    """Raise :class:`CheckpointError` when keys or shapes differ from ``model.state_dict()``.

    With ``strict=False`` only shape mismatches of shared keys are errors.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if not mismatched and (not strict or (not missing and not unexpected)):
        return
    parts = [
        f"{source} does not match {type(model).__name__} "
        f"({len(state_dict)} entries found, {len(own)} expected)"
    ]
    if missing:
        parts.append(f"missing keys {_fmt_keys(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {_fmt_keys(unexpected)}")
    if mismatched:
        parts.append(f"shape mismatches (found vs expected) {_fmt_keys(mismatched)}")
    parts.append(f"expected {expected}" if expected else "is this the right checkpoint for this model?")
    raise CheckpointError("; ".join(parts))


def load_checkpoint(
    path: str | os.PathLike, model: torch.nn.Module, filter_fn: FilterFn | None = None,
    strict: bool = True, *, expected: str | None = None,
) -> str:  # fmt: skip
    """Load an official checkpoint into ``model`` and return the file's sha256.

    The file is read safely (``weights_only=True``), unwrapped and de-prefixed
    (:func:`clean_state_dict`), remapped by ``filter_fn`` when given, checked key by key and shape
    by shape (:func:`check_state_dict`), then loaded with ``load_state_dict(strict=strict)``.
    Every failure raises :class:`CheckpointError` naming the file and, when given, ``expected``.
    """
    path = Path(path)
    raw = read_checkpoint(path, expected=expected)
    sd = clean_state_dict(raw, source=f"checkpoint {path}")
    if filter_fn is not None:
        sd = filter_fn(sd, model)
    check_state_dict(sd, model, source=f"checkpoint {path}", expected=expected, strict=strict)
    model.load_state_dict(sd, strict=strict)
    return sha256_file(path)
