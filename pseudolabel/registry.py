"""Teacher registry in the style of timm: ``register_teacher``, ``create_teacher``, ``list_teachers``.

A teacher module registers a factory under a name at import time; the registry knows which module
holds which built-in teacher so that listing and creating never imports heavy dependencies of the
others. A teacher takes a batch of RGB images (uint8, HxWx3) and optional person boxes and returns,
per image, a list of :class:`gaitdata.records.Pose` in the COCO-17 schema.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gaitdata.errors import GaitdataError
from gaitdata.records import Pose
from gaitdata.schema import COCO17, KeypointSchema


@dataclass(frozen=True)
class TeacherConfig:
    """Weights and preprocessing as data (cf. timm ``PretrainedCfg``)."""

    name: str
    input_size: tuple[int, int] | None  # (height, width) of the network input, None if the model decides
    mean: tuple[float, float, float] | None  # per-channel, in the model's channel order, [0, 1] scale
    std: tuple[float, float, float] | None
    channel_order: str  # "RGB" or "BGR"
    schema: KeypointSchema = COCO17
    top_down: bool = True  # needs person boxes (a proposer supplies them when not given)
    source: str = ""  # where the architecture and official weights come from
    license: str = ""
    weights_file: str | None = None  # official checkpoint file name, when the teacher needs one
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Teacher(Protocol):
    cfg: TeacherConfig
    weights_hash: str | None  # sha256 of the checkpoint (or of the bundled model files)

    def predict(
        self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray | None] | None = None
    ) -> list[list[Pose]]:
        """RGB uint8 images -> per image, poses (COCO-17, confidences in [0, 1]).

        ``boxes``: per image an (N, 4) array of person boxes (x, y, w, h) or None.
        """
        ...

    def reset(self) -> None:
        """Forget tracking state (called between recordings)."""
        ...


# A teacher may also define ``refine_recording(rows, near_depths)``: the runner calls it once per
# recording with the recording's raw label rows (and per-row joint depths), before post-processing,
# to change keypoints in place with the whole recording in view (e.g. left/right consistency).


def check_device(device: str) -> None:
    """``auto``/``cpu`` always pass; ``cuda[:N]`` needs torch with a visible CUDA device."""
    if device in ("auto", "cpu"):
        return
    if not device.startswith("cuda"):
        raise GaitdataError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    from gaitdata.errors import require

    torch = require("torch", "teachers")
    if not torch.cuda.is_available():
        raise GaitdataError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu or auto")


def pick_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; asking for CUDA without one is an error."""
    check_device(device)
    if device != "auto":
        return device
    from gaitdata.errors import require

    return "cuda" if require("torch", "teachers").cuda.is_available() else "cpu"


# Built-in teachers: name -> module that registers it on import (imported lazily).
_BUILTIN: dict[str, str] = {
    "mediapipe": "pseudolabel.teachers.mediapipe",
    "alphapose": "pseudolabel.teachers.alphapose",
    "centernet": "pseudolabel.teachers.centernet",
    "student": "gaitdata.student.teacher",  # the student layer's plug-in, found by name
}


class TeacherRegistry:
    """Holds factories. One default instance lives in this module; tests can make their own."""

    def __init__(self, builtin: dict[str, str] | None = None) -> None:
        self._factories: dict[str, Callable[..., Teacher]] = {}
        self._builtin = dict(builtin or {})

    def register(self, name: str, factory: Callable[..., Teacher] | None = None):
        def deco(f: Callable[..., Teacher]) -> Callable[..., Teacher]:
            if name in self._factories and self._factories[name] is not f:
                raise ValueError(f"teacher {name!r} is already registered")
            self._factories[name] = f
            return f

        return deco(factory) if factory is not None else deco

    def names(self) -> list[str]:
        return sorted(set(self._factories) | set(self._builtin))

    def factory(self, name: str) -> Callable[..., Teacher]:
        if name not in self._factories and name in self._builtin:
            importlib.import_module(self._builtin[name])
        if name not in self._factories:
            raise GaitdataError(f"unknown teacher {name!r}; valid teachers: {', '.join(self.names())}")
        return self._factories[name]

    def create(self, name: str, **cfg: Any) -> Teacher:
        return self.factory(name)(**cfg)


_REGISTRY = TeacherRegistry(_BUILTIN)


def register_teacher(name: str, factory: Callable[..., Teacher] | None = None):
    """Register a teacher factory (usable as a decorator): ``@register_teacher("mine")``."""
    return _REGISTRY.register(name, factory)


def create_teacher(name: str, **cfg: Any) -> Teacher:
    """Create a teacher by name; an unknown name raises an error listing the valid ones."""
    return _REGISTRY.create(name, **cfg)


def teacher_factory(name: str) -> Callable[..., Teacher]:
    """The factory registered under ``name`` (e.g. to make the same teacher in another process)."""
    return _REGISTRY.factory(name)


def list_teachers() -> list[str]:
    return _REGISTRY.names()
