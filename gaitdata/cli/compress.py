"""``gaitdata compress MODEL --method slim|int8|onnx``."""

from __future__ import annotations

import click

from gaitdata.cli.common import no_wait_option, output_options


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
    "--ratio",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="slim: fraction of prunable channels to remove (global BN-scale threshold).",
)
@click.option(
    "--finetune-epochs",
    default=2,
    show_default=True,
    type=click.IntRange(min=0),
    help="slim: epochs of fine-tuning after pruning.",
)
@click.option(
    "--calibration",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="int8: training crops used for calibration.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=str), help="Output file (one method only).")
def command(model: str, methods: tuple[str, ...], ratio: float, finetune_epochs: int, calibration: int,
            out: str | None) -> None:  # fmt: skip
    """Compress a trained student (run directory or .pt checkpoint).

    slim: network slimming (channels pruned by batch-norm scale, pixel-shuffle groups kept whole) +
    fine-tune -> pruned.pt; int8: post-training quantisation (x86/fbgemm) -> int8.pt (pruned_int8.pt
    from pruned.pt); onnx: opset-17 export checked with onnxruntime -> model.onnx.

    \b
    Examples:
      gaitdata compress data/root/models/fastpose_res18_w050 --method slim --ratio 0.4
      gaitdata compress data/root/models/fastpose_res18_w050 --method int8 --method onnx
      gaitdata compress data/root/models/fastpose_res18_w050/pruned.pt --method int8
    """
    import json
    from pathlib import Path

    from gaitdata import student
    from gaitdata.progress import console as make_console
    from gaitdata.progress import is_quiet

    if out and len(methods) > 1:
        raise click.UsageError("--out works with one --method only")
    console = make_console()
    for method in methods:
        path = student.compress(
            model,
            method,
            ratio=ratio,
            finetune_epochs=finetune_epochs,
            calibration=calibration,
            out=out,
            progress=not is_quiet(),
        )
        run_dir = Path(model) if Path(model).is_dir() else Path(model).parent  # compress.json sits beside the source
        info = json.loads((run_dir / "compress.json").read_text()).get(Path(path).name, {})
        extra = ""
        if method == "slim":
            extra = (
                f"params {info['params_before'] / 1e6:.2f} M -> {info['params_after'] / 1e6:.2f} M, "
                f"MACs {info['macs_before'] / 1e9:.3f} G -> {info['macs_after'] / 1e9:.3f} G"
            )
        elif method == "int8":
            extra = f"calibrated on {info['calibration_crops']} crops, max |diff| {info['max_abs_diff']:.4f}"
        else:
            extra = f"onnxruntime max |diff| {info['max_abs_diff']:.1e} (tolerance {info['tolerance']:.0e})"
        console.print(f"[green]{method}[/] -> {path} ({info.get('size_bytes', 0) / 1e6:.2f} MB)", highlight=False,
                      soft_wrap=True)  # fmt: skip
        console.print(f"  {extra}", highlight=False)
