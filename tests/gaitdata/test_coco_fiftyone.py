"""COCO files written by FiftyOne's own exporter, imported with ``gaitdata import coco``.

FiftyOne runs in a child process: a process talks to one FiftyOne database, and the browse tests
of the same session use another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gaitdata.cli import main
from gaitdata.coco import import_coco
from gaitdata.errors import GaitdataError
from gaitdata.labels import read_label_meta, read_labels
from gaitdata.testing.roots import toy_root

# FiftyOne keypoints are relative to the image: (x / width, y / height)
EXPORT = textwrap.dedent(
    """
    import json, sys
    from gaitdata.browse.db import connect

    fo = connect()
    root, out, spec = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
    name = "gaitdata-coco-import-test"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    samples = []
    for rel, people in spec.items():
        s = fo.Sample(filepath=f"{root}/{rel}")
        if people:
            s["pose"] = fo.Keypoints(keypoints=[
                fo.Keypoint(label="person", points=[tuple(p) for p in pts], confidence=conf) for pts, conf in people
            ])
        samples.append(s)
    ds.add_samples(samples)
    kw = dict(dataset_type=fo.types.COCODetectionDataset, label_field="pose")
    ds.export(export_dir=f"{out}/defaults", **kw)  # FiftyOne's defaults: media copied, names deduplicated
    ds.export(labels_path=f"{out}/mappable.json", export_media=False, rel_dir=root, **kw)
    ds.export(labels_path=f"{out}/absolute.json", export_media=False, abs_paths=True, **kw)
    fo.delete_dataset(name)
    """
)


@pytest.mark.fiftyone
@pytest.mark.slow
def test_fiftyone_coco_export_round_trip(tmp_path, capsys) -> None:
    w, h = 320, 240
    root = toy_root(tmp_path / "root", subjects=1, videos_per_subject=2, frames_per_video=3, width=w, height=h,
                    label_set=None, unequal=False)  # fmt: skip
    frames = root.read_frames().sort_values(["video_id", "frame_index"])
    rng = np.random.default_rng(1)
    spec, truth = {}, {}
    for n, rel in enumerate(frames["rgb_path"]):
        if n == 4:
            spec[rel] = []  # a frame without a person
            continue
        x, y, bw, bh = 20 + 10 * n, 30, 40 + 5 * n, 150
        pts = np.column_stack([x + rng.uniform(0, 1, 17) * bw, y + np.linspace(0.05, 0.95, 17) * bh])
        conf = rng.uniform(0.3, 1.0, 17).round(3).tolist()
        if n % 3 == 2:
            pts[4] = np.nan  # a missing point: FiftyOne writes 0, 0, 0
        spec[rel] = [[(pts / [w, h]).tolist(), conf]]
        truth[rel] = (pts, conf)
    empty = frames.iloc[4]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "export.py").write_text(EXPORT)
    env = {**os.environ, "GAITDATA_FIFTYONE_DIR": str(tmp_path / "fiftyone"), "HOME": str(tmp_path / "home")}
    subprocess.run(
        [sys.executable, str(tmp_path / "export.py"), str(root.path), str(tmp_path / "out"), str(tmp_path / "spec.json")],
        check=True, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    out = tmp_path / "out"
    defaults = json.loads((out / "defaults" / "labels.json").read_text())
    assert "keypoints" not in defaults["categories"][0] and "bbox" not in defaults["annotations"][0]
    assert any("-" in im["file_name"] for im in defaults["images"])  # 000000-2.jpg: renamed media

    # defaults: the names cannot be mapped; the message says which export arguments can
    with pytest.raises(SystemExit) as exc:
        main(["import", "coco", str(out / "defaults" / "labels.json"), "--root", str(root.path), "--label-set", "fo"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1
    assert "6 of 6 images match no frame" in err and "export_media=False, rel_dir=ROOT" in err

    for name in ("mappable", "absolute"):
        main(["import", "coco", str(out / f"{name}.json"), "--root", str(root.path), "--label-set", name])
        cap = capsys.readouterr()
        assert "read as coco17" in cap.err and "no bbox" in cap.err and "one score per keypoint" in cap.err
        lab = read_labels(root, name)
        assert len(lab.drop_duplicates(["video_id", "frame_index"])) == 6
        assert not lab[(lab.video_id == empty.video_id) & (lab.frame_index == empty.frame_index)].has_person.any()
        persons = lab[lab.has_person.astype(bool)]
        assert len(persons) == len(truth)
        for row in persons.itertuples():
            pts, conf = truth[root.rgb_relpath(row.video_id, row.frame_index)]
            kp = np.asarray(row.keypoints).reshape(17, 3)
            seen = np.isfinite(pts[:, 0])
            assert np.abs(kp[seen, :2] - pts[seen]).max() <= 1.0  # FiftyOne writes whole pixels
            assert (np.asarray(row.visibility)[~seen] == 0).all() and (np.asarray(row.visibility)[seen] == 2).all()
            assert np.allclose(kp[:, 2], conf)
            assert row.score == pytest.approx(np.mean(np.asarray(conf)[seen]))
            vis_xy = kp[seen, :2]
            assert (row.bbox_x, row.bbox_y) == (vis_xy[:, 0].min(), vis_xy[:, 1].min())
            assert row.bbox_w == vis_xy[:, 0].max() - vis_xy[:, 0].min()
        notes = read_label_meta(root, name)["import_notes"]
        assert any("lists no keypoint names" in n for n in notes)

    # the same file with another point count cannot be guessed
    d = json.loads((out / "mappable.json").read_text())
    d["annotations"][0]["keypoints"] = d["annotations"][0]["keypoints"][:-3]
    (tmp_path / "short.json").write_text(json.dumps(d))
    with pytest.raises(GaitdataError, match="lists no keypoint names and its annotations hold 16, 17 points"):
        import_coco(tmp_path / "short.json", root, "short")
