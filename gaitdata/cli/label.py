"""``gaitdata label ROOT --teacher NAME``."""

from __future__ import annotations

import click

from gaitdata.cli.common import make_ray_options, no_wait_option, output_options, ray_options


def _thresholds(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected two numbers LOW,HIGH (e.g. 0.2,0.5), got {value!r}") from None
    if not 0 <= lo <= hi <= 1:
        raise click.BadParameter(f"need 0 <= LOW <= HIGH <= 1, got {value!r}")
    return lo, hi


@click.command()
@no_wait_option
@output_options
@click.argument("root", required=False, type=click.Path(file_okay=False, path_type=str))
@click.option("--teacher", "-t", default="mediapipe", show_default=True, help="Teacher name; 'list' prints them.")
@click.option("--weights", type=click.Path(path_type=str),
              help="Checkpoint of a teacher that needs one (student: a run directory, .pt or .onnx).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--label-set", help="Name of the label set (default: the teacher's name).")
@click.option(
    "--boxes", default="auto", show_default=True,
    help="Person boxes: auto (= people: motion, depth, HOG, tracking), none, people, depth, detector, json:PATH (AlphaPose results or detections), labels:SET.",
)  # fmt: skip
@click.option("--smooth", is_flag=True, help="Smooth keypoints over time (One-Euro filter per track).")
@click.option(
    "--vis-thresholds", default="0.2,0.5", show_default=True, callback=_thresholds,
    help="Confidence thresholds LOW,HIGH for COCO visibility 0/1/2.",
)  # fmt: skip
@click.option("--mode", type=click.Choice(["video", "static"]), help="mediapipe only: tracking or per-frame detection.")
@click.option("--no-subject", is_flag=True, help="Do not pick a gait subject (every person is_subject).")
@click.option("--no-qa", is_flag=True, help="Skip the QA flags.")
@click.option("--video", "videos", multiple=True, help="Label only these video ids (repeatable).")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Frame-decoding threads [default: one per CPU beyond the first, at most 2].")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Relabel from scratch (drops earlier parts of this label set).")
@ray_options(gpus=True)
def command(
    root: str | None, teacher: str, weights: str | None, device: str, batch_size: int, label_set: str | None,
    boxes: str, smooth: bool, vis_thresholds: tuple[float, float], mode: str | None, no_subject: bool,
    no_qa: bool, videos: tuple[str, ...], workers: int | None, overwrite: bool, ray_address: str | None,
    cpus_per_task: float, gpus_per_task: float | None,
) -> None:  # fmt: skip
    """Pseudo-label every extracted frame of ROOT with a teacher pose model.

    Writes ROOT/labels/<label-set>.parquet (metadata inside). Interrupted runs resume: rerun the
    same command; it also relabels the recordings whose frames changed since (re-extracted).
    Every frame gets pose rows or an explicit no-person row.

    \b
    Examples:
      gaitdata label --teacher list
      gaitdata label data/root                                  # BlazePose, offline, CPU
      gaitdata label data/root --teacher mediapipe --boxes depth --label-set mp_multi
      gaitdata label data/root --teacher alphapose --weights fast_res50_256x192.pth --boxes depth
      gaitdata label data/root --teacher alphapose --boxes json:det_results.json --device cuda
      gaitdata label data/root --teacher student --weights data/root/models/run1 --boxes labels:mediapipe
      gaitdata label data/root --smooth --vis-thresholds 0.3,0.6 --label-set mp_smooth
      gaitdata label /shared/root --ray auto                                 # Ray: one task per recording
      gaitdata label /shared/root --teacher alphapose --weights /shared/w/fast_res50_256x192.pth \\
          --device cuda --ray 10.0.0.5:6379 --gpus-per-task 0.25             # four tasks per GPU
    """
    from pseudolabel.registry import list_teachers

    if teacher == "list":
        for name in list_teachers():
            click.echo(name)
        return
    if root is None:
        raise click.UsageError("missing ROOT (a dataset root made by gaitdata extract)")

    from gaitdata.progress import console as make_console
    from pseudolabel.runner import label

    opts = {"mode": mode} if mode else {}
    ray = make_ray_options(ray_address, cpus_per_task, gpus_per_task)
    s = label(
        root, teacher=teacher, label_set=label_set, weights=weights, device=device, batch_size=batch_size,
        boxes=boxes, progress=True, smooth="one_euro" if smooth else None, vis_thresholds=vis_thresholds,
        select_subject=not no_subject, qa=not no_qa, videos=list(videos) or None, overwrite=overwrite,
        workers=workers, ray=ray, **opts,
    )  # fmt: skip
    console = make_console()
    console.print(recordings_table(f"label set {s.label_set} ({s.teacher})", s.recordings, total=s))
    resumed = [r.video_id for r in s.recordings if r.resumed]
    if resumed:
        console.print(f"labelled by an earlier run (kept): {len(resumed)} of {len(s.recordings)} recordings"
                      + (f" ({', '.join(resumed)})" if len(resumed) <= 5 else ""), highlight=False)  # fmt: skip
    console.print(f"wrote {s.path} in {s.seconds:.1f} s ({s.frames_per_second:.1f} frames/s)", highlight=False,
                  soft_wrap=True)


def recordings_table(title: str, recordings, total=None):
    """Per-recording counts of a label set (and a total row from a summary), fitting 80 columns."""
    from gaitdata.tables import key_column, make_table, num_column

    table = make_table(title)
    key_column(table, "recording")
    for col in ("frames", "persons", "no\nperson", "subject\nframes", "flagged", "mean\nconf"):
        num_column(table, col)
    for r in recordings:
        table.add_row(
            r.video_id, str(r.n_frames), str(r.n_persons), str(r.n_no_person), str(r.n_subject),
            str(r.n_flagged), f"{r.mean_confidence:.3f}",
        )  # fmt: skip
    if total is not None:
        table.add_section()
        table.add_row(
            "total", str(total.n_frames), str(total.n_persons), str(total.n_no_person), "", str(total.n_flagged),
            f"{total.mean_confidence:.3f}", style="bold",
        )  # fmt: skip
    return table
