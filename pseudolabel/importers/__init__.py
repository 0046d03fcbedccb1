"""Results of other tools brought into a dataset root as label sets.

* :mod:`pseudolabel.importers.alphapose`: AlphaPose's own results files (``alphapose-results.json``
  of ``scripts/demo_inference.py``), as they are (read by :mod:`pseudolabel.alphapose_results`,
  which also gives ``--boxes json:PATH`` its boxes).
* :mod:`pseudolabel.importers.labelset`: a label set written by ``gaitdata label`` on another
  machine over the same frames (e.g. a GPU machine), checked against this root and added to it.
"""
