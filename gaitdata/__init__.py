"""gaitdata: RealSense gait recordings -> clean pose dataset -> small, fast pose model.

Importing this package is cheap: heavy and optional dependencies (torch, pyrealsense2,
mediapipe, fiftyone, onnxruntime) are imported lazily by the modules that need them.
"""

from gaitdata._version import __version__
from gaitdata.errors import GaitdataError, MissingDependencyError
from gaitdata.schema import COCO17, KeypointSchema

__all__ = ["COCO17", "GaitdataError", "KeypointSchema", "MissingDependencyError", "__version__"]
