"""The ``gaitdata`` command line with ``test_fixed`` (see ``_cli_driver``) and ``test_hold``.

``test_hold`` labels like ``test_fixed``, except that the first call to ``predict`` in any process,
across the whole cluster, writes that process's pid to ``$GAITDATA_TEST_HOLD_DIR/held`` and waits
for ``$GAITDATA_TEST_HOLD_DIR/release``: a test can kill a Ray worker in the middle of a task.
Every later call (the retried task included) labels at once.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

from _cli_driver import FixedTeacher  # also registers test_fixed

from pseudolabel.registry import TeacherConfig, list_teachers, register_teacher


class HoldTeacher(FixedTeacher):
    cfg = TeacherConfig(
        name="test_hold", input_size=None, mean=None, std=None, channel_order="RGB", top_down=False,
        source="tests", license="Apache-2.0",
    )  # fmt: skip

    def __init__(self, hold_dir: str, **kw: object) -> None:
        super().__init__(**kw)
        self.hold_dir = Path(hold_dir)

    def predict(self, images, boxes=None):
        try:
            fd = os.open(self.hold_dir / "held", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().predict(images, boxes)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        deadline = time.monotonic() + 120
        while not (self.hold_dir / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return super().predict(images, boxes)


if "test_hold" not in list_teachers() and os.environ.get("GAITDATA_TEST_HOLD_DIR"):
    register_teacher("test_hold", functools.partial(HoldTeacher, os.environ["GAITDATA_TEST_HOLD_DIR"]))

if __name__ == "__main__":
    from gaitdata.cli import main

    main(sys.argv[1:])
