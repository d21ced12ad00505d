"""Posed RGB-D data: one ``PosedDataset`` interface over every supported format.

Light to import (numpy only): readers load OpenCV, rosbags and torch inside functions.
"""

from locus_core.data.dataset import PosedDataset
from locus_core.data.detect import open_dataset
from locus_core.data.errors import DataError, DataFileError, FormatError, FrameError, SelectionError
from locus_core.data.frame import PosedFrame
from locus_core.data.resize import resize_frame, scale_intrinsics
from locus_core.data.selection import parse_frames

__all__ = [
    "DataError",
    "DataFileError",
    "FormatError",
    "FrameError",
    "PosedDataset",
    "PosedFrame",
    "SelectionError",
    "open_dataset",
    "parse_frames",
    "resize_frame",
    "scale_intrinsics",
]
