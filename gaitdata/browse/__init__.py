"""Browse and review a dataset root in FiftyOne (the ``fiftyone`` extra).

Importing this package does not import FiftyOne; each function configures FiftyOne and starts
its database (under a directory the user controls, see :mod:`gaitdata.browse.db`) first.

>>> ds = build_dataset("data/root")                # doctest: +SKIP
>>> launch("data/root", port=5151)                 # doctest: +SKIP  (Ctrl-C to stop)
>>> pull("data/root", "mediapipe")                 # doctest: +SKIP  -> labels/mediapipe.reviewed.parquet
"""

from gaitdata.browse.app import AppInfo, choose_port, launch, serve
from gaitdata.browse.build import build_dataset, dataset_name, field_name, frame_agreement
from gaitdata.browse.db import connect, resolve_db_dir
from gaitdata.browse.pull import pull

__all__ = [
    "AppInfo",
    "build_dataset",
    "choose_port",
    "connect",
    "dataset_name",
    "field_name",
    "frame_agreement",
    "launch",
    "pull",
    "resolve_db_dir",
    "serve",
]
