"""``open_dataset``: recognise a folder's (or bag's) format and open it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from locus_core.data.dataset import PosedDataset
from locus_core.data.errors import DataFileError, FormatError

# Module under locus_core.data.formats for each format name; detection tries them in this order.
FORMATS = {
    "rosbag": "rosbag",
    "tsdf": "tsdf",
    "tum": "tum",
    "scannet": "scannet",
    "matterport": "matterport",
    "slambook": "slambook",
}
# Format names a dataset can report, mapped to the reader that produces them.
ALIASES = {"7scenes": "tsdf", "labelfusion": "tsdf", "synthetic": "tsdf"}


def _reader(name: str) -> Any:
    return importlib.import_module(f"locus_core.data.formats.{FORMATS[name]}")


def detect_format(path: Path) -> str:
    """The reader name for ``path`` ("tsdf", "tum", ...), or FormatError saying what was seen."""
    for name in FORMATS:
        if _reader(name).detect(path):
            return name
    seen = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())[:12] if path.is_dir() else []
    raise FormatError(
        f"{path}: unknown data format (contents: {', '.join(seen) or 'empty'}); expected a 7-Scenes/"
        "tsdf-fusion folder (frame-N.pose.txt), TUM RGB-D (rgb.txt), ScanNet export (color/ pose/), "
        "Matterport3D (undistorted_camera_parameters/), slambook (pose.txt + color/) or a ROS bag"
    )


def open_dataset(path: str | Path, frames: str | None = None, **options: Any) -> PosedDataset:
    """Open a posed RGB-D sequence, detecting its format from its contents.

    Args:
        path: a data folder, or a ROS bag (rosbag2 folder, .mcap, .db3 or ROS 1 .bag).
        frames: ``"START:STOP[:STEP]"`` selecting by source frame index (python slice semantics
            on the index value, STOP exclusive), e.g. ``"600:1000:10"``.
        options: ``format=`` forces a reader (a name from FORMATS or ALIASES); the rest go to
            the reader (e.g. ``intrinsics="fx,fy,cx,cy"``; the rosbag reader takes topics and frames).
    Raises:
        DataError (a subclass) naming the file or value at fault: missing/unreadable files, empty
        selection, NaN or non-rigid poses, unknown format.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataFileError(f"{path}: no such file or folder")
    forced = options.pop("format", None)
    if forced is not None:
        name = ALIASES.get(forced, forced)
        if name not in FORMATS:
            raise FormatError(f"format {forced!r}: unknown; known: {', '.join([*FORMATS, *ALIASES])}")
    else:
        name = detect_format(path)
    return _reader(name).open(path, frames, **options)
