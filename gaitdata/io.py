"""Atomic writes, file modes, file fingerprints and safe checkpoint reads.

Every file the toolkit writes goes through these helpers: data lands in a temporary file in the
same directory and is renamed into place, so a crash never leaves a half-written file under the
final name. The file gets the mode the process umask gives a new file (0644 under umask 022,
0640 under 027), like any other tool, although the temporary file starts private.

:func:`load_torch_file` is the one place PyTorch files are read: ``weights_only=True``, and every
failure becomes a one-line :class:`~gaitdata.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from gaitdata.errors import CheckpointError, GaitdataNotFoundError, UnsafeCheckpointError

_FINGERPRINT_CHUNK = 4 << 20  # bytes hashed at the head, middle and tail of a file


_UMASK_GUARD = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_GUARD:  # elsewhere: set and restore (another thread creating a file just then is unaffected
        old = os.umask(0o077)  # in mode bits only by a stricter mask)
        os.umask(old)
    return old


def file_mode() -> int:
    """The mode a new regular file gets under the current umask (``0o666 & ~umask``)."""
    return 0o666 & ~current_umask()


def apply_umask_mode(fd_or_path: int | str | os.PathLike) -> None:
    """Give a file made private by ``mkstemp`` the mode the umask gives new files."""
    if isinstance(fd_or_path, int):
        os.fchmod(fd_or_path, file_mode())
    else:
        os.chmod(fd_or_path, file_mode())


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "wb", *, tmp_dir: str | os.PathLike | None = None, **kwargs: Any
) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename onto ``path`` on success.

    ``tmp_dir`` puts the temporary file elsewhere on the same filesystem (for folders that must
    hold nothing but finished files). The final file has the umask's mode (mkstemp's temporary
    file starts 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    where = Path(tmp_dir) if tmp_dir is not None else path.parent
    where.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=where)
    except OSError as exc:  # name the file the caller asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            apply_umask_mode(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=json_default) + "\n")


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars/arrays and paths."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_parquet(path: str | os.PathLike, table: Any, *, tmp_dir: str | os.PathLike | None = None) -> None:
    """Write a pandas DataFrame or a pyarrow Table to parquet atomically (see :func:`atomic_open`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_open(path, "wb", tmp_dir=tmp_dir) as fh:
        pq.write_table(table, fh, compression="zstd")


def file_fingerprint(path: str | os.PathLike) -> str:
    """``"<size>-<blake2b>"`` of the size plus the head, middle and tail 4 MiB of the file.

    Cheap on multi-GB recordings, and any truncation, append or re-recording changes it.
    """
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with path.open("rb") as fh:
        if size <= 3 * _FINGERPRINT_CHUNK:
            h.update(fh.read())
        else:
            for off in (0, size // 2 - _FINGERPRINT_CHUNK // 2, size - _FINGERPRINT_CHUNK):
                fh.seek(off)
                h.update(fh.read(_FINGERPRINT_CHUNK))
    return f"{size}-{h.hexdigest()}"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Full SHA-256 of a file (for checkpoints recorded with label sets)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---- PyTorch files --------------------------------------------------------------------------------------
_UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_torch_file(path: str | os.PathLike, *, expected: str | None = None,
                    fix: str = "copy or download it again") -> Any:  # fmt: skip
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors.

    A missing file raises :class:`~gaitdata.errors.GaitdataNotFoundError` (a ``CheckpointError``
    too); a file whose pickle holds Python objects other than plain weights is refused as such
    (:class:`~gaitdata.errors.UnsafeCheckpointError`: loading it could run code); a truncated,
    corrupt or foreign file raises :class:`~gaitdata.errors.CheckpointError`. ``expected`` says
    which file the caller wanted; ``fix`` what to do about a damaged one.
    """
    import pickle
    import struct
    import zipfile

    from gaitdata.errors import require

    torch = require("torch", "train")
    path = Path(path)
    want = f" (expected {expected})" if expected else ""
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise _CheckpointNotFound(f"checkpoint {what}: {path}{want}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes){want}; {fix}")
    try:
        with warnings.catch_warnings():  # quantised tensors (TypedStorage), pickle-protocol notes
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        m = _UNSAFE_GLOBAL.search(str(exc))
        verdict, name = ("unsafe", m.group(1)) if m else _scan_pickle(path)
        if verdict == "unsafe":
            found = f" (it references {name})" if name else ""
            raise UnsafeCheckpointError(
                f"{path}{want} contains Python objects that are not plain weights{found}; refusing to load it: "
                f"only load checkpoints you trust, and use a plain weights file (a state_dict of tensors)"
            ) from None
        if verdict == "plain" and "Unsupported operand" in str(exc):
            raise CheckpointError(
                f"{path}{want} holds plain weights pickled with a protocol PyTorch's safe loader does not read "
                f"({_torch_reason(exc)}); re-save it with torch.save(state_dict, path) and its default protocol"
            ) from None
        raise _unreadable(path, exc, want, fix) from exc
    except (OSError, RuntimeError, EOFError, KeyError, IndexError, ValueError, TypeError, AttributeError,
            UnicodeDecodeError, zipfile.BadZipFile, struct.error) as exc:  # fmt: skip
        raise _unreadable(path, exc, want, fix) from exc


_PLAIN_GLOBALS = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset", "builtins.slice")


def _pickle_streams(path: Path) -> list[bytes]:
    """The pickle streams of a checkpoint: ``data.pkl`` inside torch's zip container, or the file."""
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return [zf.read(n) for n in zf.namelist() if n.endswith("data.pkl")]
    return [path.read_bytes()]


def _scan_pickle(path: Path) -> tuple[str, str]:
    """What a checkpoint's pickle would build, scanned and never executed: ``("unsafe", NAME)`` for the
    first Python global that is not part of plain weights (tensors, storages, ordered dicts; NAME is
    ``""`` when unnamed), ``("plain", "")`` for a complete pickle of plain weights, ``("broken", "")``
    for a damaged container or no pickle at all."""
    import io as _io
    import pickletools

    try:
        streams = _pickle_streams(path)
    except Exception:  # a damaged container: not the case of an unsafe object
        return "broken", ""
    if not streams:
        return "broken", ""
    for data in streams:
        recent: list[str | None] = [None, None]  # the last two values pushed (strings or None)
        memo: dict[int, str | None] = {}
        try:
            for op, arg, _ in pickletools.genops(_io.BytesIO(data)):
                if op.name == "MEMOIZE":
                    memo[len(memo)] = recent[-1]
                    continue
                if op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[int(arg)] = recent[-1]
                    continue
                if op.name in ("GET", "BINGET", "LONG_BINGET"):
                    pushed = memo.get(int(arg))
                else:
                    pushed = arg if isinstance(arg, str) and ("UNICODE" in op.name or "STRING" in op.name) else None
                name = None
                if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                    name = arg.replace(" ", ".")
                elif op.name == "STACK_GLOBAL":
                    name = ".".join(recent) if all(recent) else ""  # type: ignore[arg-type]
                elif op.name == "OBJ":
                    name = ""
                if name is not None and (not name or not name.startswith(_PLAIN_GLOBALS)):
                    return "unsafe", name
                recent = [recent[-1], pushed if isinstance(pushed, str) else None]
        except Exception:  # not a pickle stream at all (or a damaged one)
            return "broken", ""
    return "plain", ""


def _torch_reason(exc: BaseException) -> str:
    """The cause in torch's error text, without its advice (which includes retrying unsafely)."""
    advice = ("weights only load failed", "weights_only", "check the documentation", "please file an issue")
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not any(a in line.lower() for a in advice):
            return line[:200]
    return ""


class _CheckpointNotFound(CheckpointError, GaitdataNotFoundError):
    pass


def _unreadable(path: Path, exc: BaseException, want: str, fix: str) -> CheckpointError:
    reason = _torch_reason(exc)
    return CheckpointError(
        f"{path} is not a readable PyTorch checkpoint: it is truncated, corrupt or not a PyTorch weights file "
        f"({type(exc).__name__}{': ' + reason if reason else ''}){want}; {fix}"
    )
