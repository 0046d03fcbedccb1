"""Common reader interface of every container kind."""

from __future__ import annotations

KINDS = ("bag", "db3", "pair", "video", "images")
