"""Train a student SPPE on a COCO keypoints export, optionally distilling a teacher.

Library: :func:`train`; CLI: ``gaitdata train ROOT --export DIR --model NAME``.

The loss is a heatmap MSE weighted per joint by the teacher's confidence (``keypoint_scores`` of
the export) times the label's visibility (v > 0) times "the joint lies inside the crop". With
``teacher_weights`` (an official AlphaPose FastPose-R50 checkpoint) or ``teacher_model`` (any
module taking crops and returning heatmaps, e.g. the fp32 student when a pruned one is fine-tuned)
the teacher runs on the same crops (same affine, at its own input size) and its heatmaps, resized
to the student's, form a second term (MSE or spatial-softmax KL) mixed in with ``distill_alpha``.

Before training, the labels of each (recording, track) are made left/right consistent
(``label_consistency``, :mod:`gaitdata.student.consistency`): a teacher that swaps the legs in a
few side-view frames would otherwise teach the student to swap them too.

Runs are repeatable on CPU: the model is initialised from ``seed``, the epoch's order and every
crop's augmentation are drawn from ``(seed, epoch, index)``. Checkpoints are written after every
epoch (``last.pt``, plus ``best.pt`` by validation mean OKS against the labels). Running again into
the same run directory continues from ``last.pt`` (a finished run is returned as it is); a
different configuration is refused with the differing keys listed (``resume=True`` insists on
continuing, ``overwrite=True`` starts again).

Several GPUs or machines (never required)::

    torchrun --standalone --nproc_per_node 4 -m gaitdata train ROOT --model fastpose_res18_w050

When ``WORLD_SIZE`` > 1 (:mod:`gaitdata.student.ddp`) the process group is joined first (NCCL on
CUDA, else Gloo; the other ranks wait there while rank 0 takes the root lock, and only rank 0
holds it), each rank trains on its own shard of every epoch, DistributedDataParallel averages the
gradients and batch norm uses the statistics of the global batch, so N processes with
``batch_size`` B (per process) take the steps of one process with batch N x B. Logged losses are
averaged over the ranks; rank 0 alone validates and writes checkpoints, logs and progress.
``record_samples`` writes ``samples.csv``: the training samples each rank took at each step.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from gaitdata.errors import GaitdataError, require
from gaitdata.io import atomic_write_json, atomic_write_text, sha256_file
from gaitdata.schema import COCO17, KeypointSchema
from gaitdata.staleness import check_train_inputs
from gaitdata.student.data import AugmentConfig

# keys allowed to differ between a run and its resumption
RESUME_FREE_KEYS = frozenset({"epochs", "device", "num_workers", "progress", "log_every"})
AUGMENT_FIELDS = frozenset(f.name for f in fields(AugmentConfig))
LOG_HEADER = ("row", "epoch", "step", "loss", "label_loss", "distill_loss", "lr", "val_pck", "val_oks")
SAMPLES_HEADER = ("epoch", "step", "rank", "index", "ann_id")
# files of a run that a fresh run (overwrite) must not leave behind
RUN_FILES = (
    "best.pt", "last.pt", "pruned*.pt", "*int8.pt", "*.onnx", "compress.json", "train_log.csv", "samples.csv",
)  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    model: str = "fastpose_res18_w050"
    model_kwargs: dict = field(default_factory=dict)  # StudentArch overrides (input_size, width_mult, ...)
    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # cosine | step
    warmup_epochs: float = 1.0
    step_milestones: tuple[float, ...] = (0.7, 0.9)  # fractions of the run, x0.1 each (schedule=step)
    seed: int = 0
    sigma: float | None = None  # Gaussian sigma in heatmap pixels (default 2 at 64x48, scaled)
    # geometric and photometric augmentation (flat names such as flip_prob=... are accepted by
    # from_kwargs); sized for a fixed lab camera and upright walkers: measured on held-out synthetic
    # subjects, COCO-style 30 deg / 0.25 / 0.3 cost 0.05 OKS AP against the defaults
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    min_visible: int = 1
    label_consistency: bool = True  # left/right-consistent labels along each track (see module doc)
    teacher_weights: str | None = None
    teacher_input_size: tuple[int, int] = (256, 192)
    distill_alpha: float = 0.5  # loss = (1 - a) * label + a * distill, when a teacher is given
    distill_loss: str = "mse"  # mse | kl
    distill_temperature: float = 1.0
    # L1 strength on prunable BN scales (decoupled soft threshold, lr x slim_l1 per step), so that
    # `compress --method slim` finds low-scale channels
    slim_l1: float = 1e-2
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    device: str = "auto"
    num_workers: int = 0
    log_every: int = 10
    init_from: str | None = None  # set by train(init_from=...)

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "step"):
            raise GaitdataError(f"schedule must be cosine or step, got {self.schedule!r}")
        if self.distill_loss not in ("mse", "kl"):
            raise GaitdataError(f"distill_loss must be mse or kl, got {self.distill_loss!r}")
        if self.epochs < 1:
            raise GaitdataError(
                f"epochs must be at least 1, got {self.epochs}: a run without training would save an "
                f"untrained model as best.pt"
            )
        if self.batch_size < 1:
            raise GaitdataError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise GaitdataError(f"distill_alpha must be in [0, 1], got {self.distill_alpha}")
        if not isinstance(self.augment, AugmentConfig):
            raise GaitdataError(f"augment must be an AugmentConfig, got {type(self.augment).__name__}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        d["model_kwargs"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_kwargs.items()}
        return d

    @classmethod
    def from_kwargs(cls, **kw: Any) -> TrainConfig:
        """A config from keyword arguments: its own fields, plus :class:`AugmentConfig` fields by
        name (``flip_prob=0.0``) or as ``augment=`` (an AugmentConfig or a dict)."""
        names = {f.name for f in fields(cls)}
        unknown = set(kw) - names - AUGMENT_FIELDS
        if unknown:
            raise GaitdataError(
                f"unknown training option(s) {sorted(unknown)}; valid: {sorted(names | AUGMENT_FIELDS)}"
            )
        aug = kw.pop("augment", None)
        aug_kw = {k: kw.pop(k) for k in list(kw) if k in AUGMENT_FIELDS}
        if isinstance(aug, dict):
            aug_kw = {**aug, **aug_kw}
            aug = None
        if aug_kw or aug is None:
            bad = set(aug_kw) - AUGMENT_FIELDS
            if bad:
                raise GaitdataError(f"unknown augmentation option(s) {sorted(bad)}; valid: {sorted(AUGMENT_FIELDS)}")
            aug = replace(aug or AugmentConfig(), **aug_kw)
        for k in ("teacher_input_size", "step_milestones"):
            if k in kw and kw[k] is not None:
                kw[k] = tuple(kw[k])
        return cls(augment=aug, **kw)


def normalize_config(d: dict[str, Any]) -> dict[str, Any]:
    """A stored config dict in the current layout (augmentation fields nested under ``augment``)."""
    d = dict(d)
    aug = {**asdict(AugmentConfig()), **(d.get("augment") or {})}
    for k in AUGMENT_FIELDS:
        if k in d:
            aug[k] = d.pop(k)
    d["augment"] = aug
    return d


def config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys whose values differ (ignoring :data:`RESUME_FREE_KEYS`), as ``key: old -> new``."""
    a, b = _flatten(normalize_config(a)), _flatten(normalize_config(b))
    out = []
    for k in sorted(set(a) | set(b)):
        if k in RESUME_FREE_KEYS:
            continue
        if json.dumps(a.get(k), sort_keys=True) != json.dumps(b.get(k), sort_keys=True):
            out.append(f"{k}: {a.get(k)!r} -> {b.get(k)!r}")
    return out


