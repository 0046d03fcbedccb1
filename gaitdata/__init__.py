"""gaitdata: RealSense gait recordings -> clean pose dataset -> small, fast pose model.

Importing this package is cheap: heavy and optional dependencies (torch, pyrealsense2,
mediapipe, fiftyone, onnxruntime) are imported lazily by the modules that need them.
"""

from typing import Any

from gaitdata._version import __version__
from gaitdata.errors import GaitdataError, MissingDependencyError

__all__ = ["COCO17", "GaitdataError", "KeypointSchema", "MissingDependencyError", "__version__"]


def __getattr__(name: str) -> Any:
    """``COCO17`` and ``KeypointSchema`` come from :mod:`gaitdata.schema` (numpy) when first used."""
    if name in ("COCO17", "KeypointSchema"):
        from gaitdata import schema

        return getattr(schema, name)
    raise AttributeError(f"module 'gaitdata' has no attribute {name!r}")
