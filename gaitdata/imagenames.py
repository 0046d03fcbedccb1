"""Image names of other tools matched to the written frames of a dataset root.

Tools that ran over ``ROOT/frames/<video_id>/rgb`` name an image by its file name, a path, or a
number; :class:`FrameMap` turns such a name into ``(video_id, frame_index)``:

1. a path relative to the root (``frames/<video_id>/rgb/000123.jpg``), or an absolute path inside it;
2. any path ending in ``<video_id>/rgb/<name>`` or ``<video_id>/<name>`` (another copy of the root);
3. a bare name within a known recording (the caller's ``video``): the frame's file name
   (``000123.jpg``), else a frame number (``123.jpg``, or an integer ``123``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from gaitdata.dataset import DatasetRoot, written_frames
from gaitdata.errors import GaitdataError


class FrameMap:
    """The written frames of a root, for matching image names of other tools (see the module docstring)."""

    def __init__(self, root: DatasetRoot, frames: pd.DataFrame | None = None) -> None:
        self.root = root
        frames = root.read_frames() if frames is None else frames
        ok = written_frames(frames).sort_values(["video_id", "frame_index"], kind="stable")
        self.frames = ok.reset_index(drop=True)
        self.videos: list[str] = sorted(ok["video_id"].astype(str).unique().tolist())
        vids = ok["video_id"].astype(str).tolist()
        fis = ok["frame_index"].astype(int).tolist()
        rels = ok["rgb_path"].astype(str).tolist()
        self.by_rel = {r: (v, f) for r, v, f in zip(rels, vids, fis, strict=True)}
        self.by_name: dict[str, dict[str, int]] = {}
        self.indices: dict[str, set[int]] = {}
        for r, v, f in zip(rels, vids, fis, strict=True):
            self.by_name.setdefault(v, {})[r.rsplit("/", 1)[-1]] = f
            self.indices.setdefault(v, set()).add(f)

    def check_video(self, video: str) -> str:
        if video not in self.indices:
            shown = ", ".join(self.videos[:5]) + (" ..." if len(self.videos) > 5 else "")
            raise GaitdataError(f"{video!r} is not a recording with written frames in {self.root.path} (recordings: {shown or 'none'})")
        return video

    def recording_of(self, path: Path, video: str | None = None) -> str | None:
        """The recording a file of results belongs to: ``video``, else its folder's name or its stem
        when that is a video id, else the root's only recording; None when none of these decides."""
        if video is not None:
            return self.check_video(video)
        for name in (path.parent.name, path.stem):
            if name in self.indices:
                return name
        return self.videos[0] if len(self.videos) == 1 else None

    def _in_video(self, video: str, name: str) -> tuple[str, int] | None:
        fi = self.by_name[video].get(name)
        if fi is None:
            stem = name.rsplit(".", 1)[0]
            if stem.isdigit() and int(stem) in self.indices[video]:
                fi = int(stem)
        return None if fi is None else (video, fi)

    def resolve(self, image_id: str | int, video: str | None) -> tuple[str, int] | None:
        """``(video_id, frame_index)`` of an image id, or None when it names no written frame."""
        if isinstance(image_id, int):
            return (video, image_id) if video is not None and image_id in self.indices[video] else None
        s = image_id.replace("\\", "/")
        hit = self.by_rel.get(s)
        if hit is not None:
            return hit
        if os.path.isabs(s):
            try:
                hit = self.by_rel.get(Path(s).relative_to(self.root.path).as_posix())
            except ValueError:
                hit = None
            if hit is not None:
                return hit
        parts = [p for p in s.split("/") if p not in ("", ".")]
        if not parts:
            return None
        name = parts[-1]
        if len(parts) >= 3 and parts[-2] == "rgb" and parts[-3] in self.indices:
            return self._in_video(parts[-3], name)
        if len(parts) >= 2 and parts[-2] in self.indices:
            return self._in_video(parts[-2], name)
        return self._in_video(video, name) if video is not None else None
