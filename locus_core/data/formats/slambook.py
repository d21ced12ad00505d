"""The slambook layout: ``color/N.png``, ``depth/N.pgm`` (uint16 mm, 0 invalid) and ``pose.txt``.

``pose.txt`` has one row ``tx ty tz qx qy qz qw`` (camera-to-world, scalar-last quaternion) per
frame, row k for frame k+1. The book's Kinect intrinsics are the default when no file is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from locus_core.data.dataset import PosedDataset
from locus_core.data.errors import DataFileError, FormatError
from locus_core.data.formats.common import check_options, entries, find_intrinsics, numbered
from locus_core.data.frame import PosedFrame
from locus_core.data.io import depth_from_raw, intrinsics_from_values, read_depth_raw, read_rgb
from locus_core.data.poses import check_pose, pose_from_tq
from locus_core.data.selection import select

DEFAULT_K = intrinsics_from_values(518.0, 519.0, 325.5, 253.5)


def detect(path: Path) -> bool:
    return path.is_dir() and (path / "pose.txt").is_file() and (path / "color").is_dir() \
        and (path / "depth").is_dir()


def open(path: Path, frames: str | None = None, **options: Any) -> PosedDataset:
    """Options: ``intrinsics`` (file or "fx,fy,cx,cy"; default fx=518 fy=519 cx=325.5 cy=253.5)."""
    check_options(options, ("intrinsics",), str(path))
    colors = numbered(entries(path / "color"), r"(\d+)\.(?:png|jpg)")
    if not (path / "pose.txt").is_file():
        raise DataFileError(f"{path / 'pose.txt'}: file not found")
    try:
        rows = np.loadtxt(path / "pose.txt", ndmin=2)
    except ValueError as exc:
        raise FormatError(f"{path / 'pose.txt'}: not numeric ({exc})") from None
    if rows.shape[1] != 7:
        raise FormatError(f"{path / 'pose.txt'}: expected rows 'tx ty tz qx qy qz qw', got {rows.shape[1]} columns")
    all_indices = sorted(colors)
    positions = select(all_indices, frames, source=str(path))
    indices = [all_indices[p] for p in positions]
    for i in indices:
        if not 1 <= i <= len(rows):
            raise FormatError(f"{path / 'pose.txt'}: no row for frame {i} ({len(rows)} rows)")
        if not (path / "depth" / f"{i}.pgm").is_file():
            raise DataFileError(f"{path / 'depth' / f'{i}.pgm'}: file not found")
    sources = {i: f"{path / 'pose.txt'} row {i}" for i in indices}
    poses = np.stack([check_pose(pose_from_tq(rows[i - 1], sources[i]), sources[i]) for i in indices])
    K = find_intrinsics(path, ("camera-intrinsics.txt", "intrinsics.txt"), options.get("intrinsics"), DEFAULT_K)
    H, W = read_depth_raw(path / "depth" / f"{indices[0]}.pgm").shape

    def load(k: int) -> PosedFrame:
        i = indices[k]
        depth = depth_from_raw(read_depth_raw(path / "depth" / f"{i}.pgm"), 1000.0)
        return PosedFrame(rgb=read_rgb(colors[i]), depth=depth, K=K, T_world_cam=poses[k],
                          frame_id=f"{path.name}/{i}", index=i, stamp=float(i)).validate()

    return PosedDataset(path=path, name=path.name, format="slambook", indices=indices, poses=poses,
                        intrinsics=K, image_size=(H, W), loader=load)
