"""The ScanNet export layout (SensReader output): ``color/N.jpg``, ``depth/N.png`` (uint16 mm),
``pose/N.txt`` (4x4 camera-to-world), ``intrinsic/intrinsic_color.txt`` and ``intrinsic_depth.txt``.

Colour (1296x968) is resized to the depth size and paired with the depth intrinsics, so the frame
is registered the way the depth camera saw it. ScanNet marks frames where tracking was lost
with ``-inf`` poses; those frames are skipped (logged), every other bad pose is an error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.data.dataset import PosedDataset
from locus_core.data.errors import DataFileError
from locus_core.data.formats.common import check_options, entries, find_intrinsics, numbered
from locus_core.data.frame import PosedFrame
from locus_core.data.io import depth_from_raw, read_depth_raw, read_matrix, read_rgb
from locus_core.data.poses import check_pose
from locus_core.data.selection import select

log = logging.getLogger(__name__)
NOMINAL_RATE_HZ = 30.0


def detect(path: Path) -> bool:
    return path.is_dir() and all((path / d).is_dir() for d in ("color", "depth", "pose", "intrinsic"))


def open(path: Path, frames: str | None = None, **options: Any) -> PosedDataset:
    """Options: ``intrinsics`` (depth intrinsics: file or "fx,fy,cx,cy")."""
    import cv2

    check_options(options, ("intrinsics",), str(path))
    pose_files = numbered(entries(path / "pose"), r"(\d+)\.txt")
    poses_all = {i: read_matrix(f, (4, 4)) for i, f in pose_files.items()}
    lost = sorted(i for i, T in poses_all.items() if np.isinf(T).any())
    if lost:
        log.info("%s: %d frames have no pose (tracking lost); skipped", path, len(lost))
    all_indices = sorted(set(poses_all) - set(lost))
    positions = select(all_indices, frames, source=str(path))
    indices = [all_indices[p] for p in positions]
    colors = numbered(entries(path / "color"), r"(\d+)\.(?:jpg|png)")
    for i in indices:
        if i not in colors:
            raise DataFileError(f"{path / 'color' / f'{i}.jpg'}: file not found")
        if not (path / "depth" / f"{i}.png").is_file():
            raise DataFileError(f"{path / 'depth' / f'{i}.png'}: file not found")
    poses = np.stack([check_pose(poses_all[i], str(pose_files[i])) for i in indices])
    K = find_intrinsics(path / "intrinsic", ("intrinsic_depth.txt",), options.get("intrinsics"))
    H, W = read_depth_raw(path / "depth" / f"{indices[0]}.png").shape

    def load(k: int) -> PosedFrame:
        i = indices[k]
        rgb = read_rgb(colors[i])
        if rgb.shape[:2] != (H, W):
            rgb = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_AREA)
        depth = depth_from_raw(read_depth_raw(path / "depth" / f"{i}.png"), 1000.0)
        return PosedFrame(rgb=rgb, depth=depth, K=K, T_world_cam=poses[k], frame_id=f"{path.name}/{i}",
                          index=i, stamp=i / NOMINAL_RATE_HZ).validate()

    return PosedDataset(path=path, name=path.name, format="scannet", indices=indices, poses=poses,
                        intrinsics=K, image_size=(H, W), loader=load)
