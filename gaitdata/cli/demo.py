"""``gaitdata demo``: the whole pipeline on built-in synthetic sample data."""

from __future__ import annotations

from pathlib import Path

import click

from gaitdata.cli.common import no_wait_option, output_options


@click.command()
@no_wait_option
@output_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_output"),
              show_default=True, help="Folder for the sample recordings and the dataset root.")
@click.option("--subjects", type=click.IntRange(3, 20), default=4, show_default=True,
              help="Synthetic subjects (at least 3: one each for val and test, the rest train).")
@click.option("--frames", type=click.IntRange(10, 2000), default=48, show_default=True,
              help="Colour frames per recording.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--teacher", default="mediapipe", show_default=True, help="Teacher used to pseudo-label.")
@click.option("--epochs", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Student training epochs.")
@click.option("--no-train", is_flag=True, help="Stop after the COCO export.")
@click.option("--browse", is_flag=True, help="Finish by opening the FiftyOne App on the sample set.")
@click.option("--port", type=int, default=None, help="Port for --browse (a free one by default).")
def command(out: Path, subjects: int, frames: int, seed: int, teacher: str, epochs: int, no_train: bool,
            browse: bool, port: int | None) -> None:  # fmt: skip
    """Run every stage on synthetic sample data: synth, extract, validate, label, split, audit,
    export, train, evaluate (and browse). Rerunning resumes where it stopped; over
    a demo made with other settings (an earlier release), it labels and trains again.

    \b
    Examples:
      gaitdata demo
      gaitdata demo --out /tmp/gd --subjects 4 --frames 60
      gaitdata demo --browse --port 5151
    """
    from gaitdata.demo import DemoOptions, run_demo

    run_demo(DemoOptions(out=out, subjects=subjects, frames=frames, seed=seed, teacher=teacher, epochs=epochs,
                         train=not no_train, browse=browse, port=port))  # fmt: skip
