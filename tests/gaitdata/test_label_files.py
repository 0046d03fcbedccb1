"""Label-set files: one schema, metadata inside, a folder other tools read as one table; migration."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gaitdata.cli import cli
from gaitdata.dataset import DatasetRoot, conform
from gaitdata.errors import GaitdataError
from gaitdata.labels import (
    LABEL_COLUMNS,
    label_schema,
    label_set_fingerprint,
    read_label_meta,
    read_labels,
    table_fingerprint,
    write_labels,
)
from gaitdata.migrate import migrate


def _rows(vid: str, n: int, flags: bool) -> pd.DataFrame:
    rows = []
    for f in range(n):
        rows.append({
            "video_id": vid, "frame_index": f, "person_index": 0, "has_person": True,
            "bbox_x": 1.0, "bbox_y": 2.0, "bbox_w": 30.0, "bbox_h": 60.0, "score": 0.9,
            "keypoints": [float(f)] * 51, "visibility": [2] * 17, "num_visible": 17, "track_id": 0,
            "is_subject": True, "teacher": "t", "weights_hash": None,
            "qa_flags": (["jitter"] if f % 2 else []) if flags else [],
        })  # fmt: skip
    rows.append({"video_id": vid, "frame_index": n, "person_index": -1, "has_person": False, "teacher": "t",
                 "qa_flags": []})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture
def root(tmp_path):
    r = DatasetRoot(tmp_path / "root")
    r.init()
    write_labels(r, "plain", _rows("v1", 4, flags=False), {"teacher": "t"})
    write_labels(r, "flagged", _rows("v2", 6, flags=True), {"teacher": "t", "note": "x"})
    return r


def test_label_folder_holds_only_label_files_with_one_schema(root):
    assert sorted(p.name for p in root.labels_dir.iterdir()) == ["flagged.parquet", "plain.parquet"]
    for name in ("plain", "flagged"):
        schema = pq.read_schema(root.label_path(name)).remove_metadata()
        assert schema.equals(label_schema())
        assert schema.field("qa_flags").type == pa.list_(pa.string())  # not list<null> when all are empty
    df = pd.read_parquet(root.labels_dir)
    assert len(df) == 5 + 7 and set(df["video_id"]) == {"v1", "v2"}
    assert sorted(len(f) for f in df["qa_flags"]).count(1) == 3


def test_duckdb_reads_the_label_folder_as_one_table(root):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    n, teachers, flag_type = con.sql(
        f"select count(*), count(distinct video_id), any_value(typeof(qa_flags)) "
        f"from read_parquet('{root.labels_dir}/*.parquet')"
    ).fetchall()[0]
    assert (n, teachers, flag_type) == (12, 2, "VARCHAR[]")


def test_polars_reads_the_label_folder_as_one_table(root):
    pl = pytest.importorskip("polars")
    df = pl.scan_parquet(str(root.labels_dir)).collect()
    assert df.height == 12 and df.schema["qa_flags"] == pl.List(pl.String)


def test_metadata_lives_in_the_file_and_the_fingerprint_follows_the_rows(root):
    meta = read_label_meta(root, "flagged")
    assert meta["note"] == "x" and meta["lineage"]["frames"] == {"v2": None}
    fp = label_set_fingerprint(root, "flagged")
    assert fp == meta["fingerprint"] == table_fingerprint(pq.read_table(root.label_path("flagged"), schema=label_schema()))
    write_labels(root, "flagged", read_labels(root, "flagged"), {"teacher": "t", "note": "other"})
    assert label_set_fingerprint(root, "flagged") == fp  # new metadata, same rows
    df = read_labels(root, "flagged")
    df.loc[0, "score"] = 0.1
    write_labels(root, "flagged", df, meta)
    assert label_set_fingerprint(root, "flagged") != fp
    with pytest.raises(GaitdataError, match="duplicate"):
        write_labels(root, "bad", pd.concat([_rows("v", 2, False)] * 2), {})
    assert not root.label_path("bad").exists()


def test_a_damaged_label_file_fails_validate(root):
    path = root.label_path("plain")
    path.write_bytes(path.read_bytes()[:200])
    res = CliRunner().invoke(cli, ["validate", str(root.path)])
    assert res.exit_code == 1 and f"error: label set 'plain': {path} is unreadable" in res.output


def _old_root(path) -> DatasetRoot:
    """A root as gaitdata wrote it before: sidecar metadata, parts and a temporary in labels/."""
    r = DatasetRoot(path)
    r.init()
    meta = json.loads(r.meta_path.read_text())
    meta["schema_version"] = 1
    r.meta_path.write_text(json.dumps(meta))
    r.labels_dir.mkdir()
    for name, flags in (("plain", False), ("flagged", True)):
        df = conform(_rows(name, 3, flags), LABEL_COLUMNS, name)
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), r.label_path(name))
        (r.labels_dir / f"{name}.json").write_text(json.dumps({"teacher": "t", "old": name}))
    assert pq.read_schema(r.label_path("plain")).field("qa_flags").type == pa.list_(pa.null())
    parts = r.labels_dir / ".parts" / "plain"
    parts.mkdir(parents=True)
    (parts / "run.json").write_text("{}")
    (r.labels_dir / ".plain.parquet.x1.tmp").write_bytes(b"partial")
    return r


def test_an_old_root_is_refused_with_the_fix_then_migrated_in_place(tmp_path):
    r = _old_root(tmp_path / "old")
    res = CliRunner().invoke(cli, ["validate", str(r.path)])
    assert res.exit_code == 1 and f"upgrade it in place with: gaitdata migrate {r.path}" in res.output
    with pytest.raises(GaitdataError, match="older gaitdata.*gaitdata migrate"):
        r.meta()

    res = CliRunner().invoke(cli, ["migrate", str(r.path)])
    assert res.exit_code == 0 and "migrated from dataset schema 1 to 2" in res.output
    assert sorted(p.name for p in r.labels_dir.iterdir()) == ["flagged.parquet", "plain.parquet"]
    assert (r.path / ".gaitdata" / "labels" / "plain" / "run.json").is_file()
    assert read_label_meta(r, "plain")["old"] == "plain" and "lineage" not in read_label_meta(r, "plain")
    assert pq.read_schema(r.label_path("plain")).remove_metadata().equals(label_schema())
    assert r.meta()["migrations"][0]["from"] == 1 and len(pd.read_parquet(r.labels_dir)) == 8

    res = CliRunner().invoke(cli, ["validate", str(r.path)])
    assert res.exit_code == 0 and res.output.count("unknown lineage") == 2

    before = {n: read_labels(r, n) for n in ("plain", "flagged")}
    meta = json.loads(r.meta_path.read_text())  # as if interrupted before the version was written
    meta["schema_version"] = 1
    r.meta_path.write_text(json.dumps(meta))
    assert migrate(r).migrated and read_label_meta(r, "flagged")["old"] == "flagged"
    for n, df in before.items():
        pd.testing.assert_frame_equal(read_labels(r, n), df)
    assert not migrate(r).migrated  # current: nothing to do


def test_keypoint_codec_round_trips_and_checks_the_count() -> None:
    from gaitdata.labels import decode_keypoints, encode_keypoints

    rng = np.random.default_rng(3)
    for k in (17, 26, 5):
        kp = rng.uniform(-10, 640, (k, 3))
        kp[0, :2] = np.nan  # a joint without coordinates survives the round trip
        value = encode_keypoints(kp)
        assert isinstance(value, list) and len(value) == 3 * k and all(type(v) is float for v in value)
        back = decode_keypoints(value, k)
        np.testing.assert_array_equal(back, kp)
        stored = pa.table({"keypoints": pa.array([value], pa.list_(pa.float64()))}).to_pandas()["keypoints"][0]
        np.testing.assert_array_equal(decode_keypoints(stored, k), kp)  # as parquet gives it back
        back[1, 0] = -1.0
        assert value[3] == kp[1, 0]  # decoding copies
    assert np.isnan(decode_keypoints(None, 17)).all() and decode_keypoints([], 4).shape == (4, 3)
    with pytest.raises(GaitdataError, match=r"holds 51 numbers, expected 3 x 26"):
        decode_keypoints(encode_keypoints(np.zeros((17, 3))), 26)
