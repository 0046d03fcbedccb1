"""Errors and lazy optional imports.

Errors raised on user input name the file and the fix; they are never ``assert``.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class GaitdataError(Exception):
    """A user-facing error: the message names the file (when there is one) and the fix."""


class GaitdataNotFoundError(GaitdataError, FileNotFoundError):
    """A file or folder the user named (or that a stage needs) does not exist; the message says how to make it."""


class MissingDependencyError(GaitdataError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""


class CheckpointError(GaitdataError):
    """A checkpoint file is missing, unreadable, or does not match the model."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holds pickled Python objects beyond plain weights; it is refused, not run."""


def require(module: str, extra: str, *, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    >>> np = require("numpy", "core")
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # the package or one of its system libraries is missing
        pkg = package or module.split(".")[0]
        raise MissingDependencyError(
            f"{module!r} is needed for this feature but could not be imported ({exc}). "
            f"Install it with: pip install 'gaitdata[{extra}]'  (package: {pkg}); "
            f"or run `make setup` to install every extra."
        ) from exc
