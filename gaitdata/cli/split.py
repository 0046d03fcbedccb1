"""``gaitdata split ROOT``: subject/video-level train/val/test (or k-fold) split, audited."""

from __future__ import annotations

import click

from gaitdata.cli.common import no_wait_option, output_options


def _fractions(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers like 0.7,0.15,0.15, got {value!r}"
        ) from None


@click.command()
@no_wait_option
@output_options
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--by",
    type=click.Choice(["subject", "video"]),
    default=None,
    help="Split unit. Default: subject when every recording names one, else video.",
)
@click.option(
    "--fractions",
    default="0.7,0.15,0.15",
    show_default=True,
    callback=_fractions,
    help="Fractions of frames (or labelled persons with --labels) per part; must sum to 1.",
)
@click.option(
    "--names", default=None, help="Comma-separated part names (default train,val,test or train,test)."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--stratify", default="", help="Recording columns to balance over the parts, e.g. view,condition.")
@click.option("--name", default="default", show_default=True, help="Saved as ROOT/splits/NAME.json.")
@click.option("--folds", type=int, default=None, help="Make a K-fold split (fold0..foldK-1) instead.")
@click.option(
    "--labels", default=None, help="Weigh groups by labelled persons of this label set, not frames."
)
@click.option(
    "--trials", type=int, default=16, show_default=True, help="Seeded assignment attempts; the best is kept."
)
@click.option("--no-near-duplicates", is_flag=True, help="Skip the perceptual-hash near-duplicate check.")
@click.option(
    "--frames-per-video",
    type=int,
    default=8,
    show_default=True,
    help="Frames hashed per video by the near-duplicate check (0 = all).",
)
@click.option(
    "--region",
    type=click.Choice(["auto", "frame", "person"]),
    default="auto",
    show_default=True,
    help="Hash the whole frame or the labelled person's box (auto: person when a label set is known).",
)
@click.option("--strict", is_flag=True, help="Refuse to save when near-duplicate frames cross parts.")
def command(root: str, by: str | None, fractions: tuple[float, ...], names: str | None, seed: int, stratify: str,
            name: str, folds: int | None, labels: str | None, trials: int, no_near_duplicates: bool,
            frames_per_video: int, region: str, strict: bool) -> None:  # fmt: skip
    """Assign whole subjects (or videos) to parts so the fractions hold by frame count; audit; save.

    A video or subject in two parts is refused (nothing is saved). The same inputs and seed
    rewrite ROOT/splits/NAME.json byte for byte.

    \b
    Examples:
      gaitdata split data/root                                  # subjects, 70/15/15 of frames
      gaitdata split data/root --by video --fractions 0.8,0.2 --seed 1 --name v80
      gaitdata split data/root --stratify view,condition --labels mediapipe
      gaitdata split data/root --folds 5 --name cv5
    """
    import splits
    from gaitdata.progress import console as make_console
    from gaitdata.progress import warnings_console
    from gaitdata.tables import key_column, make_table, num_column

    console = make_console()
    sp = splits.make_split(
        root, by=by, fractions=fractions, seed=seed, stratify=[s for s in stratify.split(",") if s], name=name,
        folds=folds, labels=labels, names=names.split(",") if names else None, trials=trials,
        near_duplicates=not no_near_duplicates, frames_per_video=frames_per_video, strict=strict, region=region,
        progress=True,
    )  # fmt: skip
    weight = "labelled persons" if sp.weight == "labelled_persons" else "frames"
    table = make_table(f"split {sp.name}: by {sp.unit}, seed {seed}, fractions of {weight}")
    key_column(table, "part")
    for c in ("target %", f"{weight.replace(' ', chr(10))} %", f"{sp.unit}s %", sp.unit + "s", "videos", "frames"):
        num_column(table, c)
    for s in sp.part_names:
        c = sp.counts[s]
        table.add_row(
            s, f"{100 * c['target_fraction']:.1f}", f"{100 * c['weight_fraction']:.1f}",
            f"{100 * c['group_fraction']:.1f}", str(c["groups"]), str(c["videos"]), str(c["frames"]),
        )  # fmt: skip
    console.print(table)
    a = sp.audit_summary
    nd = a.get("near_duplicates", {})
    if nd.get("frames_hashed"):
        console.print(
            f"audit: {nd['pairs']} near-duplicate pair(s) across parts among {nd['frames_hashed']} hashed frames"
        )
    warn = warnings_console()
    for w in a.get("warnings", []):
        warn.print(f"[yellow]warning:[/] {w}", highlight=False)
    console.print(f"saved {sp.path} ({sp.content_hash[:19]})", highlight=False, soft_wrap=True)
    console.print(f"statistics: gaitdata audit {root} --split {sp.name}", highlight=False, soft_wrap=True)
