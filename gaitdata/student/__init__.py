"""The student: a small FastPose-family top-down pose model (SPPE) trained on the COCO export.

Public API (torch is imported only when these are called)::

    from gaitdata import student
    student.list_students()
    net = student.create_student("fastpose_res18_w050", input_size=(128, 96))
    run = student.train(root, root / "exports/coco", model="fastpose_res18_w050", epochs=30)
    student.compress(run, "slim")      # -> run/pruned.pt (30% fewer MACs, checked against fp32)
    student.compress(run, "int8")      # -> run/int8.pt
    student.compress(run, "onnx")      # -> run/model.onnx (preprocessing in its metadata)
    res = student.evaluate(root, run, split="test", labels="mediapipe")   # -> res.report

Modules: ``models`` (architectures, registry, parameter/FLOP counts), ``data`` (COCO crops,
augmentation, heatmaps), ``trainer``, ``consistency`` (left/right consistency and smoothing along
tracks), ``gait`` (angles, heel strikes, cadence), ``slim`` (channel pruning), ``quant`` (int8,
ONNX), ``compression``, ``evaluation`` + ``report`` + ``cost``, ``checkpoint``. Tiny synthetic data for its tests:
:mod:`gaitdata.testing.figures`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gaitdata.lock import find_root, writes_root

DEFAULT_STUDENT = "fastpose_res18_w050"

__all__ = [
    "DEFAULT_STUDENT", "compress", "count_flops", "count_parameters", "create_student", "evaluate",
    "list_students", "load_student", "register_student", "train",
]  # fmt: skip


def list_students() -> list[str]:
    from gaitdata.student.models import list_students as _list

    return _list()


def create_student(name: str = DEFAULT_STUDENT, **kw: Any):
    """A student network by registered name; keyword arguments override architecture fields."""
    from gaitdata.student.models import create_student as _create

    return _create(name, **kw)


def register_student(name: str, factory: Any = None):
    from gaitdata.student.models import register_student as _register

    return _register(name, factory)


def count_parameters(model: Any) -> int:
    from gaitdata.student.models import count_parameters as _count

    return _count(model)


def count_flops(model: Any, input_size: tuple[int, int] | None = None) -> int:
    """Multiply-accumulates of one forward pass on one crop (conv, deconv, linear)."""
    from gaitdata.student.models import count_flops as _count

    return _count(model, input_size)


def load_student(path: Any):
    """A trained student (fp32, pruned or int8) from a run directory or checkpoint, in eval mode."""
    from gaitdata.student.checkpoint import model_from_checkpoint

    return model_from_checkpoint(path)


@writes_root("train", lambda a: [find_root(a["out"] or Path(a["root"]) / "models" / a["model"])], out="out")
def train(
    root: Any,
    export_dir: Any = None,
    model: str = DEFAULT_STUDENT,
    epochs: int = 30,
    out: Any = None,
    seed: int = 0,
    progress: bool = False,
    **cfg: Any,
) -> Path:
    """Train a student on a COCO export; returns the run directory. See :func:`gaitdata.student.trainer.train`."""
    from gaitdata.student.trainer import train as _train

    return _train(root, export_dir, model=model, epochs=epochs, out=out, seed=seed, progress=progress, **cfg)


@writes_root("compress", lambda a: {find_root(a["kw"].get("out") or a["model_path"]), find_root(a["model_path"])},
             out=lambda a: a["kw"].get("out"))
def compress(model_path: Any, method: str, **kw: Any) -> Path:
    """slim | int8 | onnx; returns the written file (its check against fp32 is in the run's
    compress.json). See :func:`gaitdata.student.compression.compress`."""
    from gaitdata.student.compression import compress as _compress

    return _compress(model_path, method, **kw)


@writes_root("evaluate", lambda a: {find_root(a["out"] or a["model_path"]),
                                    find_root(a["model_path"]) if a["kw"].get("make_variants", False) else None}, out="out")
def evaluate(
    root: Any,
    model_path: Any,
    split: str = "test",
    labels: str | None = None,
    gt: str | None = "auto",
    out: Any = None,
    **kw: Any,
):
    """Evaluate against the teacher (and ground truth) and write the report; returns an EvalResult.
    Keyword options (``make_variants``, ``consistency``, ``tolerance``, ...): see
    :func:`gaitdata.student.evaluation.evaluate`."""
    from gaitdata.student.evaluation import evaluate as _evaluate

    return _evaluate(root, model_path, split=split, labels=labels, gt=gt, out=out, **kw)
