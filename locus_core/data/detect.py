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
# Format names a dataset can report, mapped to the reader that produces them and the options the
# name implies: forcing one must not leave the depth units to a guess from the first image.
ALIASES: dict[str, tuple[str, dict[str, str]]] = {
    "7scenes": ("tsdf", {"depth_encoding": "mm"}),
    "labelfusion": ("tsdf", {"depth_encoding": "labelfusion"}),
    "synthetic": ("tsdf", {"depth_encoding": "mm"}),
}
# What each reader's ``detect`` looks for in a folder ("name/" a folder, globs allowed), to say what
# an unrecognised folder lacks; test_detect checks that these and the detectors agree.
REQUIREMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rosbag": ("rosbag2", ("metadata.yaml",)),
    "tsdf": ("7-Scenes/tsdf-fusion", ("frame-*.pose.txt",)),
    "tum": ("TUM RGB-D", ("rgb.txt", "depth.txt")),
    "scannet": ("ScanNet export", ("color/", "depth/", "pose/", "intrinsic/")),
    "matterport": ("Matterport3D", ("undistorted_camera_parameters/",)),
    "slambook": ("slambook", ("pose.txt", "color/", "depth/")),
}


def _reader(name: str) -> Any:
    return importlib.import_module(f"locus_core.data.formats.{FORMATS[name]}")


def _has(folder: Path, entry: str) -> bool:
    if entry.endswith("/"):
        return (folder / entry[:-1]).is_dir()
    return next(folder.glob(entry), None) is not None


def _missing(folder: Path, fmt: str) -> list[str]:
    """What ``folder`` lacks of the entries that format ``fmt`` (a FORMATS name) is detected by."""
    return [entry for entry in REQUIREMENTS[fmt][1] if not _has(folder, entry)]


def _expected(folder: Path, fmt: str) -> str:
    label, entries = REQUIREMENTS[fmt]
    missing = _missing(folder, fmt)
    partly = f": missing {', '.join(missing)}" if len(missing) < len(entries) else ""  # a near miss: name the gap
    return f"{label} ({' + '.join(entries)}{partly})"


def _unrecognised(path: Path) -> str:
    from locus_core.data.formats.rosbag import BAG_SUFFIXES

    bag_files = f"a ROS bag file ({', '.join(BAG_SUFFIXES)})"
    if not path.is_dir():
        return f"{path}: unknown data format: a file, but not {bag_files}"
    seen = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())[:12]
    return (f"{path}: unknown data format (contents: {', '.join(seen) or 'empty'}); expected a folder of "
            f"{'; '.join(_expected(path, fmt) for fmt in REQUIREMENTS)}; or {bag_files}")


def detect_format(path: Path) -> str:
    """The reader name for ``path`` ("tsdf", "tum", ...), or FormatError saying what each lacks, or
    which formats it looks like when more than one."""
    found = [name for name in FORMATS if _reader(name).detect(path)]
    if len(found) > 1:  # e.g. a capture's own metadata.yaml beside 7-Scenes frames: the first is a guess
        looks = " and ".join(f"{REQUIREMENTS[name][0]} ({' + '.join(REQUIREMENTS[name][1])})" for name in found)
        raise FormatError(f"{path}: ambiguous data format: it looks like {looks}; say which with "
                          f"{' or '.join(f'format={name}' for name in found)}")
    if found:
        return found[0]
    raise FormatError(_unrecognised(path))


def open_dataset(path: str | Path, frames: str | None = None, **options: Any) -> PosedDataset:
    """Open a posed RGB-D sequence, detecting its format from its contents.

    Args:
        path: a data folder, or a ROS bag (rosbag2 folder, .mcap, .db3 or ROS 1 .bag).
        frames: ``"START:STOP[:STEP]"`` selecting by source frame index (python slice semantics
            on the index value, STOP exclusive), e.g. ``"600:1000:10"``.
        options: ``format=`` forces a reader (a name from FORMATS, or from ALIASES with the depth
            encoding that name implies, and reported as the data set's format); the rest go to
            the reader (e.g. ``intrinsics="fx,fy,cx,cy"``; the rosbag reader takes topics and frames).
    Raises:
        DataError (a subclass) naming the file or value at fault: missing/unreadable files, empty
        selection, NaN or non-rigid poses, unknown format.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataFileError(f"{path}: no such file or folder")
    forced = options.pop("format", None)
    if forced is None:
        return _reader(detect_format(path)).open(path, frames, **options)
    if forced in ALIASES:
        name, implied = ALIASES[forced]
        dataset = _reader(name).open(path, frames, **(implied | options))  # the user's options win
        dataset.format = forced  # not what the reader would guess: the user said what this is
        return dataset
    if forced not in FORMATS:
        raise FormatError(f"format {forced!r}: unknown; known: {', '.join([*FORMATS, *ALIASES])}")
    return _reader(forced).open(path, frames, **options)
