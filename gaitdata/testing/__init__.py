"""Fixtures for tests and benchmarks: small data with known answers, made in memory or in a temporary folder.

Like ``numpy.testing``, this package is for the project's tests (``tests/``) and benchmarks (``tools/``)
and for anyone testing code built on gaitdata; the library itself never imports it.

* :mod:`gaitdata.testing.recordings`: RGB-D recordings of a tilted plane with analytically known
  geometry (:func:`~gaitdata.testing.recordings.plane_recording`), to write in every container kind.
* :mod:`gaitdata.testing.roots`: dataset roots whose tables and label set are generated directly,
  no recording rendered (:func:`~gaitdata.testing.roots.toy_root`), for splits and exports.
* :mod:`gaitdata.testing.figures`: a root of drawn stick figures with a teacher and a ground-truth
  label set and COCO exports (:func:`~gaitdata.testing.figures.stick_figure_root`), for the student.

For realistic recordings of a walking person use :mod:`gaitdata.synth`.
"""
