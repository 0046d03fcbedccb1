"""Pieces of the scale-out path that need no cluster: bounded submission and the manifest's part reader."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from gaitdata.containers import write
from gaitdata.dataset import VIDEO_COLUMNS, DatasetRoot, conform
from gaitdata.extract import ExtractOptions, _Manifest, extract
from gaitdata.io import atomic_write_parquet
from gaitdata.procs import as_done
from gaitdata.testing.recordings import plane_recording


def test_as_done_keeps_at_most_window_calls_in_flight_and_yields_each_once():
    live, peak, lock = 0, 0, threading.Lock()
    submitted: list[int] = []

    def work(k: int) -> int:
        nonlocal live, peak
        with lock:
            live += 1
            peak = max(peak, live)
        time.sleep(0.01 * (k % 3))
        with lock:
            live -= 1
        return k * 10

    def keys():  # consumed lazily: a key is produced only when there is room for its call
        for k in range(12):
            submitted.append(k)
            yield k

    with ThreadPoolExecutor(8) as pool:
        got = {}
        for k, fut in as_done(keys(), lambda k: pool.submit(work, k), window=3):
            assert len(submitted) - len(got) <= 3 + 1  # in flight, and the one yielded now
            got[k] = fut.result()
    assert got == {k: k * 10 for k in range(12)}
    assert peak <= 3
    with pytest.raises(ValueError):
        list(as_done([1], lambda k: None, window=0))


def test_manifest_reads_parts_as_one_table_and_skips_damaged_ones(tmp_path):
    src = tmp_path / "in"
    for i in range(3):
        write(plane_recording(n=6, seed=i), src / f"s{i}" / "walk.mp4", "video")
    root = tmp_path / "root"
    extract([src], root, ExtractOptions(workers=1), progress=False)
    manifest = _Manifest(DatasetRoot(root))
    (v0, _), (v1, f1) = manifest.part_paths("s0__walk"), manifest.part_paths("s1__walk")
    v0.write_bytes(b"damaged")  # an unreadable part: left out, redone by the next run
    old = pd.read_parquet(v1).drop(columns=["notes", "n_decode_error"])  # a part written before those columns
    atomic_write_parquet(v1, old)
    cache = _Manifest(DatasetRoot(root))._load()
    assert sorted(cache) == ["s1__walk", "s2__walk"]
    vdf, fdf = cache["s1__walk"]
    assert list(vdf.columns) == list(VIDEO_COLUMNS) and len(vdf) == 1
    assert pd.isna(vdf["notes"].iloc[0]) and pd.isna(vdf["n_decode_error"].iloc[0])
    pd.testing.assert_frame_equal(vdf, conform(old, VIDEO_COLUMNS, "s1"))
    pd.testing.assert_frame_equal(fdf, pd.read_parquet(f1))
    again = extract([src], root, ExtractOptions(workers=1), progress=False)  # the damaged one is redone
    assert [r.status for r in again.results] == ["ok", "skipped", "skipped"]
