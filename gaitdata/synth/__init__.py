"""Synthetic gait recordings: an articulated, clothed, shaded walker with exact depth and ground truth.

Contract (shared by the renderer, the container writers and every test):
:class:`gaitdata.synth.recording.SynthRecording`.

>>> from gaitdata.synth import WalkSpec, render_walk, write_recording
>>> rec = render_walk(WalkSpec(direction="toward", n_frames=30, seed=1))  # doctest: +SKIP
>>> write_recording(rec, "out/sub01/ses1_front", "bag")  # doctest: +SKIP
"""

from gaitdata.synth.body import Appearance
from gaitdata.synth.groundtruth import (
    ground_truth_labels,
    load_ground_truth,
    save_ground_truth,
    sidecar_path,
    write_ground_truth_labels,
)
from gaitdata.synth.recording import SynthRecording
from gaitdata.synth.samples import SampleEntry, SampleSet, make_sample_set, write_recording
from gaitdata.synth.walk import DIRECTIONS, WalkSpec, render_walk

__all__ = [
    "DIRECTIONS",
    "Appearance",
    "SampleEntry",
    "SampleSet",
    "SynthRecording",
    "WalkSpec",
    "ground_truth_labels",
    "load_ground_truth",
    "make_sample_set",
    "render_walk",
    "save_ground_truth",
    "sidecar_path",
    "write_ground_truth_labels",
    "write_recording",
]
