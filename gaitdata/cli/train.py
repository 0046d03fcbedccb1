"""``gaitdata train ROOT --export DIR --model NAME``."""

from __future__ import annotations

import click

from gaitdata.cli.common import no_wait_option, output_options


def _hw(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected HEIGHTxWIDTH (e.g. 256x192), got {value!r}") from None
    return h, w


@click.command()
@no_wait_option
@output_options
@click.argument("root", required=False, type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=str),
    help="Folder with train.json (and val.json) [default: ROOT/exports/coco].",
)
@click.option(
    "--model",
    "-m",
    default="fastpose_res18_w050",
    show_default=True,
    help="Student name; 'list' prints them.",
)
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=2e-3, show_default=True, type=float, help="AdamW peak learning rate.")
@click.option("--schedule", type=click.Choice(["cosine", "step"]), default="cosine", show_default=True)
@click.option("--input-size", callback=_hw, help="Override the model's input HEIGHTxWIDTH (e.g. 128x96).")
@click.option("--width", "width_mult", type=float, help="Override the backbone width multiplier.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=str),
    help="Run directory [default: ROOT/models/MODEL].",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--resume", is_flag=True, help="Continue the run in --out from its last.pt (same options required)."
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Start again even if --out holds a run (by default a run continues where it stopped).",
)
@click.option(
    "--image-root",
    type=click.Path(file_okay=False, path_type=str),
    help="Folder the COCO file_name paths are relative to [default: the export's info.image_root, else ROOT].",
)
@click.option(
    "--teacher-weights",
    type=click.Path(dir_okay=False, path_type=str),
    help="AlphaPose fast_res50_256x192.pth: distil the FastPose teacher's heatmaps.",
)
@click.option(
    "--distill-alpha",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Weight of the distillation term (label term gets 1 - alpha).",
)
@click.option("--distill-loss", type=click.Choice(["mse", "kl"]), default="mse", show_default=True)
@click.option(
    "--slim-l1",
    default=1e-4,
    show_default=True,
    type=float,
    help="L1 on prunable batch-norm scales (network slimming) so compress --method slim can prune; 0: off.",
)
@click.option(
    "--flip-prob",
    default="auto",
    show_default=True,
    help="Horizontal flip probability, or 'auto': no flips when the side views already walk both ways.",
)
@click.option(
    "--no-label-consistency",
    is_flag=True,
    help="Train on the labels as exported (by default left/right are made consistent along each track).",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--workers", "num_workers", default=0, show_default=True, type=click.IntRange(min=0))
@click.option(
    "--record-samples",
    is_flag=True,
    help="Write samples.csv in the run folder: the training samples (dataset index, annotation id) each "
    "process took at each step, to audit the data order and how torchrun split it.",
)
def command(root: str | None, export_dir: str | None, model: str, epochs: int, batch_size: int, lr: float,
            schedule: str, input_size: tuple[int, int] | None, width_mult: float | None, out: str | None, seed: int,
            resume: bool, overwrite: bool, image_root: str | None, teacher_weights: str | None,
            distill_alpha: float, distill_loss: str, slim_l1: float, flip_prob: str,
            no_label_consistency: bool, device: str, num_workers: int, record_samples: bool) -> None:  # fmt: skip
    """Train a student SPPE on a COCO keypoints export of ROOT.

    --model is a registered student architecture (gaitdata train --model list); the trained run is
    what compress, evaluate and label --teacher student take.

    Writes ROOT/models/MODEL/ (or --out): best.pt, last.pt (every epoch), train_log.csv, config.json.
    CPU runs with the same --seed give identical weights.

    Several GPUs or machines: launch with torchrun (one process per GPU); --batch-size is per
    process, so N processes take the steps of one with N x --batch-size; rank 0 writes the run.

    \b
    Examples:
      gaitdata train --model list
      gaitdata train data/root --export data/root/exports/coco --model fastpose_res18_w050 --epochs 30
      gaitdata train data/root --model fastpose_mbv2_w050 --input-size 128x96 --batch-size 8
      gaitdata train data/root --teacher-weights fast_res50_256x192.pth --distill-alpha 0.5
      gaitdata train data/root --out data/root/models/run1 --resume --epochs 40
      torchrun --standalone --nproc_per_node 2 -m gaitdata train data/root --device cuda
    """
    from gaitdata import student
    from gaitdata.progress import console as make_console
    from gaitdata.progress import is_quiet

    console = make_console()
    if model == "list":
        for name in student.list_students():
            click.echo(name)
        return
    if root is None:
        raise click.UsageError("ROOT is required (or --model list)")
    flip: float | None = None
    if flip_prob != "auto":
        try:
            flip = float(flip_prob)
        except ValueError:
            raise click.BadParameter(f"expected a probability or 'auto', got {flip_prob!r}", param_hint="--flip-prob") from None
        if not 0.0 <= flip <= 1.0:
            raise click.BadParameter(f"must be in [0, 1], got {flip}", param_hint="--flip-prob")
    kw = {}
    if input_size:
        kw["input_size"] = list(input_size)
    if width_mult:
        kw["width_mult"] = width_mult
    run = student.train(
        root, export_dir, model=model, epochs=epochs, out=out, seed=seed, progress=not is_quiet(), resume=resume,
        overwrite=overwrite, image_root=image_root, batch_size=batch_size, lr=lr, schedule=schedule,
        model_kwargs=kw, teacher_weights=teacher_weights, distill_alpha=distill_alpha, distill_loss=distill_loss,
        slim_l1=slim_l1, flip_prob=flip, label_consistency=not no_label_consistency, device=device,
        num_workers=num_workers, record_samples=record_samples,
    )  # fmt: skip
    import json
    import os

    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return
    cfg = json.loads((run / "config.json").read_text())
    from gaitdata.student.checkpoint import load_checkpoint

    ck = load_checkpoint(run / "best.pt")
    m = ck.get("metrics", {})
    console.print(
        f"[green]trained[/] {model} ({cfg['params'] / 1e6:.2f} M params, {cfg['macs'] / 1e9:.3f} GMACs) on "
        f"{cfg['train_instances']} persons: best val PCK@0.1 {m.get('best_val_pck', float('nan')):.3f}, "
        f"epoch {ck.get('epoch')}"
    )
    console.print(f"run: {run}", highlight=False, soft_wrap=True)
