"""Synthetic gait recordings: an articulated, clothed, shaded walker with exact depth and ground truth.

Contract (shared by the renderer, the container writers and every test):
:class:`gaitdata.synth.recording.SynthRecording`.
"""

from gaitdata.synth.recording import SynthRecording

__all__ = ["SynthRecording"]
