"""``gaitdata compress MODEL --method slim|int8|onnx``."""

from __future__ import annotations

import click

from gaitdata.cli.common import no_wait_option, output_options, tolerance_option


@click.command()
@no_wait_option
@output_options
@click.argument("model", type=click.Path(exists=True, path_type=str))
@click.option(
    "--method",
    "methods",
    multiple=True,
    required=True,
    type=click.Choice(["slim", "int8", "onnx"]),
    help="Compression to apply (repeatable; applied in the order given).",
)
@click.option(
    "--macs-reduction",
    default=0.3,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="slim: fraction of the fp32 model's multiply-accumulates to remove (the budget).",
)
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(min=1),
              help="slim: prune + fine-tune rounds to reach the budget.")  # fmt: skip
@click.option("--min-keep", default=0.25, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="slim: no layer keeps fewer than this fraction of its channels.")  # fmt: skip
@click.option(
    "--finetune-epochs",
    default=6,
    show_default=True,
    type=click.IntRange(min=0),
    help="slim: epochs of fine-tuning in all, spread over the rounds (distilled from the fp32 model).",
)
@click.option("--distill-alpha", default=0.9, show_default=True, type=click.FloatRange(0, 1),
              help="slim: weight of the fp32 model's heatmaps in the fine-tuning loss.")  # fmt: skip
@click.option(
    "--calibration",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Training crops for int8 calibration and channel importance.",
)
@tolerance_option("pruned or int8 model may lose against fp32 on the validation part")
@click.option("--strict", is_flag=True, help="Exit with status 1 when a result misses its tolerance.")
@click.option("--ratio", type=float, hidden=True, help="Deprecated: use --macs-reduction.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=str),
              help="Output file (one method only); its summary goes to compress.json beside it.")  # fmt: skip
def command(model: str, methods: tuple[str, ...], macs_reduction: float, rounds: int, min_keep: float,
            finetune_epochs: int, distill_alpha: float, calibration: int, tolerance: float, strict: bool,
            ratio: float | None, out: str | None) -> None:  # fmt: skip
    """Compress a trained student (run directory or .pt checkpoint).

    slim: channel pruning to a MAC budget in rounds (Taylor importance, per-layer floors), each
    round fine-tuned with distillation from the fp32 model -> pruned.pt; int8: post-training
    quantisation (x86/fbgemm) -> int8.pt (pruned_int8.pt from pruned.pt); onnx: opset-17 export
    with a dynamic batch axis and the preprocessing in its metadata, checked with onnxruntime ->
    model.onnx. Pruned and int8 results are checked against the fp32 model on the validation part
    of the training export; a miss is reported (and recorded in compress.json).

    \b
    Examples:
      gaitdata compress data/root/models/fastpose_res18_w050 --method slim --macs-reduction 0.3
      gaitdata compress data/root/models/fastpose_res18_w050 --method int8 --method onnx
      gaitdata compress data/root/models/fastpose_res18_w050/pruned.pt --method int8
    """
    import json
    from pathlib import Path

    from gaitdata import student
    from gaitdata.progress import console as make_console
    from gaitdata.progress import is_quiet, warnings_console

    if out and len(methods) > 1:
        raise click.UsageError("--out works with one --method only")
    console, warn = make_console(), warnings_console()
    if ratio is not None:
        warn.print("[yellow]warning:[/] --ratio is deprecated; it now sets --macs-reduction (fraction of MACs removed)")
        macs_reduction = ratio
    missed = []
    for method in methods:
        path = student.compress(
            model, method, macs_reduction=macs_reduction, rounds=rounds, min_keep=min_keep,
            finetune_epochs=finetune_epochs, distill_alpha=distill_alpha, calibration=calibration,
            tolerance=tolerance, out=out, progress=not is_quiet(),
        )  # fmt: skip
        info = json.loads((Path(path).parent / "compress.json").read_text()).get(Path(path).name, {})
        if method == "slim":
            extra = (
                f"params {info['params_before'] / 1e6:.2f} M -> {info['params_after'] / 1e6:.2f} M, "
                f"MACs {info['macs_before'] / 1e9:.3f} G -> {info['macs_after'] / 1e9:.3f} G "
                f"({info['macs_reduction'] * 100:.0f}% fewer)"
            )
        elif method == "int8":
            extra = f"calibrated on {info['calibration_crops']} crops, max |diff| {info['max_abs_diff']:.4f}"
        else:
            extra = f"onnxruntime max |diff| {info['max_abs_diff']:.1e} (tolerance {info['tolerance']:.0e})"
        console.print(f"[green]{method}[/] -> {path} ({info.get('size_bytes', 0) / 1e6:.2f} MB)", highlight=False,
                      soft_wrap=True)  # fmt: skip
        console.print(f"  {extra}", highlight=False)
        check = info.get("check")
        if check is None and method != "onnx":
            warn.print(f"[yellow]warning:[/] {Path(path).name} not checked against fp32: the training export has no "
                       f"validation part")
        elif check is not None:
            line = (
                f"PCK@0.1 on the {check['part']} part ({check['persons']} persons): {check['value']:.3f} vs fp32 "
                f"{check['reference']:.3f} (drop {check['drop'] * 100:.1f} points, tolerance "
                f"{check['tolerance'] * 100:.1f})"
            )
            if check["within_tolerance"]:
                console.print(f"  check: {line}: within tolerance")
            else:
                warn.print(f"[bold red]warning:[/] {Path(path).name} MISSES its tolerance: {line}")
                missed.append(Path(path).name)
    if missed and strict:
        raise SystemExit(1)
