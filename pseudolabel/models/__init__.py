"""Pure-PyTorch models of the checkpoint-exact teachers.

``pseudolabel.models.fastpose`` (FastPose, needs torch) and ``pseudolabel.models.fastpose_io``
(AlphaPose's crop/normalise/decode steps; numpy + OpenCV, torch only for tensors) are imported
on demand; importing this package imports nothing heavy.
"""
