"""Agreement between two label sets per frame: the lowest OKS of their matched persons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gaitdata.dataset import DatasetRoot
from gaitdata.errors import GaitdataError
from gaitdata.schema import COCO17, KeypointSchema


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of COCO boxes a (N,4) and b (M,4)."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


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
        iou = np.nan_to_num(_iou(ba, bb))
        ka, kb = keypoints_array(ra, k), keypoints_array(rb, k)
        va = visibility_array(ra, k)
        scores: list[float] = []
        used_a, used_b = set(), set()
        for flat in np.argsort(-iou, axis=None):
            i, j = np.unravel_index(flat, iou.shape)
            if iou[i, j] < min_iou:
                break
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            area = float(np.nan_to_num(ba[i, 2] * ba[i, 3]))
            s = float(oks(kb[j], ka[i], va[i], area, schema))
            scores.append(0.0 if math.isnan(s) else s)
        scores += [0.0] * (len(ra) - len(used_a) + len(rb) - len(used_b))
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
