"""Shared fixtures and marker handling.

Markers (see pyproject.toml): ``gpu`` skips without CUDA, ``weights`` skips unless
GAITDATA_WEIGHTS_DIR names a directory holding the official checkpoint the test asks for,
``mediapipe``/``realsense``/``fiftyone``/``ray`` skip when that optional part is absent; ``browser`` skips only
where Chromium is absent and apt (which the set-up uses to install it) is too.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _can_import(module: str) -> bool:
    try:
        __import__(module)
        return True
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda = None
    for item in items:
        if "gpu" in item.keywords:
            if cuda is None:
                cuda = _can_import("torch") and __import__("torch").cuda.is_available()
            if not cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
        if "weights" in item.keywords and not os.environ.get("GAITDATA_WEIGHTS_DIR"):
            item.add_marker(pytest.mark.skip(reason="set GAITDATA_WEIGHTS_DIR to a folder with official checkpoints"))
        if "mediapipe" in item.keywords and not _has("mediapipe"):
            item.add_marker(pytest.mark.skip(reason="mediapipe==0.10.14 not installed (teachers extra)"))
        if "realsense" in item.keywords and not _can_import("pyrealsense2"):
            item.add_marker(pytest.mark.skip(reason="pyrealsense2 not importable (realsense extra + libusb)"))
        if "fiftyone" in item.keywords and not _has("fiftyone"):
            item.add_marker(pytest.mark.skip(reason="fiftyone not installed (fiftyone extra)"))
        if "ray" in item.keywords and not _has("ray"):
            item.add_marker(pytest.mark.skip(reason="ray not installed (distributed extra)"))
        # the set-up installs Chromium wherever apt exists: only a machine without apt skips
        if "browser" in item.keywords and not (shutil.which("chromium") or shutil.which("chromium-browser")
                                               or shutil.which("apt-get")):  # fmt: skip
            item.add_marker(pytest.mark.skip(reason="headless Chromium not found and no apt-get to install it"))


@pytest.fixture
def weights_dir() -> Path:
    return Path(os.environ["GAITDATA_WEIGHTS_DIR"])


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (two test workers share two cores); restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
