"""Train a student SPPE on a COCO keypoints export, optionally distilling a FastPose teacher.

Library: :func:`train`; CLI: ``gaitdata train ROOT --export DIR --model NAME``.

The loss is a heatmap MSE weighted per joint by the teacher's confidence (``keypoint_scores`` of
the export) times the label's visibility (v > 0) times "the joint lies inside the crop". With
``teacher_weights`` (an official AlphaPose FastPose-R50 checkpoint) the teacher runs on the same
crops (same affine, at its own input size) and its heatmaps, resized to the student's, form a
second term (MSE or spatial-softmax KL) mixed in with ``distill_alpha``.

Runs are repeatable on CPU: the model is initialised from ``seed``, the epoch's order and every
crop's augmentation are drawn from ``(seed, epoch, index)``. Checkpoints are written after every
epoch (``last.pt``, plus ``best.pt`` by validation mean OKS against the labels). Running again into the same run
directory continues from ``last.pt`` (a finished run is returned as it is); a different
configuration is refused with the differing keys listed (``resume=True`` insists on continuing,
``overwrite=True`` starts again).

Multi-GPU (never required)::

    torchrun --nproc_per_node 4 -m gaitdata train ROOT --export ROOT/exports/coco --model fastpose_res18_w050

When ``WORLD_SIZE`` > 1 the process group is initialised (NCCL on CUDA, else Gloo), the model is
wrapped in DistributedDataParallel, each rank sees its own shard of every epoch, and rank 0 alone
writes checkpoints, the CSV log and the progress bar. ``batch_size`` is per process.
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

# keys allowed to differ between a run and its resumption
RESUME_FREE_KEYS = frozenset({"epochs", "device", "num_workers", "progress", "log_every"})


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
    flip_prob: float = 0.5
    # geometric augmentation sized for a fixed lab camera and upright walkers (the crops at test time
    # come from the same kind of boxes): measured on held-out synthetic subjects, 30 deg / 0.25 / 0.3
    # (COCO-style, for people in any pose) cost 0.05 OKS AP against these
    scale_factor: float = 0.15
    rot_factor: float = 10.0
    half_body_prob: float = 0.1
    color_jitter: float = 0.3
    channel_shuffle_prob: float = 0.2
    grayscale_prob: float = 0.1
    min_visible: int = 1
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
        if self.epochs < 0 or self.batch_size < 1:
            raise GaitdataError(
                f"epochs must be >= 0 and batch_size >= 1 (got {self.epochs}, {self.batch_size})"
            )
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise GaitdataError(f"distill_alpha must be in [0, 1], got {self.distill_alpha}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        d["model_kwargs"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_kwargs.items()}
        return d

    @classmethod
    def from_kwargs(cls, **kw: Any) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(kw) - names
        if unknown:
            raise GaitdataError(f"unknown training option(s) {sorted(unknown)}; valid: {sorted(names)}")
        for k in ("teacher_input_size", "step_milestones"):
            if k in kw and kw[k] is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)


def config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys whose values differ (ignoring :data:`RESUME_FREE_KEYS`), as ``key: old -> new``."""
    out = []
    for k in sorted(set(a) | set(b)):
        if k in RESUME_FREE_KEYS:
            continue
        if json.dumps(a.get(k), sort_keys=True) != json.dumps(b.get(k), sort_keys=True):
            out.append(f"{k}: {a.get(k)!r} -> {b.get(k)!r}")
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
    """Shuffled order drawn from (seed, epoch); sharded by rank under DDP."""

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
# the training loop


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
    **cfg: Any,
) -> Path:
    """Train a student on ``<export_dir>/<train_split>.json`` (validate on ``<val_split>.json`` when present).

    ``root``: the dataset root (its ``dataset.json`` gives the keypoint schema; images are resolved
    against ``image_root``, default ``root``). ``export_dir`` defaults to ``<root>/exports/coco``.
    ``out``: the run directory (default ``<root>/models/<model>``). Other keyword arguments are
    :class:`TrainConfig` fields. ``teacher_model``: an already built teacher module (instead of
    ``teacher_weights``) taking the teacher crops and returning heatmaps. ``init_from``: a student
    checkpoint whose architecture and weights start the run (fine-tuning, e.g. after pruning).
    Returns the run directory.
    """
    lineage = check_train_inputs(
        root, export_dir, model=model, out=out, overwrite=overwrite, train_split=train_split, val_split=val_split
    )
    torch = require("torch", "train")
    from gaitdata.student.checkpoint import load_checkpoint, save_checkpoint
    from gaitdata.student.data import AugmentConfig, CropDataset, load_coco_instances
    from gaitdata.student.models import StudentArch, StudentNet, count_flops, count_parameters, student_arch

    root = Path(root)
    export_dir = Path(export_dir) if export_dir is not None else root / "exports" / "coco"
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
    run_dir = Path(out) if out is not None else root / "models" / config.model

    # distributed setup (only when launched by torchrun with WORLD_SIZE > 1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(config.device)
    if world > 1:
        import torch.distributed as dist

        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    main = rank == 0

    last = run_dir / "last.pt"
    start_epoch, step = 0, 0
    state: dict[str, Any] | None = None
    if resume and not last.is_file():
        raise FileNotFoundError(f"--resume: no last.pt in {run_dir}; start the run without --resume")
    if last.is_file() and not overwrite:
        # an existing run: continue it (a finished one is left as it is) when the configuration matches
        state = load_checkpoint(last)
        diff = config_diff(state.get("config", {}), config.to_dict())
        if diff and resume:
            raise GaitdataError(
                f"--resume refused: {last} was trained with a different configuration: "
                + "; ".join(diff)
                + ". Use the same options, or start a new run with --out"
            )
        if diff:
            raise GaitdataError(
                f"{run_dir} already holds a training run with a different configuration ("
                + "; ".join(diff)
                + "); pass --overwrite to replace it, or choose another --out"
            )
        start_epoch = int(state["epoch"]) + 1
        step = int(state.get("step", 0))
        if start_epoch >= config.epochs and (run_dir / "best.pt").is_file():
            return run_dir

    from gaitdata.student.data import resolve_image_root

    train_file = export_dir / f"{train_split}.json"
    if not train_file.is_file():
        raise FileNotFoundError(
            f"no {train_split}.json in {export_dir}; export the labels first: gaitdata export {root} --split NAME"
        )
    if image_root is None:
        image_root = resolve_image_root(train_file, json.loads(train_file.read_text()), None)
    image_root = Path(image_root)
    instances, _ = load_coco_instances(train_file, image_root, schema, min_visible=config.min_visible)
    val_file = export_dir / f"{val_split}.json"
    val_instances = []
    if val_file.is_file():
        val_instances, _ = load_coco_instances(
            val_file, image_root, schema, min_visible=config.min_visible, require=False
        )

    teacher = teacher_model
    if teacher is None and config.teacher_weights:
        teacher = load_distillation_teacher(config.teacher_weights)
    aug = AugmentConfig(
        flip_prob=config.flip_prob,
        scale_factor=config.scale_factor,
        rot_factor=config.rot_factor,
        half_body_prob=config.half_body_prob,
        color_jitter=config.color_jitter,
        channel_shuffle_prob=config.channel_shuffle_prob,
        grayscale_prob=config.grayscale_prob,
    )
    ds = CropDataset(
        instances,
        arch.input_size,
        arch.heatmap_size,
        schema,
        train=True,
        augment=aug,
        sigma=config.sigma,
        seed=config.seed,
        teacher_input_size=config.teacher_input_size if teacher is not None else None,
    )
    val_ds = (
        CropDataset(val_instances, arch.input_size, arch.heatmap_size, schema, train=False)
        if val_instances
        else None
    )

    if overwrite and main and run_dir.is_dir():
        # the old run's checkpoints and compressed variants would be mistaken for this run's
        for pat in (
            "best.pt",
            "last.pt",
            "pruned*.pt",
            "*int8.pt",
            "*.onnx",
            "compress.json",
            "train_log.csv",
        ):
            for f in run_dir.glob(pat):
                f.unlink()

    torch.manual_seed(config.seed)
    net = StudentNet(arch).to(device)
    if state is not None:
        net.load_state_dict(state["state_dict"])
    elif init is not None:
        net.load_state_dict(init["state_dict"])
    if teacher is not None:
        teacher = teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    model_ddp = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model_ddp = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    loader, sampler = make_loader(
        ds,
        config.batch_size,
        shuffle=True,
        seed=config.seed,
        num_workers=config.num_workers,
        rank=rank,
        world=world,
    )
    steps_per_epoch = max(1, len(loader))
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config, steps_per_epoch))
    use_amp = bool(config.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
    slim_bns = []
    if config.slim_l1 > 0:
        from gaitdata.student.slim import prunable_bns

        slim_bns = prunable_bns(net)

    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "train_log.csv"
    header = ["row", "epoch", "step", "loss", "label_loss", "distill_loss", "lr", "val_pck", "val_oks"]
    if main:
        rows = []
        if state is not None and log_path.is_file():
            with log_path.open() as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) < start_epoch]
        _write_log(log_path, header, rows)
        atomic_write_json(
            run_dir / "config.json",
            {
                "config": config.to_dict(),
                "arch": arch.to_dict(),
                "schema": schema.to_dict(),
                "export": str(export_dir),
                "image_root": str(image_root),
                "train_instances": len(instances),
                "val_instances": len(val_instances),
                "teacher_sha256": sha256_file(config.teacher_weights) if config.teacher_weights else None,
                "params": count_parameters(net),
                "macs": count_flops(net),
                "lineage": lineage,
            },
        )
    best = float(state.get("metrics", {}).get("best_val_oks", -1.0)) if state else -1.0
    best_pck = float(state.get("metrics", {}).get("best_val_pck", math.nan)) if state else math.nan
    kind = init.get("kind", "fp32") if init is not None else "fp32"
    data_ref = {
        "root": str(root.resolve()),
        "export": str(export_dir.resolve()),
        "image_root": str(image_root.resolve()),
        "train_split": train_split,
        "val_split": val_split,
    }

    for epoch in range(start_epoch, config.epochs):
        ds.set_epoch(epoch)
        sampler.set_epoch(epoch)
        model_ddp.train()
        it = loader
        bar = None
        if progress and main:
            from tqdm.auto import tqdm

            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False)
            it = bar
        run_loss, n_batches = 0.0, 0
        for batch in it:
            x = batch["image"].to(device, non_blocking=True)
            tgt = batch["target"].to(device)
            w = batch["weight"].to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                out_hm = model_ddp(x)
                label_loss = heatmap_loss(out_hm, tgt, w)
                dist_loss = torch.zeros((), device=device)
                if teacher is not None:
                    with torch.no_grad():
                        t_hm = teacher(batch["teacher_image"].to(device))
                    dist_loss = distill_term(out_hm, t_hm, config.distill_loss, config.distill_temperature)
                    loss = (1 - config.distill_alpha) * label_loss + config.distill_alpha * dist_loss
                else:
                    loss = label_loss
            if not torch.isfinite(loss):
                raise GaitdataError(
                    f"training diverged at epoch {epoch}, step {step} (loss {loss.item()}); lower --lr"
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if slim_bns:
                # L1 on the BN scales as a decoupled proximal step (soft threshold by lr x slim_l1),
                # like AdamW's weight decay: added to the gradient instead, Adam's normalisation turns
                # the sign term into a full-size update that drives every scale with a small gradient
                # towards zero (measured: the training loss rose again as the rate fell)
                shrink = sched.get_last_lr()[0] * config.slim_l1
                with torch.no_grad():
                    for bn in slim_bns:
                        w = bn.weight
                        w.copy_(torch.sign(w) * (w.abs() - shrink).clamp_min(0.0))
            sched.step()
            step += 1
            run_loss += float(loss.item())
            n_batches += 1
            if bar is not None:
                bar.set_postfix(loss=f"{loss.item():.5f}")
            if main and step % config.log_every == 0:
                _append_log(
                    log_path,
                    header,
                    [
                        "step",
                        epoch,
                        step,
                        loss.item(),
                        label_loss.item(),
                        dist_loss.item(),
                        sched.get_last_lr()[0],
                        "",
                        "",
                    ],
                )
        if bar is not None:
            bar.close()
        val = (
            dataset_metrics(net, val_ds, device) if val_ds is not None else {"pck": math.nan, "oks": math.nan}
        )
        val_pck, val_oks = val["pck"], val["oks"]
        if main:
            _append_log(
                log_path,
                header,
                [
                    "epoch",
                    epoch,
                    step,
                    run_loss / max(1, n_batches),
                    "",
                    "",
                    sched.get_last_lr()[0],
                    "" if math.isnan(val_pck) else val_pck,
                    "" if math.isnan(val_oks) else val_oks,
                ],
            )
            metrics = {"val_pck": val_pck, "val_oks": val_oks, "train_loss": run_loss / max(1, n_batches)}
            # best.pt by validation mean OKS (finer than PCK@0.1, which saturates early)
            improved = (not math.isnan(val_oks) and val_oks > best) or (val_ds is None)
            if improved and not math.isnan(val_oks):
                best = val_oks
                best_pck = val_pck
            metrics["best_val_oks"] = best
            metrics["best_val_pck"] = best_pck
            common = {
                "kind": kind,
                "data": data_ref,
                "arch": arch.to_dict(),
                "schema": schema.to_dict(),
                "config": config.to_dict(),
                "epoch": epoch,
                "step": step,
                "metrics": metrics,
                "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            }
            save_checkpoint(
                last,
                {
                    **common,
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "scaler": scaler.state_dict() if use_amp else {},
                },
            )
            if improved:
                save_checkpoint(run_dir / "best.pt", common)
    if main and config.epochs == 0:
        save_checkpoint(
            run_dir / "best.pt",
            {
                "kind": kind,
                "data": data_ref,
                "arch": arch.to_dict(),
                "schema": schema.to_dict(),
                "config": config.to_dict(),
                "epoch": -1,
                "step": 0,
                "metrics": {},
                "state_dict": net.state_dict(),
            },
        )
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return run_dir


def _write_log(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    lines = [",".join(header)] + [",".join(str(r.get(h, "")) for h in header) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _append_log(path: Path, header: list[str], values: list[Any]) -> None:
    with path.open("a", newline="") as fh:
        csv.writer(fh).writerow(values)
