"""``gaitdata synth OUT``: render synthetic gait recordings in every container kind."""

from __future__ import annotations

import click

from gaitdata.cli.common import output_options

_KINDS = ("bag", "db3", "pair", "video", "images")


class _Directions(click.Choice):
    """The walker's directions, read from the renderer only when the option is used or shown."""

    def __init__(self) -> None:
        super().__init__([], case_sensitive=True)

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        from gaitdata.synth.walk import DIRECTION_ALIASES, DIRECTIONS

        return (*DIRECTIONS, *DIRECTION_ALIASES)

    @choices.setter
    def choices(self, value: object) -> None:
        pass


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    return w, h


@click.command()
@output_options
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option("--kind", "kinds", multiple=True, default=("all",), show_default=True,
              type=click.Choice([*_KINDS, "all"]), help="Container kind(s); repeat the option or use 'all'.")  # fmt: skip
@click.option(
    "--subjects",
    default=None,
    type=click.IntRange(1, 100),
    help="Number of subjects.  [default: 1; 3 with --sample-set]",
)
@click.option(
    "--frames",
    default=48,
    show_default=True,
    type=click.IntRange(2, 100000),
    help="Colour frames per recording.",
)
@click.option("--direction", "directions", multiple=True, default=("left_to_right",), show_default=True,
              type=_Directions(), help="Walking direction(s); repeatable.")  # fmt: skip
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed of appearance, gait phase and noise."
)
@click.option("--fps", default=30.0, show_default=True, type=float)
@click.option("--size", default="640x480", show_default=True, help="Colour resolution WIDTHxHEIGHT.")
@click.option("--depth-size", default="480x360", show_default=True, help="Depth resolution WIDTHxHEIGHT.")
@click.option("--depth-noise", default=0.0, show_default=True, type=float, help="Depth noise std (mm).")
@click.option(
    "--depth-holes", default=0.0, show_default=True, type=float, help="Fraction of depth pixels left empty."
)
@click.option(
    "--drop-prob",
    default=0.0,
    show_default=True,
    type=float,
    help="Probability of dropping a frame (each stream).",
)
@click.option(
    "--offset-ms", default=0.0, show_default=True, type=float, help="Start offset of depth vs colour (ms)."
)
@click.option("--jitter-ms", default=0.0, show_default=True, type=float, help="Timestamp jitter std (ms).")
@click.option("--bystander", is_flag=True, help="Add a second walker further away.")
@click.option(
    "--sample-set",
    is_flag=True,
    help="Write the built-in sample set instead (every kind, side + front views, metadata CSV).",
)
def command(
    out: str, kinds: tuple[str, ...], subjects: int | None, frames: int, directions: tuple[str, ...], seed: int, fps: float,
    size: str, depth_size: str, depth_noise: float, depth_holes: float, drop_prob: float, offset_ms: float,
    jitter_ms: float, bystander: bool, sample_set: bool,
) -> None:  # fmt: skip
    """Render synthetic RGB-D gait recordings (a clothed walker with exact depth and ground truth).

    Each recording gets a ground-truth sidecar ``<recording>.gt.npz`` (COCO-17 keypoints with
    visibility, 3-D joints); extraction ignores it and ``gaitdata.synth.write_ground_truth_labels``
    turns it into a label set. Layout: ``OUT/<subject>/<direction>_<kind>.<ext>``.

    \b
    Examples:
      gaitdata synth data/synth --kind bag --subjects 2 --frames 60
      gaitdata synth data/synth --kind all --direction toward --direction left_to_right --seed 3
      gaitdata synth data/synth --kind pair --depth-noise 2 --depth-holes 0.01 --drop-prob 0.05 --offset-ms 4
      gaitdata synth data/samples --sample-set --subjects 3 --frames 48
    """
    from pathlib import Path

    from gaitdata.errors import GaitdataError
    from gaitdata.progress import console as make_console
    from gaitdata.progress import say
    from gaitdata.synth import WalkSpec, make_sample_set, render_walk, write_recording
    from gaitdata.tables import key_column, make_table, num_column

    hint = make_console(stderr=True)
    if subjects is None:
        subjects = 3 if sample_set else 1
    colour_size, dsize = _size(size), _size(depth_size)
    root = Path(out)
    rows: list[tuple[str, str, str, int, int]] = []
    if sample_set:
        try:
            s = make_sample_set(root, n_subjects=subjects, n_frames=frames, seed=seed, colour_size=colour_size,
                                depth_size=dsize, progress=True)  # fmt: skip
        except OSError as exc:
            raise GaitdataError(
                f"{root}: cannot write the sample set ({exc}); choose a writable OUT"
            ) from exc
        rows = [(e.subject, e.kind, str(e.path), e.n_colour_frames, e.n_depth_frames) for e in s.entries]
        hint.print(
            f"extract with: gaitdata extract {root} --out ROOT --id-pattern '{s.id_pattern}' --metadata {s.metadata_csv}",
            highlight=False, markup=False, soft_wrap=True,
        )  # fmt: skip
    else:
        chosen = _KINDS if "all" in kinds else tuple(dict.fromkeys(kinds))
        for i in range(subjects):
            subject = f"sub{i + 1:02d}"
            for direction in dict.fromkeys(directions):
                needs_depth = any(k in ("bag", "db3", "pair") for k in chosen)
                try:
                    spec = WalkSpec(
                        subject=subject, seed=seed + i, direction=direction, n_frames=frames, fps=fps,
                        colour_size=colour_size, depth_size=dsize, with_depth=needs_depth, depth_noise_mm=depth_noise,
                        depth_holes=depth_holes, drop_prob=drop_prob, depth_offset_ms=offset_ms, jitter_ms=jitter_ms,
                        bystander=bystander,
                    )  # fmt: skip
                except ValueError as exc:
                    raise click.UsageError(str(exc)) from None
                rec = render_walk(spec, progress=True)
                for kind in chosen:
                    target = root / subject / f"{spec.direction}_{kind}"
                    try:
                        path = write_recording(rec, target, kind)
                    except OSError as exc:
                        raise GaitdataError(
                            f"{target}: cannot write the recording ({exc}); choose a writable OUT"
                        ) from exc
                    rows.append(
                        (
                            subject,
                            kind,
                            str(path),
                            len(rec.colour),
                            0 if rec.depth is None or kind in ("video", "images") else len(rec.depth),
                        )
                    )
    table = make_table(f"synthetic recordings in {root} (frames per stream)")
    for col in ("subject", "kind", "path"):
        key_column(table, col)
    num_column(table, "colour")
    num_column(table, "depth")
    for r in rows:
        table.add_row(r[0], r[1], _relative(r[2], root), str(r[3]), str(r[4]))
    make_console().print(table)
    say(f"{len(rows)} recording{'' if len(rows) == 1 else 's'} written to {root}")


def _relative(path: str, root) -> str:
    from pathlib import Path

    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return path
