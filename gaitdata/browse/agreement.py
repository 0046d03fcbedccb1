"""Agreement between two label sets per frame: the lowest OKS of their matched persons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.geometry import match_by_iou
from gaitdata.schema import COCO17, KeypointSchema


def frame_agreement(a: pd.DataFrame, b: pd.DataFrame, schema: KeypointSchema = COCO17,
                    min_iou: float = 0.1) -> dict[tuple[str, int], float]:  # fmt: skip
    """Per frame, the lowest OKS between persons of label tables ``a`` (reference) and ``b`` in memory.

    Persons are matched greedily by box IoU (>= ``min_iou``); a person without a partner counts
    as OKS 0. Frames where neither set has a person are left out.
    """
    from gaitdata.labels import keypoints_array, visibility_array
    from gaitdata.metrics import oks

    k = schema.num_keypoints
    a = a[a["has_person"].fillna(False).astype(bool)]
    b = b[b["has_person"].fillna(False).astype(bool)]
    ga = dict(list(a.groupby(["video_id", "frame_index"], sort=False)))
    gb = dict(list(b.groupby(["video_id", "frame_index"], sort=False)))
    out: dict[tuple[str, int], float] = {}
    for key in set(ga) | set(gb):
        ra, rb = ga.get(key), gb.get(key)
        if ra is None or rb is None:
            out[(str(key[0]), int(key[1]))] = 0.0
            continue
        ba = ra[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(np.float64)
        bb = rb[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(np.float64)
        ka, kb = keypoints_array(ra, k), keypoints_array(rb, k)
        va = visibility_array(ra, k)
        scores: list[float] = []
        pairs = match_by_iou(ba, bb, min_iou)
        for i, j in pairs:
            area = float(np.nan_to_num(ba[i, 2] * ba[i, 3]))
            s = float(oks(kb[j], ka[i], va[i], area, schema))
            scores.append(0.0 if math.isnan(s) else s)
        scores += [0.0] * (len(ra) + len(rb) - 2 * len(pairs))
        out[(str(key[0]), int(key[1]))] = min(scores) if scores else 0.0
    return out


def pair_agreement(root: DatasetRoot, a: str, b: str) -> dict[tuple[str, int], float]:
    """Per-frame lowest OKS between label sets ``a`` and ``b`` of ``root`` by the matching rules of
    :mod:`pseudolabel.agreement` (an unmatched person counts as 0); empty without a common frame."""
    from pseudolabel.agreement import compare_label_sets
    from pseudolabel.agreement import frame_agreement as per_frame

    try:
        table = compare_label_sets(root, a, b, write=False)
    except GaitdataError:  # no frame in common
        return {}
    f = per_frame(table)
    return {(str(v), int(i)): float(o) for v, i, o in zip(f["video_id"], f["frame_index"], f["min_oks"], strict=True)}


def agreement_field(fa: str, fb: str) -> str:
    return f"oks_{fa}_vs_{fb}"
