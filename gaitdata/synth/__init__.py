"""Synthetic gait recordings: an articulated, clothed, shaded walker with exact depth and ground truth.

Contract (shared by the renderer, the container writers and every test):
:class:`gaitdata.synth.recording.SynthRecording`.

>>> from gaitdata.synth import WalkSpec, render_walk
>>> rec = render_walk(WalkSpec(direction="toward", n_frames=30, seed=1))  # doctest: +SKIP
"""

from gaitdata.synth.body import Appearance
from gaitdata.synth.recording import SynthRecording
from gaitdata.synth.walk import DIRECTIONS, WalkSpec, render_walk

__all__ = ["DIRECTIONS", "Appearance", "SynthRecording", "WalkSpec", "render_walk"]
