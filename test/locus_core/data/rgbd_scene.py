"""A tiny exactly-consistent RGB-D scene (a textured plane seen by a moving camera) and writers
for every on-disk layout the readers support."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from locus_core.data.poses import pose_from_tq

SIZE = (48, 64)
K = np.array([[60.0, 0, 31.5], [0, 62.0, 23.5], [0, 0, 1]])
PLANE_Z = 2.0


@dataclass
class Scene:
    rgb: list[np.ndarray]
    depth: list[np.ndarray]  # float32 metres
    poses: list[np.ndarray]  # camera-to-world
    K: np.ndarray


def make_scene(n: int = 6, seed: int = 0, plane_z: float = PLANE_Z) -> Scene:
    """Camera translating along x and yawing slightly in front of the plane z = plane_z."""
    rng = np.random.default_rng(seed)
    H, W = SIZE
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    rgbs, depths, poses = [], [], []
    for k in range(n):
        yaw = 0.03 * k
        T = pose_from_tq(np.array([0.05 * k, 0.01 * k, 0.05 * np.sin(k), 0, np.sin(yaw / 2), 0, np.cos(yaw / 2)]))
        world_dirs = rays @ T[:3, :3].T
        depth = (plane_z - T[2, 3]) / world_dirs[..., 2]
        rgbs.append(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        depths.append(depth.astype(np.float32))
        poses.append(T)
    return Scene(rgbs, depths, poses, K.copy())


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = image[:, :, ::-1]
    assert cv2.imwrite(str(path), image), path


def mm(depth: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.round(depth * 1000), nan=0).astype(np.uint16)


def write_matrix(path: Path, M: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, M)


def write_tsdf(folder: Path, scene: Scene, *, labelfusion: bool = False, first: int = 0,
               step: int = 1, intrinsics_name: str = "camera-intrinsics.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_matrix(folder / intrinsics_name, scene.K)
    for k, (rgb, depth, T) in enumerate(zip(scene.rgb, scene.depth, scene.poses)):
        stem = folder / f"frame-{first + k * step:06d}"
        write_png(Path(f"{stem}.color.png"), rgb)
        raw = (np.round(depth * 1e4).astype(np.uint16) << 3) if labelfusion else mm(depth)
        write_png(Path(f"{stem}.depth.png"), raw)
        write_matrix(Path(f"{stem}.pose.txt"), T)
        if labelfusion:
            write_png(Path(f"{stem}.segm.png"), np.full(depth.shape, 48, np.uint8))
    return folder
