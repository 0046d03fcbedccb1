"""Labelling on Ray: each recording of :func:`pseudolabel.runner.label` as one Ray task.

A task runs the runner's own per-recording step (label the recording, write its part; passed in as
``step``, so this module never imports the runner) with a teacher and a box proposer made in the
worker process from the run's settings, once per process (a GPU task gets a fresh process: see
:mod:`gaitdata.distributed`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from gaitdata.dataset import DatasetRoot
from gaitdata.distributed import RayOptions, RayPool
from gaitdata.procs import as_done
from pseudolabel.boxes import BoxProposer, make_proposer
from pseudolabel.registry import Teacher, teacher_factory

# step(job, teacher, proposer) -> the recording's statistics; jobs have .root, .video and .frames
Step = Callable[[Any, Teacher, BoxProposer | None], Any]


@dataclass(frozen=True, eq=False)
class _Makers:
    """How a Ray worker makes the run's teacher and box proposer (the driver's own are not shipped)."""

    factory: Any  # the registered teacher factory (pickled by reference, or by value when made in __main__)
    teacher_kwargs: dict
    box_spec: str
    box_opts: dict
    root: str

    def _key(self) -> str:
        return json.dumps([repr(self.factory), self.teacher_kwargs, self.box_spec, self.box_opts, self.root],
                          sort_keys=True, default=str)  # fmt: skip

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Makers) and self._key() == other._key()


@lru_cache(maxsize=1)
def _worker_tools(makers: _Makers) -> tuple[Teacher, BoxProposer | None]:
    """The teacher and proposer of a Ray worker process, made once and kept for its next recordings."""
    model = makers.factory(**makers.teacher_kwargs)
    proposer = None if makers.box_spec == "none" else make_proposer(makers.box_spec, **makers.box_opts)
    prepare = getattr(proposer, "prepare", None)
    if callable(prepare):
        prepare(DatasetRoot(makers.root))
    return model, proposer


def _label_task(step: Step, job: Any, makers: _Makers) -> Any:
    """A Ray task: label one recording with this worker's teacher and write its part."""
    model, proposer = _worker_tools(makers)
    return step(job, model, proposer)


def label_on_ray(jobs: list[Any], step: Step, ray: RayOptions, teacher: str, teacher_kwargs: dict[str, Any],
                 box_spec: str, box_opts: dict[str, Any], *, on_done: Callable[[int], None] | None = None,
                 note: Callable[[str], None] | None = None) -> list[Any]:  # fmt: skip
    """``step`` on each recording as a Ray task; returns the steps' results in completion order. The
    first error stops the rest and is raised here, as in a local run.

    ``step`` must be importable by the workers (a module-level function). ``on_done(n_frames)`` is
    called as each recording's part is written; ``note`` gets one line saying where the tasks run.
    GPUs per task: ``ray.gpus_per_task``, else 1 with a CUDA device.
    """
    makers = _Makers(teacher_factory(teacher), _portable(teacher_kwargs), _portable_boxes(box_spec), box_opts,
                     jobs[0].root)  # fmt: skip
    gpus = 1.0 if str(teacher_kwargs.get("device", "")).startswith("cuda") else 0.0
    stats: list[Any] = []
    with RayPool(ray, paths=[jobs[0].root], gpus_per_task=gpus, note=note) as pool:

        def submit(job: Any) -> Any:
            return pool.run(f"gaitdata-label:{job.video['video_id']}", _label_task, step, job, makers)

        for job, fut in as_done(jobs, submit, window=2 * pool.slots + 2):
            stats.append(fut.result())
            if on_done is not None:
                on_done(len(job.frames))
    return stats


def _portable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Teacher options for another process: a relative weights path made absolute."""
    out = dict(kwargs)
    if out.get("weights") is not None:
        out["weights"] = str(Path(out["weights"]).expanduser().resolve())
    return out


def _portable_boxes(spec: str) -> str:
    return f"json:{Path(spec[5:]).expanduser().resolve()}" if spec.startswith("json:") else spec


__all__ = ["label_on_ray"]
