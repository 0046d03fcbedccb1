"""Rerunning the demo over the output of an earlier demo made with other settings (another release)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from gaitdata.demo import DemoOptions, run_demo
from gaitdata.io import sha256_file


@pytest.mark.slow
@pytest.mark.mediapipe
def test_demo_rerun_relabels_and_retrains_what_other_settings_made(tmp_path) -> None:
    opts = DemoOptions(out=tmp_path / "d", subjects=3, frames=10, epochs=1)
    with open(tmp_path / "log1.txt", "w") as f:
        first = run_demo(opts, Console(file=f, width=1000))
    root = first.root
    run_json = root / ".gaitdata" / "labels" / "mediapipe" / "run.json"
    config = next((root / "models").glob("*/config.json"))
    settings, run = json.loads(run_json.read_text()), json.loads(config.read_text())
    # what an earlier release left: other label settings, a student trained on other export files
    run_json.write_text(json.dumps({**settings, "postprocess": {**settings["postprocess"], "qa_jitter": 0.5}}))
    config.write_text(json.dumps({**run, "lineage": {**run["lineage"], "files": {"train.json": "0" * 64}}}))
    log = tmp_path / "log2.txt"
    with open(log, "w") as f:
        again = run_demo(opts, Console(file=f, width=1000))
    text = log.read_text()
    assert "this demo relabels it" in text and "this demo trains it again" in text
    assert json.loads(run_json.read_text()) == settings  # labelled again with this release's settings
    export = root / "exports" / "coco" / "demo"  # the student was trained again on the export as it is now
    assert json.loads(config.read_text())["lineage"]["files"] == {f: sha256_file(export / f) for f in ("train.json", "val.json")}
    assert again.report is not None and again.report.is_file()
