"""Matterport3D undistorted images, as the LoCUS paper used them.

A scan folder holds ``undistorted_camera_parameters/<scan>.conf``, ``undistorted_color_images/``
(``<pano>_i<cam>_<yaw>.jpg``) and ``undistorted_depth_images/`` (``<pano>_d<cam>_<yaw>.png``,
uint16, metres = raw / 4000, 0 invalid); the official zips nest these one or two levels deeper,
which is also accepted. The .conf lists ``intrinsics_matrix fx 0 cx 0 fy cy 0 0 1`` lines, each
followed by the ``scan <depth> <color> <16 numbers>`` lines of images taken with that camera; the
16 numbers are a row-major camera-to-world matrix in OpenGL camera axes (y up, z back), converted
here to OpenCV axes. Frame index = position of the ``scan`` line in the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from locus_core.data.dataset import PosedDataset
from locus_core.data.errors import DataFileError, FormatError
from locus_core.data.formats.common import check_options
from locus_core.data.frame import PosedFrame
from locus_core.data.io import check_intrinsics, depth_from_raw, files_under, read_depth_raw, read_rgb, read_text
from locus_core.data.poses import GL_TO_CV, check_pose
from locus_core.data.selection import select

DEPTH_SCALE = 4000.0


def detect(path: Path) -> bool:
    return path.is_dir() and (path / "undistorted_camera_parameters").is_dir()


def parse_conf(conf: Path) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """[(depth name, color name, K (3,3), T_world_cam (4,4) OpenCV axes)] in file order."""
    scans: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    K: np.ndarray | None = None
    for n, line in enumerate(read_text(conf).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            if fields[0] == "intrinsics_matrix":
                K = check_intrinsics(np.array(fields[1:10], dtype=np.float64).reshape(3, 3), f"{conf}:{n}")
            elif fields[0] == "scan":
                if K is None:
                    raise FormatError(f"{conf}:{n}: 'scan' before any 'intrinsics_matrix'")
                T = np.array(fields[3:19], dtype=np.float64).reshape(4, 4)
                scans.append((fields[1], fields[2], K, check_pose(T, f"{conf}:{n}") @ GL_TO_CV))
        except ValueError:
            raise FormatError(f"{conf}:{n}: malformed line {line.strip()[:80]!r}") from None
    if not scans:
        raise FormatError(f"{conf}: no 'scan' lines")
    return scans


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataFileError(f"{folder}: folder not found")
    return {f.name: f for f in files_under(folder)}


def open(path: Path, frames: str | None = None, **options: Any) -> PosedDataset:
    check_options(options, (), str(path))
    confs = sorted(f for f in files_under(path / "undistorted_camera_parameters") if f.suffix == ".conf")
    if not confs:
        raise DataFileError(f"{path / 'undistorted_camera_parameters'}: no .conf file")
    names = sorted({f.name for f in confs})
    if len(names) > 1:  # several scans' zips unpacked together: their images would be pooled by name
        raise FormatError(f"{path / 'undistorted_camera_parameters'}: {len(names)} .conf files ({', '.join(names)}): "
                          "open one scan's folder")
    scans = parse_conf(confs[0])
    positions = select(list(range(len(scans))), frames, source=str(path))
    colors = _files(path / "undistorted_color_images")
    depths = _files(path / "undistorted_depth_images")
    chosen = [scans[p] for p in positions]
    for depth_name, color_name, _, _ in chosen:
        for name, table, folder in ((depth_name, depths, "undistorted_depth_images"),
                                    (color_name, colors, "undistorted_color_images")):
            if name not in table:
                raise DataFileError(f"{path / folder / name}: file not found")
    H, W = read_depth_raw(depths[chosen[0][0]]).shape

    def load(k: int) -> PosedFrame:
        depth_name, color_name, K, T = chosen[k]
        depth = depth_from_raw(read_depth_raw(depths[depth_name]), DEPTH_SCALE)
        return PosedFrame(rgb=read_rgb(colors[color_name]), depth=depth, K=K, T_world_cam=T,
                          frame_id=f"{path.name}/{Path(color_name).stem}", index=positions[k],
                          stamp=float(positions[k])).validate()

    return PosedDataset(path=path, name=path.name, format="matterport", indices=positions,
                        poses=np.stack([c[3] for c in chosen]), intrinsics=np.stack([c[2] for c in chosen]),
                        image_size=(H, W), loader=load)
