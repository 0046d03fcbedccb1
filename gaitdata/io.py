"""Atomic writes and file fingerprints.

Every file the toolkit writes goes through these helpers: data lands in a temporary file in the
same directory and is renamed into place, so a crash never leaves a half-written file under the
final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

_FINGERPRINT_CHUNK = 4 << 20  # bytes hashed at the head, middle and tail of a file


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "wb", *, tmp_dir: str | os.PathLike | None = None, **kwargs: Any
) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename onto ``path`` on success.

    ``tmp_dir`` puts the temporary file elsewhere on the same filesystem (for folders that must
    hold nothing but finished files).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    where = Path(tmp_dir) if tmp_dir is not None else path.parent
    where.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=where)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
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
