"""The ``gaitdata`` command line: a thin layer over library functions.

Each verb lives in its own module under ``gaitdata/cli/`` and is imported only when invoked: the
group's ``--help`` lists the verbs from :data:`VERBS` without importing any of them, and a verb
module imports its heavy dependencies (numpy, pandas, torch, ...) inside the command, so
``gaitdata --help`` and ``gaitdata VERB --help`` stay fast. A verb module defines a click command
named ``command``. Every verb takes ``-q/--quiet`` and ``--verbose`` (:mod:`gaitdata.cli.common`).
"""

from __future__ import annotations

import errno
import importlib
import os
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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The verb list of ``--help``, from :data:`VERBS` (no verb module is imported)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in VERBS.items()])

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
    """Entry point: user errors become one line on stderr (exit status 2), never a traceback.

    A :class:`~gaitdata.errors.GaitdataError` prints its message (it names the file and the fix);
    an ``OSError`` about a path (missing, not readable or writable, disk full, ...) prints the path,
    the reason and what to do. Set ``GAITDATA_DEBUG=1`` to see the traceback instead.
    """
    try:
        try:
            rc = cli.main(args=argv, prog_name="gaitdata", standalone_mode=False)
        except Exception as exc:
            if os.environ.get("GAITDATA_DEBUG") or not _is_user_error(exc):
                raise
            if isinstance(exc, BrokenPipeError):  # output piped into `head` and the like
                sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (nothing more can be written)
                sys.exit(0)
            click.echo(f"error: {user_error_line(exc)}", err=True)
            sys.exit(2)
        if isinstance(rc, int) and rc:  # click returns (not raises) a command's Exit code here
            sys.exit(rc)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # a bad option or argument: one line, and where the help is
        where = exc.ctx.command_path if exc.ctx is not None else "gaitdata"
        click.echo(f"error: {' '.join(exc.format_message().split())} (see: {where} --help)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; rerun the same command to resume", err=True)
        sys.exit(130)


_OS_FIXES = {
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "it is a folder: give a file",
    errno.EACCES: "you lack permission: ask its owner for access, or choose a location you can use",
    errno.EPERM: "the operation is not permitted: ask its owner for access, or choose another location",
    errno.EROFS: "the filesystem is read-only: choose a writable location",
    errno.ENOSPC: "the disk is full: free some space, then rerun the same command (finished work is kept)",
    errno.EDQUOT: "your disk quota is used up: free some space, then rerun the same command",
    errno.EEXIST: "it already exists: remove it or choose another name",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) or use fewer --workers",
}


def _damaged_table(exc: BaseException) -> bool:
    """pyarrow's error for a file that is no parquet table (truncated, overwritten, not one at all)."""
    return type(exc).__module__.startswith("pyarrow") and "Parquet" in str(exc)


def _is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, GaitdataError | OSError) or _damaged_table(exc)


def user_error_line(exc: BaseException) -> str:
    """One line for a user error: the message of a GaitdataError, or path + reason + fix of an OSError."""
    if _damaged_table(exc):
        first = str(exc).strip().split(". ")[0]
        text = (f"{first}: the table is damaged; restore it from a backup, or rerun the command that wrote it "
                f"(gaitdata validate ROOT checks a root)")  # fmt: skip
    elif isinstance(exc, GaitdataError) or not isinstance(exc, OSError):
        text = str(exc)
    elif exc.errno is None:  # raised with a message of its own
        text = str(exc) or type(exc).__name__
    else:
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        reason = exc.strerror or str(exc)
        fix = _OS_FIXES.get(exc.errno)
        text = f"{where + ': ' if where else ''}{reason}{'; ' + fix if fix else ''}"
    return " ".join(text.split()) or type(exc).__name__


if __name__ == "__main__":
    main()
