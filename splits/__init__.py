"""Video/subject-level splitting and leakage audits.

>>> import splits
>>> sp = splits.make_split("data/root", fractions=(0.7, 0.15, 0.15), seed=0)   # doctest: +SKIP
>>> sp.videos("test"), sp.part_of_video("s01_walk")                              # doctest: +SKIP
>>> report = splits.audit("data/root", "default")                                # doctest: +SKIP
"""

from splits.audit import (
    PHASH_THRESHOLD,
    AuditReport,
    LeakageError,
    NearDuplicate,
    audit,
    audit_split,
    print_report,
)
from splits.core import build_split, make_split
from splits.record import Split, list_splits, load_split, save_split, split_path

__all__ = [
    "PHASH_THRESHOLD",
    "AuditReport",
    "LeakageError",
    "NearDuplicate",
    "Split",
    "audit",
    "audit_split",
    "build_split",
    "list_splits",
    "load_split",
    "make_split",
    "print_report",
    "save_split",
    "split_path",
]