def _flatten(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in d.items() if k != "augment"}
    out.update({f"augment.{k}": v for k, v in d.get("augment", {}).items()})
    return out


# ------------------------------------------------------------------------------------------------
# losses


def heatmap_loss(pred, target, weight):
    """Mean over batch and joints of weight_j x per-pixel MSE."""
    per = ((pred.float() - target) ** 2).mean(dim=(2, 3))
    return (per * weight).mean()


def distill_term(student_hm, teacher_hm, kind: str = "mse", temperature: float = 1.0):
    import torch.nn.functional as F

    t = teacher_hm.float()
    if t.shape[-2:] != student_hm.shape[-2:]:
        t = F.interpolate(t, size=student_hm.shape[-2:], mode="bilinear", align_corners=False)
    s = student_hm.float()
    if kind == "mse":
        return ((s - t) ** 2).mean()
    b, k = s.shape[:2]
    log_p = F.log_softmax(s.reshape(b, k, -1) / temperature, -1)
    q = F.softmax(t.reshape(b, k, -1) / temperature, -1)
    return F.kl_div(log_p, q, reduction="batchmean") * temperature**2 / k


# ------------------------------------------------------------------------------------------------
# teacher for distillation


def load_distillation_teacher(path: str | os.PathLike):
    """The FastPose-R50 teacher with an official (AlphaPose layout) checkpoint, in eval mode."""
    try:
        from pseudolabel.models.fastpose import build_fastpose_r50
    except ImportError as exc:
        raise GaitdataError(
            f"distillation needs the FastPose teacher (pseudolabel.models.fastpose): {exc}"
        ) from exc
    from pseudolabel.checkpoints import load_checkpoint as load_teacher_checkpoint

    model = build_fastpose_r50()
    load_teacher_checkpoint(path, model, expected="AlphaPose fast_res50_256x192.pth (FastPose-R50)")
    return model.eval()


