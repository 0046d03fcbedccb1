"""Ids never collide silently; metadata from a new --id-pattern/--metadata reaches recordings already extracted."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gaitdata.cli import cli
from gaitdata.containers import write
from gaitdata.dataset import DatasetRoot, validate
from gaitdata.discover import discover
from gaitdata.extract import ExtractOptions, extract
from gaitdata.testing.recordings import plane_recording

Q = ExtractOptions(workers=1)


def _run(*args: str):
    res = CliRunner().invoke(cli, ["extract", *map(str, args), "-q", "--workers", "1"])
    return res, " ".join(res.output.split())


def _videos(root):
    return DatasetRoot(root).read_videos().set_index("video_id")


def test_same_relative_path_from_another_folder_is_refused(tmp_path):
    """extract day1/sub01 then day2/sub01 into one root: the second 'walk' must not replace the first."""
    day1, day2 = tmp_path / "day1" / "sub01", tmp_path / "day2" / "sub01"
    write(plane_recording(n=4, seed=1), day1 / "walk.bag", "bag")
    write(plane_recording(n=4, seed=2), day2 / "walk.bag", "bag")
    write(plane_recording(n=3, seed=3), day2 / "turn.bag", "bag")
    root = tmp_path / "root"
    assert _run(day1, "--out", root)[0].exit_code == 0
    before = _videos(root).loc["walk"]
    res, out = _run(day2, "--out", root)
    assert res.exit_code == 1
    line = next(ln for ln in res.output.splitlines() if ln.startswith("failed "))
    assert str(day2 / "walk.bag") in line and str(day1 / "walk.bag") in line  # both sources, one line
    assert "--id-pattern '{any}/{any}/{any}'" in line and "--overwrite" in line
    after = _videos(root)
    assert after.loc["walk", "fingerprint"] == before["fingerprint"]  # the first recording is untouched
    assert after.loc["walk", "source_path"] == str(day1 / "walk.bag")
    assert after.loc["turn", "status"] == "ok"  # the batch went on
    assert validate(root).ok
    # the suggested pattern gives day2's recordings their own ids; day1's 'walk' stays as it was
    res, _ = _run(day2, "--out", root, "--id-pattern", "{any}/{any}/{any}")
    assert res.exit_code == 1  # 'turn' is already in the root as 'turn': renaming it is refused
    videos = _videos(root)
    assert videos.loc["day2__sub01__walk", "source_path"] == str(day2 / "walk.bag")
    assert "walk" in videos.index and "day2__sub01__turn" not in videos.index
    # --overwrite: replace the id's recording / move a recording to its new id
    res, _ = _run(day2, "--out", root, "--id-pattern", "{any}/{any}/{any}", "--overwrite")
    assert res.exit_code == 0
    videos = _videos(root)
    assert "turn" not in videos.index and videos.loc["day2__sub01__turn", "status"] == "ok"
    assert not (root / "frames" / "turn").exists() and validate(root).ok


def test_changed_file_is_refused_unless_overwrite(tmp_path):
    p = write(plane_recording(n=4, seed=1), tmp_path / "in" / "a.bag", "bag")
    root = tmp_path / "root"
    extract([tmp_path / "in"], root, Q, progress=False)
    old = _videos(root).loc["a", "fingerprint"]
    write(plane_recording(n=5, seed=2), p, "bag")  # re-recorded under the same name
    s = extract([tmp_path / "in"], root, Q, progress=False)
    r = s.results[0]
    assert r.status == "failed" and "changed since it was extracted" in r.error and "--overwrite" in r.error
    assert _videos(root).loc["a", "fingerprint"] == old
    s = extract([tmp_path / "in"], root, ExtractOptions(workers=1, overwrite=True), progress=False)
    assert s.ok and _videos(root).loc["a", "n_colour_frames"] == 5


def test_non_ascii_names_keep_distinct_readable_ids(tmp_path):
    rec = plane_recording(n=3)
    for name in ("测试.mp4", "试验.mp4", "Gang über.mp4"):
        write(rec, tmp_path / "in" / name, "video")
    res, _ = _run(tmp_path / "in", "--out", tmp_path / "root")
    assert res.exit_code == 0, res.output
    videos = _videos(tmp_path / "root")
    assert sorted(videos.index) == sorted(["测试", "试验", "Gang_über"])
    assert (videos["status"] == "ok").all() and validate(tmp_path / "root").ok


def test_ids_shared_inside_one_run_are_reported_per_recording(tmp_path):
    rec = plane_recording(n=3)
    write(rec, tmp_path / "in" / "a b.mp4", "video")
    write(rec, tmp_path / "in" / "a_b.mp4", "video")
    write(rec, tmp_path / "in" / "Walk.mp4", "video")
    write(rec, tmp_path / "in" / "sub" / "walk.mp4", "video")
    write(rec, tmp_path / "in" / "good.bag", "bag")
    res, _ = _run(tmp_path / "in", "--out", tmp_path / "root")
    assert res.exit_code == 1  # not an abort (exit 2): the batch ran
    failed = [ln for ln in res.output.splitlines() if ln.startswith("failed ")]
    assert len(failed) == 2 and all("a b.mp4" in ln and "a_b.mp4" in ln and "rename one" in ln for ln in failed)
    videos = _videos(tmp_path / "root")
    assert sorted(videos.index) == ["Walk", "good", "sub__walk"] and validate(tmp_path / "root").ok
    # the same pair through the API: two failed results, nothing written under the shared id
    s = extract([tmp_path / "in"], tmp_path / "root2", Q, progress=False)
    assert [r.status for r in s.results].count("failed") == 2 and not (tmp_path / "root2" / "frames" / "a_b").exists()


def test_case_only_difference_is_a_collision(tmp_path):
    rec = plane_recording(n=2)
    write(rec, tmp_path / "x" / "Walk.mp4", "video")
    write(rec, tmp_path / "y" / "walk.mp4", "video")
    found = discover([tmp_path / "x" / "Walk.mp4", tmp_path / "y" / "walk.mp4"])
    assert all(s.id_conflict and "--id-pattern '{any}/{any}'" in s.id_conflict for s in found)


def test_new_id_pattern_and_metadata_update_rows_without_reextracting(tmp_path):
    rec = plane_recording(n=3)
    write(rec, tmp_path / "in" / "s01" / "pre_front.bag", "bag")
    write(rec, tmp_path / "in" / "s02" / "post_side.mp4", "video")
    root = tmp_path / "root"
    extract([tmp_path / "in"], root, Q, progress=False)
    jpg = root / "frames" / "s01__pre_front" / "rgb" / "000000.jpg"
    stamp = jpg.stat().st_mtime_ns, jpg.stat().st_ino
    pattern = ExtractOptions(workers=1, id_pattern="{subject}/{session}_{view}")
    dry = extract([tmp_path / "in"], root, ExtractOptions(dry_run=True, id_pattern=pattern.id_pattern), progress=False)
    assert [r.status for r in dry.results] == ["skipped", "skipped"] and dry.results[0].notes
    assert _videos(root)["subject"].isna().all()  # a dry run writes nothing
    s = extract([tmp_path / "in"], root, pattern, progress=False)
    assert s.n_skipped == 2 and any("metadata updated" in n for n in s.results[0].notes)
    v = _videos(root)
    assert v.loc["s01__pre_front", ["subject", "session", "view"]].tolist() == ["s01", "pre", "front"]
    assert (jpg.stat().st_mtime_ns, jpg.stat().st_ino) == stamp  # frames untouched
    csv = tmp_path / "meta.csv"
    csv.write_text("video_id,condition,subject\ns02__post_side,fatigue,s02b\n")
    extract([tmp_path / "in"], root, ExtractOptions(workers=1, metadata_csv=str(csv)), progress=False)
    extract([tmp_path / "in"], root, Q, progress=False)  # no pattern, no CSV: what the root holds is kept
    v = _videos(root)
    assert v.loc["s02__post_side", ["subject", "session", "condition"]].tolist() == ["s02b", "post", "fatigue"]
    assert v.loc["s01__pre_front", "subject"] == "s01"
    # re-extraction with other options keeps the metadata too
    extract([tmp_path / "in"], root, ExtractOptions(workers=1, stride=2), progress=False)
    assert _videos(root).loc["s02__post_side", "condition"] == "fatigue" and validate(root).ok


def test_moved_source_is_skipped_and_its_path_updated(tmp_path):
    write(plane_recording(n=3), tmp_path / "old" / "a.bag", "bag")
    root = tmp_path / "root"
    extract([tmp_path / "old"], root, Q, progress=False)
    (tmp_path / "old").rename(tmp_path / "new")
    s = extract([tmp_path / "new"], root, Q, progress=False)
    assert s.n_skipped == 1 and _videos(root).loc["a", "source_path"] == str(tmp_path / "new" / "a.bag")


@pytest.mark.parametrize("dry", [True, False])
def test_dry_run_predicts_refusals(tmp_path, dry):
    write(plane_recording(n=3, seed=1), tmp_path / "d1" / "walk.bag", "bag")
    write(plane_recording(n=3, seed=2), tmp_path / "d2" / "walk.bag", "bag")
    root = tmp_path / "root"
    extract([tmp_path / "d1"], root, Q, progress=False)
    s = extract([tmp_path / "d2"], root, ExtractOptions(workers=1, dry_run=dry), progress=False)
    assert s.results[0].status == "failed" and "already holds another recording" in s.results[0].error
