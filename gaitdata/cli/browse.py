"""``gaitdata browse ROOT``: review frames and labels in the FiftyOne App; pull corrections back."""

from __future__ import annotations

import click

from gaitdata.cli.common import no_wait_option, output_options


@click.command()
@no_wait_option
@output_options
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option("--labels", "labels", multiple=True, metavar="SET",
              help="Label set to show (repeatable; default: every label set of the root).")  # fmt: skip
@click.option("--split", default=None, metavar="NAME", help="Split to tag frames with (default: 'default' or the only one).")
@click.option("--port", type=int, default=None, help="App port (default 5151; a busy port is replaced by a free one).")
@click.option("--no-launch", is_flag=True, help="Build/update the FiftyOne dataset only; do not start the App.")
@click.option("--video-level", is_flag=True, help="Also save a 'videos' view: one item per recording, frames in order.")
@click.option("--view", "saved_view", default=None, metavar="NAME",
              help="Open the App on a saved view (low-confidence, qa-flagged, disagree-<set>, split-<part>, videos).")  # fmt: skip
@click.option("--db-dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="FiftyOne database directory (default: ROOT/.fiftyone/db, or $GAITDATA_FIFTYONE_DIR/db).")  # fmt: skip
@click.option("--editable", is_flag=True,
              help="Add editable skeleton polylines (<set>_edit): move their vertices in the App's annotate tab.")  # fmt: skip
@click.option("--rebuild", is_flag=True, help="Delete and rebuild the FiftyOne dataset (review tags are lost).")
@click.option("--pull", "do_pull", is_flag=True, help="Pull review edits of --label-set into a new label set.")
@click.option("--label-set", default=None, metavar="NAME", help="With --pull: the label set that was reviewed.")
@click.option("--name", "out_name", default=None, metavar="NAME",
              help="With --pull: the new label set (default: <label-set>.reviewed).")  # fmt: skip
def command(root: str, labels: tuple[str, ...], split: str | None, port: int | None, no_launch: bool,
            video_level: bool, saved_view: str | None, db_dir: str | None, editable: bool, rebuild: bool, do_pull: bool,
            label_set: str | None, out_name: str | None) -> None:  # fmt: skip
    """Review frames and labels in FiftyOne (RGB + depth, skeletons, confidences, review queues).

    Builds or updates a persistent grouped FiftyOne dataset for ROOT (slices rgb and depth), saves
    review views, then serves the App on 127.0.0.1 until Ctrl-C. Tag frames `reject` (or persons),
    fix boxes, move skeleton vertices (--editable; the App edits polylines, not keypoints), then
    pull the edits back into a new label set with --pull.

    \b
    Examples:
      gaitdata browse data/root                          # every label set, App on :5151
      gaitdata browse data/root --labels mediapipe --labels alphapose --view disagree-alphapose
      gaitdata browse data/root --no-launch              # build/update only
      gaitdata browse data/root --editable               # + <set>_edit skeletons to correct in the App
      gaitdata browse data/root --pull --label-set mediapipe   # -> labels/mediapipe.reviewed
      GAITDATA_FIFTYONE_DIR=~/.cache/gaitdata gaitdata browse data/root --port 5252
    """
    from gaitdata.browse import build_dataset, launch, pull
    from gaitdata.browse.db import describe
    from gaitdata.progress import console as make_console
    from gaitdata.progress import is_quiet

    con = make_console(highlight=False)
    if do_pull:
        if not label_set:
            raise click.UsageError("--pull needs --label-set NAME (the label set you reviewed)")
        path = pull(root, label_set, name=out_name, db_dir=db_dir)
        from gaitdata.labels import read_label_meta

        meta = read_label_meta(root, path.stem)
        con.print(f"[green]pulled[/green] review of {label_set} into label set [bold]{path.stem}[/bold] ({path})")
        con.print("  " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in meta.get("review", {}).items()))
        con.print(f"  {label_set} is unchanged; export without rejected frames: --exclude-flag rejected")
        return
    if label_set or out_name:
        raise click.UsageError("--label-set/--name go with --pull")

    chosen = list(labels) if labels else None
    from gaitdata.browse.build import plan

    plan(root, chosen, split)  # bad root / label set / split: a clear error before anything starts
    con.print(f"FiftyOne database: {describe(root, db_dir)}")

    def summary(ds: object) -> None:
        info = ds.info.get("gaitdata", {})  # type: ignore[attr-defined]
        last = info.get("last_build", {})
        con.print(
            f"dataset [bold]{ds.name}[/bold]: {len(ds.select_group_slices('rgb')) if 'rgb' in (ds.group_slices or []) else 0} "  # type: ignore[attr-defined]
            f"frames ({last.get('added_frames', 0)} new), label sets: {', '.join(info.get('fields', {})) or 'none'}, "
            f"split: {info.get('split') or 'none'}"
        )
        for note in last.get("notes", []):
            con.print(f"[yellow]note:[/yellow] {note}")
        for skip in last.get("skipped", []):
            con.print(f"[yellow]skipped:[/yellow] {skip}")
        con.print("saved views: " + (", ".join(ds.list_saved_views()) or "none"))  # type: ignore[attr-defined]

    if no_launch:
        ds = build_dataset(root, labels=chosen, split=split, db_dir=db_dir, video_level=video_level,
                           progress=not is_quiet(), rebuild=rebuild, editable=editable)  # fmt: skip
        summary(ds)
        return
    if rebuild or editable:
        build_dataset(root, labels=chosen, split=split, db_dir=db_dir, video_level=video_level, rebuild=rebuild,
                      editable=editable)  # fmt: skip

    def ready(app: object) -> None:
        import fiftyone as fo

        summary(fo.load_dataset(app.dataset))  # type: ignore[attr-defined]
        con.print(f"[green]App ready:[/green] {app.url}  (bound to 127.0.0.1; for a remote machine: "  # type: ignore[attr-defined]
                  f"ssh -N -L {app.port}:127.0.0.1:{app.port} HOST). Ctrl-C to stop.")  # type: ignore[attr-defined]  # fmt: skip

    launch(root, labels=chosen, split=split, port=port, db_dir=db_dir, video_level=video_level,
           progress=not is_quiet(), on_ready=ready, view=saved_view)  # fmt: skip
    con.print("App stopped.")