# ------------------------------------------------------------------------------------------------
# helpers


def resolve_device(device: str):
    torch = require("torch", "train")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        if k in ("mat", "keypoints", "bbox"):
            out[k] = np.stack(vals)
        elif k == "index":
            out[k] = np.asarray(vals)
        else:
            out[k] = torch.from_numpy(np.stack(vals))
    return out


class _EpochSampler:
    """Shuffled order drawn from (seed, epoch); sharded by rank under DDP.

    With ``world`` > 1 the order is padded to a multiple of ``world`` by repeating its first
    samples (as ``DistributedSampler`` does) and rank r takes positions r, r + world, ...: the
    shards are disjoint, cover every sample, and batch i of every rank together is batch i of a
    single process with ``world`` times the batch size.
    """

    def __init__(self, n: int, seed: int, shuffle: bool, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.shuffle, self.rank, self.world = n, seed, shuffle, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng((self.seed, self.epoch, 7919)).permutation(self.n)

    def __iter__(self):
        order = self._order()
        if self.world > 1:
            per = math.ceil(self.n / self.world)
            order = np.resize(order, per * self.world)[self.rank :: self.world]
        return iter(order.tolist())

    def __len__(self) -> int:
        return math.ceil(self.n / self.world) if self.world > 1 else self.n


def make_loader(
    dataset, batch_size: int, *, shuffle: bool, seed: int, num_workers: int = 0, rank: int = 0, world: int = 1
):
    from torch.utils.data import DataLoader

    sampler = _EpochSampler(len(dataset), seed, shuffle, rank, world)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=_collate,
        drop_last=False,
        persistent_workers=False,
    )
    return loader, sampler


