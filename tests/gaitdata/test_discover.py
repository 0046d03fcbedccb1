"""Discovery: kinds, pair naming, ignored sidecars, stable ids, id pattern and metadata CSV."""

from __future__ import annotations

import re

import pytest

from gaitdata.containers import write
from gaitdata.discover import compile_id_pattern, discover, parse_id_pattern, safe_id
from gaitdata.errors import GaitdataError
from gaitdata.testing.recordings import plane_recording


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    d = tmp_path_factory.mktemp("rec")
    rec = plane_recording(n=3)
    write(rec, d / "s01" / "pre_front.bag", "bag")
    write(rec, d / "s01" / "pre_side", "pair")  # pre_side_color.mp4 + _depth.mkv + CSVs + _calib.json
    write(rec, d / "s02" / "post_front", "pair", depth_format="png")
    write(rec, d / "s02" / "post side.mp4", "video")
    write(rec, d / "s03" / "frames", "images")
    (d / "s01" / "pre_front.bag.gt.npz").write_bytes(b"x")
    (d / "s02" / "notes.txt").write_text("x")
    (d / "out" / "frames" / "v" / "rgb").mkdir(parents=True)  # a dataset root inside the input
    (d / "out" / "dataset.json").write_text("{}")
    write(rec, d / "out" / "frames" / "v" / "rgb", "images")
    (d / ".hidden").mkdir()
    write(rec, d / ".hidden" / "x.bag", "bag")
    return d


def test_discovery_kinds_and_ids(tree):
    found = {s.video_id: s for s in discover([tree])}
    assert sorted(found) == [
        "s01__pre_front",
        "s01__pre_side",
        "s02__post_front",
        "s02__post_side",
        "s03__frames",
    ]
    assert found["s01__pre_front"].kind == "bag"
    assert (
        found["s01__pre_side"].kind == "pair"
        and found["s01__pre_side"].depth_path.name == "pre_side_depth.mkv"
    )
    assert found["s02__post_front"].kind == "pair" and found["s02__post_front"].depth_path.is_dir()
    assert found["s02__post_side"].kind == "video"  # "post side.mp4": unsafe character replaced
    assert found["s03__frames"].kind == "images"
    assert found["s01__pre_side"].rel == "s01/pre_side_color.mp4"
    # stable: the same ids from a second call, and from a different spelling of the root
    assert [s.video_id for s in discover([tree / "s01" / ".."])] == sorted(found)


def test_id_pattern_and_metadata(tree, tmp_path):
    rx = compile_id_pattern("{subject}/{session}_{view}")
    assert rx.match("s01/pre_front")
    assert parse_id_pattern("{subject}/{session}_{view}", "root/s01/pre_front") == {
        "subject": "s01", "session": "pre", "view": "front"}  # fmt: skip
    with pytest.raises(GaitdataError, match="unknown field"):
        compile_id_pattern("{patient}/{view}")
    for bad_pattern, where in (("{bogus", "'{' (character 1)"), ("{subject}/{session", "'{' (character 11)"),
                               ("{subject}}", "'}' (character 10)"), ("{}/{view}", "'{' (character 1)")):  # fmt: skip
        with pytest.raises(GaitdataError, match=re.escape(f"--id-pattern {bad_pattern!r}: unmatched {where}")):
            compile_id_pattern(bad_pattern)
    csv = tmp_path / "m.csv"
    csv.write_text("source_rel,subject,condition\ns03/frames,s03b,rest\n")
    found = {s.video_id: s for s in discover([tree], "{subject}/{session}_{view}", csv)}
    assert found["s01__pre_side"].meta == {"subject": "s01", "session": "pre", "view": "side"}
    assert found["s03__frames"].meta == {"subject": "s03b", "condition": "rest"}
    bad = tmp_path / "bad.csv"
    bad.write_text("name,age\na,1\n")
    with pytest.raises(GaitdataError, match="key column"):
        discover([tree], metadata_csv=bad)


def test_safe_id():
    assert safe_id("a b/c:d.e") == "a_b__c_d.e"
    assert safe_id("./x") == "x"


def test_cli_refuses_a_malformed_id_pattern_before_reading_anything(tree, tmp_path, capsys):
    from gaitdata.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["extract", str(tree), "--out", str(tmp_path / "root"), "--id-pattern", "{bogus"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "\n" not in err and "unmatched '{'" in err
    assert not (tmp_path / "root").exists()
