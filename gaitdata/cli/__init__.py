"""The ``gaitdata`` command line: a thin layer over library functions.

Each verb lives in its own module under ``gaitdata/cli/`` and is imported only when invoked, so
``gaitdata --help`` stays fast. A verb module defines a click command named ``command``.
"""

from __future__ import annotations

import importlib
import sys

import click

from gaitdata._version import __version__
from gaitdata.errors import GaitdataError

# verb -> (module, one-line help). Order is the order of the data flow.
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("gaitdata.cli.demo", "Run the whole pipeline on built-in synthetic sample data."),
    "synth": ("gaitdata.cli.synth", "Render synthetic gait recordings (every container kind)."),
    "extract": ("gaitdata.cli.extract", "Extract time-aligned RGB + 16-bit depth frames into a dataset root."),
    "validate": ("gaitdata.cli.validate", "Check a dataset root: files, counts, keys, stale results."),
    "migrate": ("gaitdata.cli.migrate", "Upgrade a dataset root written by an older gaitdata, in place."),
    "label": ("gaitdata.cli.label", "Pseudo-label frames with a teacher pose model."),
    "compare-labels": ("gaitdata.cli.compare", "Compare two label sets (OKS, per-joint distance), optionally merge."),
    "split": ("gaitdata.cli.split", "Split videos/subjects into train/val/test, leakage-audited."),
    "audit": ("gaitdata.cli.audit", "Audit a split for leakage and print per-split statistics."),
    "export": ("gaitdata.cli.export", "Export labels (COCO keypoints, gait pose arrays)."),
    "import": ("gaitdata.cli.importer", "Import COCO files, AlphaPose results or a label set made elsewhere."),
    "browse": ("gaitdata.cli.browse", "Review frames and labels in FiftyOne; pull corrections back."),
    "train": ("gaitdata.cli.train", "Train a student SPPE on a COCO export."),
    "compress": ("gaitdata.cli.compress", "Compress a student: slim (prune), int8, onnx."),
    "evaluate": ("gaitdata.cli.evaluate", "Evaluate a student against the teacher on held-out videos."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(VERBS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in VERBS:
            return None
        module_name, short = VERBS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise

            @click.command(name=name, help=f"{short} (not available in this build)")
            def unavailable() -> None:
                raise click.ClickException(f"`gaitdata {name}` is not available in this build.")

            return unavailable
        cmd: click.Command = module.command
        cmd.name = name
        if not cmd.short_help:
            cmd.short_help = short
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "--version", "-V", prog_name="gaitdata")
def cli() -> None:
    """gaitdata: RealSense gait recordings -> pose dataset -> small, fast pose model.

    \b
    Data flows one way: recordings -> frames -> labels -> splits -> exports/models.
    \b
    Quick start:
      gaitdata demo                        # everything, on synthetic sample data
      gaitdata extract REC_DIR --out ROOT  # then: label, split, export, train, evaluate
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point: user-facing errors become one line on stderr and exit status 2."""
    try:
        rc = cli.main(args=argv, prog_name="gaitdata", standalone_mode=False)
        if isinstance(rc, int) and rc:  # click returns (not raises) a command's Exit code here
            sys.exit(rc)
    except GaitdataError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; rerun the same command to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