def predict_dataset(model, dataset, device=None, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Image-space (N, K, 2) predictions and (N, K) scores for every instance of a non-augmenting dataset."""
    import torch

    from gaitdata.student.data import heatmaps_to_image

    device = device or torch.device("cpu")
    loader, _ = make_loader(dataset, batch_size, shuffle=False, seed=0)
    preds, scores = [], []
    was = model.training
    model.eval()
    with torch.no_grad():
        for batch in loader:
            hm = model(batch["image"].to(device)).float().cpu().numpy()
            p, s = heatmaps_to_image(hm, batch["mat"], dataset.input_size)
            preds.append(p)
            scores.append(s)
    model.train(was)
    if not preds:
        k = dataset.schema.num_keypoints
        return np.zeros((0, k, 2)), np.zeros((0, k))
    return np.concatenate(preds), np.concatenate(scores)


def dataset_metrics(model, dataset, device=None) -> dict[str, float]:
    """PCK@0.1 (of the box's longer side) and mean OKS (box area as scale) of a model on a dataset's
    labelled joints."""
    from gaitdata.metrics import oks, pck

    if len(dataset) == 0:
        return {"pck": float("nan"), "oks": float("nan")}
    pred, _ = predict_dataset(model, dataset, device)
    gt = np.stack([i.keypoints for i in dataset.instances])
    boxes = np.array([i.bbox for i in dataset.instances])
    o = oks(pred, gt[..., :2], gt[..., 2], boxes[:, 2] * boxes[:, 3], dataset.schema)
    return {
        "pck": pck(pred, gt[..., :2], gt[..., 2], boxes[:, 2:].max(1), 0.1),
        "oks": float(np.nanmean(o)) if np.isfinite(o).any() else float("nan"),
    }


def dataset_pck(model, dataset, alpha: float = 0.1, device=None) -> float:
    """PCK@alpha (of the box's longer side) of a model on a dataset's labelled joints."""
    from gaitdata.metrics import pck

    if len(dataset) == 0:
        return float("nan")
    pred, _ = predict_dataset(model, dataset, device)
    gt = np.stack([i.keypoints for i in dataset.instances])
    ref = np.array([max(i.bbox[2], i.bbox[3]) for i in dataset.instances])
    return pck(pred, gt[..., :2], gt[..., 2], ref, alpha)


def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.schedule == "cosine":
            t = (step - warm) / max(1, total - warm)
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        return 0.1 ** sum(step >= m * total for m in cfg.step_milestones)

    return f


def dataset_schema(root: Path) -> KeypointSchema:
    from gaitdata.dataset import DatasetRoot

    r = DatasetRoot(root)
    return r.keypoint_schema() if r.exists() else COCO17


# ------------------------------------------------------------------------------------------------
# the training run: a short orchestrator over named steps


@dataclass(frozen=True)
class RunSpec:
    """What a run trains and where it writes (resolved from :func:`train`'s arguments)."""

    root: Path
    export_dir: Path
    run_dir: Path
    config: TrainConfig
    schema: KeypointSchema
    arch: Any  # StudentArch
    init: dict[str, Any] | None  # the init_from checkpoint
    train_split: str
    val_split: str


@dataclass(frozen=True)
class Placement:
    device: Any  # torch.device
    rank: int
    world: int
    owns_group: bool = False  # this run created the process group (and destroys it at the end)

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class RunData:
    image_root: Path
    instances: list
    val_instances: list
    n_consistency_fixes: int
    augment: AugmentConfig  # the config's augmentation with "auto" choices resolved for this data
    flip_reason: str


def train(
    root: str | os.PathLike,
    export_dir: str | os.PathLike | None = None,
    model: str = "fastpose_res18_w050",
    epochs: int = 30,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = False,
    *,
    resume: bool = False,
    overwrite: bool = False,
    image_root: str | os.PathLike | None = None,
    train_split: str = "train",
    val_split: str = "val",
    teacher_model: Any = None,
    init_from: str | os.PathLike | None = None,
    record_samples: bool = False,
    **cfg: Any,
) -> Path:
    """Train a student on ``<export_dir>/<train_split>.json`` (validate on ``<val_split>.json`` when present).

    ``root``: the dataset root (its ``dataset.json`` gives the keypoint schema; images are resolved
    against ``image_root``, default ``root``). ``export_dir`` defaults to ``<root>/exports/coco``.
    ``out``: the run directory (default ``<root>/models/<model>``). Other keyword arguments are
    :class:`TrainConfig` fields (augmentation fields by name, e.g. ``flip_prob=0.0``).
    ``teacher_model``: an already built teacher module (instead of ``teacher_weights``) taking the
    teacher crops and returning heatmaps. ``init_from``: a student checkpoint whose architecture and
    weights start the run (fine-tuning, e.g. after pruning). ``record_samples``: write
    ``samples.csv`` (epoch, step, rank, dataset index and annotation id of every training sample
    taken). Under torchrun see the module doc. Returns the run directory.
    """
    require("torch", "train")
    # under torchrun every rank joins the group before reading anything: the others wait there
    # while rank 0 takes the root lock
    place = setup_placement(str(cfg.get("device", "auto")))
    try:
        lineage = check_train_inputs(
            root, export_dir, model=model, out=out, overwrite=overwrite, train_split=train_split, val_split=val_split
        )
        spec = resolve_run(root, export_dir, model, epochs, out, seed, train_split, val_split, init_from, cfg)
        state = existing_state(spec, resume, overwrite)
        if state is not None and _finished(spec, state):
            return spec.run_dir
        data = load_data(spec, image_root)
        if overwrite and place.main:
            clear_run_dir(spec.run_dir)
        loop = TrainLoop(spec, place, data, state, teacher_model, progress, lineage, record_samples)
        loop.write_header()
        for epoch in range(loop.start_epoch, spec.config.epochs):
            loss = loop.run_epoch(epoch)
            loop.end_epoch(epoch, loss)
        loop.finish()
        return spec.run_dir
    finally:
        if place.owns_group:
            from gaitdata.student.ddp import close_group

            close_group()


def resolve_run(
    root, export_dir, model, epochs, out, seed, train_split, val_split, init_from, cfg: dict[str, Any]
) -> RunSpec:
    """Config, schema, architecture and run directory of a run (nothing is written)."""
    from gaitdata.dataset import DatasetRoot
    from gaitdata.student.checkpoint import load_checkpoint
    from gaitdata.student.models import StudentArch, student_arch

    root = Path(root)
    droot = DatasetRoot(root)
    export_dir = Path(export_dir) if export_dir is not None else droot.exports_dir / "coco"
    config = TrainConfig.from_kwargs(model=model, epochs=epochs, seed=seed, **cfg)
    if init_from is not None:
        config = replace(config, init_from=str(init_from))
    schema = dataset_schema(root)
    init = load_checkpoint(init_from) if init_from is not None else None
    if init is not None:
        arch = StudentArch.from_dict(init["arch"])
    else:
        arch = student_arch(config.model, num_keypoints=schema.num_keypoints, **config.model_kwargs)
    if arch.num_keypoints != schema.num_keypoints:
        raise GaitdataError(
            f"model {config.model} predicts {arch.num_keypoints} keypoints but {root} uses the "
            f"{schema.name} schema with {schema.num_keypoints}; pick a model with num_keypoints={schema.num_keypoints}"
        )
    run_dir = Path(out) if out is not None else droot.models_dir / config.model
    return RunSpec(root, export_dir, run_dir, config, schema, arch, init, train_split, val_split)


def setup_placement(device: str = "auto") -> Placement:
    """The device, and the process group when launched by torchrun with WORLD_SIZE > 1."""
    import torch

    from gaitdata.student.ddp import init_group, launch_from_env

    launch = launch_from_env()
    dev = resolve_device(device)
    if launch.world == 1:
        return Placement(dev, 0, 1)
    if dev.type == "cuda":
        if dev.index is not None and dev.index != launch.local_rank:
            raise GaitdataError(
                f"--device {device} under torchrun: each process uses the GPU of its LOCAL_RANK; pass --device cuda"
            )
        if launch.local_rank >= torch.cuda.device_count():
            raise GaitdataError(
                f"LOCAL_RANK {launch.local_rank} but only {torch.cuda.device_count()} GPU(s) on this machine; "
                f"start at most that many processes per node (--nproc_per_node)"
            )
        torch.cuda.set_device(launch.local_rank)
        dev = torch.device("cuda", launch.local_rank)
    owns = init_group(dev)
    return Placement(dev, launch.rank, launch.world, owns)


def existing_state(spec: RunSpec, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """The run's last.pt when it continues (same configuration), else None; a changed
    configuration is refused with the differing keys."""
    from gaitdata.student.checkpoint import load_checkpoint

    last = spec.run_dir / "last.pt"
    if resume and not last.is_file():
        raise FileNotFoundError(f"--resume: no last.pt in {spec.run_dir}; start the run without --resume")
    if overwrite or not last.is_file():
        return None
    state = load_checkpoint(last)
    diff = config_diff(state.get("config", {}), spec.config.to_dict())
    if diff and resume:
        raise GaitdataError(
            f"--resume refused: {last} was trained with a different configuration: " + "; ".join(diff)
            + ". Use the same options, or start a new run with --out"
        )  # fmt: skip
    if diff:
        raise GaitdataError(
            f"{spec.run_dir} already holds a training run with a different configuration (" + "; ".join(diff)
            + "); pass --overwrite to replace it, or choose another --out"
        )  # fmt: skip
    return state


def _finished(spec: RunSpec, state: dict[str, Any]) -> bool:
    return int(state["epoch"]) + 1 >= spec.config.epochs and (spec.run_dir / "best.pt").is_file()


def load_data(spec: RunSpec, image_root: str | os.PathLike | None) -> RunData:
    """The training and validation persons of the export (training labels made left/right consistent)."""
    from gaitdata.student.data import consistent_instances, load_coco_instances, resolve_image_root

    train_file = spec.export_dir / f"{spec.train_split}.json"
    if not train_file.is_file():
        raise FileNotFoundError(
            f"no {spec.train_split}.json in {spec.export_dir}; export the labels first: "
            f"gaitdata export coco {spec.root} --labels SET --split NAME"
        )
    if image_root is None:
        image_root = resolve_image_root(train_file, json.loads(train_file.read_text()), None)
    image_root = Path(image_root)
    cfg = spec.config
    instances, _ = load_coco_instances(train_file, image_root, spec.schema, min_visible=cfg.min_visible)
    fixed = 0
    if cfg.label_consistency:
        instances, fixed = consistent_instances(instances, spec.schema)
    val_file = spec.export_dir / f"{spec.val_split}.json"
    val_instances = []
    if val_file.is_file():
        val_instances, _ = load_coco_instances(
            val_file, image_root, spec.schema, min_visible=cfg.min_visible, require=False
        )
    augment, reason = cfg.augment, "set"
    if augment.flip_prob is None:
        from gaitdata.student.data import scene_flip_prob

        p, reason = scene_flip_prob(instances, spec.schema)
        augment = replace(augment, flip_prob=p)
    return RunData(image_root, instances, val_instances, fixed, augment, reason)


def clear_run_dir(run_dir: Path) -> None:
    """Remove an old run's checkpoints and compressed variants (they would pass for the new run's)."""
    if run_dir.is_dir():
        for pat in RUN_FILES:
            for f in run_dir.glob(pat):
                f.unlink()


class TrainLoop:
    """The model, optimiser and data of one run, and its per-epoch steps (internal to :func:`train`)."""

    def __init__(
        self, spec: RunSpec, place: Placement, data: RunData, state: dict[str, Any] | None,
        teacher_model: Any, progress: bool, lineage: dict[str, Any] | None = None, record_samples: bool = False,
    ) -> None:  # fmt: skip
        import torch

        from gaitdata.student.data import CropDataset
        from gaitdata.student.models import StudentNet

        cfg = spec.config
        self.spec, self.place, self.data, self.progress = spec, place, data, progress
        self.bar: Any = None  # one progress bar over every epoch of this run (rank 0)
        self.lineage = lineage
        self.record_samples = record_samples
        self.taken: list[tuple[int, list[int]]] = []  # (step, dataset indices) of this rank in the epoch
        self.start_epoch = int(state["epoch"]) + 1 if state is not None else 0
        self.step = int(state.get("step", 0)) if state is not None else 0
        teacher = teacher_model
        if teacher is None and cfg.teacher_weights:
            teacher = load_distillation_teacher(cfg.teacher_weights)
        self.ds = CropDataset(
            data.instances, spec.arch.input_size, spec.arch.heatmap_size, spec.schema, train=True,
            augment=data.augment, sigma=cfg.sigma, seed=cfg.seed,
            teacher_input_size=cfg.teacher_input_size if teacher is not None else None,
        )  # fmt: skip
        self.val_ds = (
            CropDataset(data.val_instances, spec.arch.input_size, spec.arch.heatmap_size, spec.schema)
            if data.val_instances
            else None
        )
        device = place.device
        torch.manual_seed(cfg.seed)
        self.net = StudentNet(spec.arch).to(device)
        if state is not None:
            self.net.load_state_dict(state["state_dict"])
        elif spec.init is not None:
            self.net.load_state_dict(spec.init["state_dict"])
        if teacher is not None:
            teacher = teacher.to(device).eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
        self.teacher = teacher
        self.model = self.net
        if place.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            from gaitdata.student.ddp import sync_batch_norm

            self.net = sync_batch_norm(self.net, device)
            ids = [device.index] if device.type == "cuda" else None
            self.model = DistributedDataParallel(self.net, device_ids=ids)
        self.loader, self.sampler = make_loader(
            self.ds, cfg.batch_size, shuffle=True, seed=cfg.seed, num_workers=cfg.num_workers,
            rank=place.rank, world=place.world,
        )  # fmt: skip
        steps_per_epoch = max(1, len(self.loader))
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _lr_lambda(cfg, steps_per_epoch))
        self.use_amp = bool(cfg.amp and device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        if state is not None:
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        self.slim_bns = []
        if cfg.slim_l1 > 0:
            from gaitdata.student.slim import prunable_bns

            self.slim_bns = prunable_bns(self.net)
        metrics = (state or {}).get("metrics", {})
        self.best = float(metrics.get("best_val_oks", -1.0))
        self.best_pck = float(metrics.get("best_val_pck", math.nan))
        self.resumed = state is not None
        before = int((state or {}).get("world_size", 1))
        if state is not None and before != place.world and place.main:
            from gaitdata.progress import warnings_console

            warnings_console().print(
                f"[yellow]warning:[/] {spec.run_dir / 'last.pt'} was trained by {before} process(es), this run has "
                f"{place.world}: the global batch changes from {before * cfg.batch_size} to "
                f"{place.world * cfg.batch_size} (--batch-size is per process), and the learning-rate schedule's "
                f"steps per epoch with it"
            )
        self.kind = spec.init.get("kind", "fp32") if spec.init is not None else "fp32"
        self.log_path = spec.run_dir / "train_log.csv"
        self.samples_path = spec.run_dir / "samples.csv"

    # ---- the run's files ------------------------------------------------------------------------

    def data_ref(self) -> dict[str, Any]:
        s = self.spec
        return {
            "root": str(s.root.resolve()), "export": str(s.export_dir.resolve()),
            "image_root": str(self.data.image_root.resolve()), "train_split": s.train_split,
            "val_split": s.val_split,
        }  # fmt: skip

    def write_header(self) -> None:
        """config.json and the CSV log (rows of epochs before a resumption kept)."""
        from gaitdata.student.models import count_flops, count_parameters

        s = self.spec
        if not self.place.main:
            return
        s.run_dir.mkdir(parents=True, exist_ok=True)
        _write_log(self.log_path, list(LOG_HEADER), self.earlier_rows(self.log_path))
        if self.record_samples:
            _write_log(self.samples_path, list(SAMPLES_HEADER), self.earlier_rows(self.samples_path))
        atomic_write_json(
            s.run_dir / "config.json",
            {
                "config": s.config.to_dict(), "arch": s.arch.to_dict(), "schema": s.schema.to_dict(),
                "export": str(s.export_dir), "image_root": str(self.data.image_root),
                "train_instances": len(self.data.instances), "val_instances": len(self.data.val_instances),
                "label_consistency_fixes": self.data.n_consistency_fixes,
                "flip_prob": self.data.augment.flip_prob, "flip_reason": self.data.flip_reason,
                "teacher_sha256": sha256_file(s.config.teacher_weights) if s.config.teacher_weights else None,
                "params": count_parameters(self.net), "macs": count_flops(self.net), "lineage": self.lineage,
                "world_size": self.place.world, "global_batch_size": self.place.world * s.config.batch_size,
            },
        )  # fmt: skip

    def earlier_rows(self, path: Path) -> list[dict[str, Any]]:
        """The rows of a CSV log for the epochs before a resumption (none for a fresh run)."""
        if not (self.resumed and path.is_file()):
            return []
        with path.open() as fh:
            return [r for r in csv.DictReader(fh) if int(r["epoch"]) < self.start_epoch]

    # ---- one epoch ------------------------------------------------------------------------------

    def run_epoch(self, epoch: int) -> float:
        """One pass over the training data; returns the mean loss."""
        self.ds.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        self.model.train()
        bar = self.epoch_bar(epoch)
        total, n = 0.0, 0
        self.taken = []
        for batch in self.loader:
            if self.record_samples:
                self.taken.append((self.step, [int(i) for i in batch["index"]]))
            loss, label_loss, dist_loss = self.train_step(batch, epoch)
            total += loss
            n += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.5f}")
            if self.place.main and self.step % self.spec.config.log_every == 0:
                lr = self.sched.get_last_lr()[0]
                _append_log(self.log_path, ["step", epoch, self.step, loss, label_loss, dist_loss, lr, "", ""])
        return total / max(1, n)

    def epoch_bar(self, epoch: int) -> Any:
        """The run's progress bar, relabelled for ``epoch`` (None when progress is off or not rank 0)."""
        if not (self.progress and self.place.main):
            return None
        epochs = self.spec.config.epochs
        if self.bar is None:
            from gaitdata.progress import progress_bar

            self.bar = progress_bar(total=(epochs - self.start_epoch) * len(self.loader), desc="train", unit="batch")
        self.bar.set_description(f"train, epoch {epoch + 1}/{epochs}")
        return self.bar

    def train_step(self, batch: dict[str, Any], epoch: int) -> tuple[float, float, float]:
        """Forward, loss, backward, optimiser and L1 step on one batch: (loss, label loss, distillation loss)."""
        import torch

        cfg, device = self.spec.config, self.place.device
        x = batch["image"].to(device, non_blocking=True)
        tgt, w = batch["target"].to(device), batch["weight"].to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=self.use_amp):
            out = self.model(x)
            label_loss = heatmap_loss(out, tgt, w)
            dist_loss = torch.zeros((), device=device)
            loss = label_loss
            if self.teacher is not None:
                with torch.no_grad():
                    t_hm = self.teacher(batch["teacher_image"].to(device))
                dist_loss = distill_term(out, t_hm, cfg.distill_loss, cfg.distill_temperature)
                loss = (1 - cfg.distill_alpha) * label_loss + cfg.distill_alpha * dist_loss
        # averaged over the ranks (the loss of the global batch), so that every rank stops together
        terms = torch.stack([loss.detach().float(), label_loss.detach().float(), dist_loss.detach().float()])
        if self.place.world > 1:
            from gaitdata.student.ddp import mean_over_ranks

            terms = mean_over_ranks(terms)
        mean_loss, mean_label, mean_dist = (float(v) for v in terms.cpu())
        if not math.isfinite(mean_loss):
            raise GaitdataError(
                f"training diverged at epoch {epoch}, step {self.step} (loss {mean_loss}); lower --lr"
            )
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.slim_step()
        self.sched.step()
        self.step += 1
        return mean_loss, mean_label, mean_dist

    def slim_step(self) -> None:
        """L1 on the prunable BN scales as a decoupled proximal step (soft threshold by lr x slim_l1).

        Like AdamW's weight decay: added to the gradient instead, Adam's normalisation turns the sign
        term into a full-size update that drives every scale with a small gradient towards zero
        (measured: the training loss rose again as the rate fell).
        """
        import torch

        if not self.slim_bns:
            return
        shrink = self.sched.get_last_lr()[0] * self.spec.config.slim_l1
        with torch.no_grad():
            for bn in self.slim_bns:
                w = bn.weight
                w.copy_(torch.sign(w) * (w.abs() - shrink).clamp_min(0.0))

    def end_epoch(self, epoch: int, loss: float) -> None:
        """Validation, the epoch's log rows and checkpoints (best.pt by validation mean OKS), on rank 0."""
        if self.record_samples:
            self.write_samples(epoch)
        if not self.place.main:
            return
        if self.val_ds is not None:
            val = dataset_metrics(self.net, self.val_ds, self.place.device)
        else:
            val = {"pck": math.nan, "oks": math.nan}
        lr = self.sched.get_last_lr()[0]
        cell = ["" if math.isnan(val[k]) else val[k] for k in ("pck", "oks")]
        _append_log(self.log_path, ["epoch", epoch, self.step, loss, "", "", lr, *cell])
        # mean OKS is finer than PCK@0.1, which saturates early
        improved = self.val_ds is None or (not math.isnan(val["oks"]) and val["oks"] > self.best)
        if improved and not math.isnan(val["oks"]):
            self.best, self.best_pck = val["oks"], val["pck"]
        metrics = {
            "val_pck": val["pck"], "val_oks": val["oks"], "train_loss": loss,
            "best_val_oks": self.best, "best_val_pck": self.best_pck,
        }  # fmt: skip
        self.save(epoch, metrics, improved)

    def write_samples(self, epoch: int) -> None:
        """Append the epoch's samples of every rank to samples.csv (rank 0 writes)."""
        from gaitdata.student.ddp import gather_to_main

        per_rank = gather_to_main(self.taken)
        if per_rank is None:
            return
        rows = [
            [epoch, step, rank, i, self.ds.instances[i].ann_id]
            for rank, taken in enumerate(per_rank)
            for step, indices in taken
            for i in indices
        ]  # fmt: skip
        rows.sort(key=lambda r: (r[1], r[2]))
        with self.samples_path.open("a", newline="") as fh:
            csv.writer(fh).writerows(rows)

    def save(self, epoch: int, metrics: dict[str, Any], best: bool) -> None:
        from gaitdata.student.checkpoint import save_checkpoint

        s = self.spec
        common = {
            "kind": self.kind, "data": self.data_ref(), "arch": s.arch.to_dict(), "schema": s.schema.to_dict(),
            "config": s.config.to_dict(), "epoch": epoch, "step": self.step, "metrics": metrics,
            "world_size": self.place.world,
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
        }  # fmt: skip
        resume = {
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_amp else {},
        }  # fmt: skip
        save_checkpoint(s.run_dir / "last.pt", {**common, **resume})
        if best:
            save_checkpoint(s.run_dir / "best.pt", common)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.place.world > 1:
            import torch.distributed as dist

            dist.barrier()


def _write_log(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    lines = [",".join(header)] + [",".join(str(r.get(h, "")) for h in header) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _append_log(path: Path, values: list[Any]) -> None:
    with path.open("a", newline="") as fh:
        csv.writer(fh).writerow(values)
