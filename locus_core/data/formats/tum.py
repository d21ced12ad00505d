"""TUM RGB-D: ``rgb.txt``, ``depth.txt``, ``groundtruth.txt`` (timestamp lists), depth PNG / 5000 m.

Each rgb image is paired with the depth image nearest in time (within ``max_dt``) and with the
ground-truth pose interpolated at its timestamp (linear translation, slerp rotation) from the two
bracketing samples (no more than ``max_dt`` away); rgb frames without both are skipped. Frame
index = line position in ``rgb.txt``. Intrinsics: an intrinsics file, else the published
calibration of the sensor named in the folder name (freiburg1/2/3), else the ROS default.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.data.dataset import PosedDataset
from locus_core.data.errors import DataFileError, FormatError
from locus_core.data.formats.common import check_options, find_intrinsics, seconds_option
from locus_core.data.frame import PosedFrame
from locus_core.data.io import depth_from_raw, intrinsics_from_values, read_depth_raw, read_rgb, read_text
from locus_core.data.poses import check_pose, interpolate_tq, pose_from_tq
from locus_core.data.selection import select

log = logging.getLogger(__name__)

FREIBURG_K = {
    "freiburg1": intrinsics_from_values(517.3, 516.5, 318.6, 255.3),
    "freiburg2": intrinsics_from_values(520.9, 521.0, 325.1, 249.7),
    "freiburg3": intrinsics_from_values(535.4, 539.2, 320.1, 247.6),
}
ROS_DEFAULT_K = intrinsics_from_values(525.0, 525.0, 319.5, 239.5)
DEPTH_SCALE = 5000.0


def detect(path: Path) -> bool:
    return path.is_dir() and (path / "rgb.txt").is_file() and (path / "depth.txt").is_file()


def read_list(path: Path, columns: int, *, numeric: bool = False) -> tuple[np.ndarray, list[list[str]]]:
    """Timestamps (N,) and the remaining fields of each non-comment line (checked to be numbers
    with ``numeric``)."""
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    stamps, rest = [], []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != columns:
            raise FormatError(f"{path}:{n}: expected {columns} fields, got {len(fields)}")
        try:
            stamps.append(float(fields[0]))
        except ValueError:
            raise FormatError(f"{path}:{n}: bad timestamp {fields[0]!r}") from None
        if numeric:
            for value in fields[1:]:
                try:
                    float(value)
                except ValueError:
                    raise FormatError(f"{path}:{n}: {value!r} is not a number") from None
        rest.append(fields[1:])
    return np.array(stamps), rest


def open(path: Path, frames: str | None = None, **options: Any) -> PosedDataset:
    """Options: ``intrinsics`` (file or "fx,fy,cx,cy"), ``max_dt`` (s, default 0.02)."""
    check_options(options, ("intrinsics", "max_dt"), str(path))
    max_dt = seconds_option(options, "max_dt", 0.02, str(path))
    rgb_t, rgb_f = read_list(path / "rgb.txt", 2)
    depth_t, depth_f = read_list(path / "depth.txt", 2)
    gt_t, gt_rows = read_list(path / "groundtruth.txt", 8, numeric=True)
    order = np.argsort(gt_t)
    gt_t, gt = gt_t[order], np.array(gt_rows, dtype=np.float64)[order]
    if len(depth_t) == 0:
        raise FormatError(f"{path / 'depth.txt'}: no depth images listed")
    depth_order = np.argsort(depth_t)
    sorted_depth_t = depth_t[depth_order]

    candidates: list[tuple[int, Path, Path, np.ndarray, float]] = []
    for i, (t, (name,)) in enumerate(zip(rgb_t, rgb_f)):
        j = int(np.searchsorted(sorted_depth_t, t))
        near = [n for n in (j - 1, j) if 0 <= n < len(sorted_depth_t)]
        best = min(near, key=lambda n: abs(sorted_depth_t[n] - t))
        if abs(sorted_depth_t[best] - t) > max_dt:
            continue
        tq = interpolate_tq(gt_t, gt, t, max_dt) if len(gt_t) else None
        if tq is None:
            continue
        T = pose_from_tq(tq, f"{path / 'groundtruth.txt'} at {Path(name).name}")
        candidates.append((i, path / name, path / depth_f[depth_order[best]][0], T, t))
    if len(rgb_t) and not candidates:  # e.g. ground truth stamped in another clock than the images
        def span(t: np.ndarray) -> str:
            return f"{t.min():.3f}..{t.max():.3f} s" if len(t) else "empty"

        raise FormatError(f"{path}: none of the {len(rgb_t)} rgb frames has depth and ground truth within "
                          f"{max_dt} s (rgb {span(rgb_t)}, depth {span(depth_t)}, groundtruth.txt {span(gt_t)})")
    skipped = len(rgb_t) - len(candidates)
    if skipped:
        log.info("%s: %d of %d rgb frames lack depth or ground truth within %.3f s; skipped",
                 path, skipped, len(rgb_t), max_dt)
    positions = select([c[0] for c in candidates], frames, source=str(path))
    chosen = [candidates[p] for p in positions]
    for _, rgb_file, depth_file, T, _ in chosen:
        for f in (rgb_file, depth_file):
            if not f.is_file():
                raise DataFileError(f"{f}: file not found")
        check_pose(T, f"{path / 'groundtruth.txt'} at {rgb_file.name}")
    # The folder's own name, as given or behind a symlink ("." has no name; a link may be renamed).
    names = f"{path.absolute().name} {path.resolve().name}"
    default = next((K for key, K in FREIBURG_K.items() if key in names), ROS_DEFAULT_K)
    K = find_intrinsics(path, ("camera-intrinsics.txt", "intrinsics.txt"), options.get("intrinsics"), default)
    H, W = read_depth_raw(chosen[0][2]).shape

    def load(k: int) -> PosedFrame:
        i, rgb_file, depth_file, T, t = chosen[k]
        depth = depth_from_raw(read_depth_raw(depth_file), DEPTH_SCALE)
        return PosedFrame(rgb=read_rgb(rgb_file), depth=depth, K=K, T_world_cam=T,
                          frame_id=f"{path.name}/{rgb_file.stem}", index=i, stamp=t).validate()

    return PosedDataset(path=path, name=path.name, format="tum", indices=[c[0] for c in chosen],
                        poses=np.stack([c[3] for c in chosen]), intrinsics=K, image_size=(H, W), loader=load)
