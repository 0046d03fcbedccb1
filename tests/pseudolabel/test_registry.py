"""The teacher registry: names, creation, errors, the CLI listing."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gaitdata.cli import cli
from gaitdata.errors import GaitdataError
from pseudolabel.registry import TeacherRegistry, create_teacher, list_teachers


def test_builtin_teachers_listed_without_importing_them() -> None:
    names = list_teachers()
    for name in ("mediapipe", "alphapose", "centernet"):
        assert name in names
    assert names == sorted(names)


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(GaitdataError) as exc:
        create_teacher("no-such-teacher")
    msg = str(exc.value)
    assert "no-such-teacher" in msg
    for name in list_teachers():
        assert name in msg


def test_local_registry_register_create_and_duplicates() -> None:
    reg = TeacherRegistry()

    class Dummy:
        def __init__(self, scale: float = 1.0) -> None:
            self.scale = scale

    reg.register("dummy", Dummy)
    assert reg.names() == ["dummy"]
    assert reg.create("dummy", scale=2.0).scale == 2.0
    reg.register("dummy", Dummy)  # the same factory again is fine
    with pytest.raises(ValueError, match="already registered"):
        reg.register("dummy", lambda: None)
    with pytest.raises(GaitdataError, match="valid teachers: dummy"):
        reg.create("other")


def test_cli_teacher_list_prints_every_name() -> None:
    res = CliRunner().invoke(cli, ["label", "--teacher", "list"])
    assert res.exit_code == 0, res.output
    assert res.output.split() == list_teachers()


def test_cli_label_without_root_is_a_usage_error() -> None:
    res = CliRunner().invoke(cli, ["label"])
    assert res.exit_code == 2
    assert "ROOT" in res.output
