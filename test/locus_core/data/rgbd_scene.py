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


def tq_of(T: np.ndarray) -> np.ndarray:
    """``tx ty tz qx qy qz qw`` of a rigid transform."""
    from scipy.spatial.transform import Rotation

    return np.concatenate([T[:3, 3], Rotation.from_matrix(T[:3, :3]).as_quat()])


def write_slambook(folder: Path, scene: Scene) -> Path:
    for k, (rgb, depth) in enumerate(zip(scene.rgb, scene.depth), 1):
        write_png(folder / "color" / f"{k}.png", rgb)
        write_png(folder / "depth" / f"{k}.pgm", mm(depth))
    np.savetxt(folder / "pose.txt", np.stack([tq_of(T) for T in scene.poses]))
    return folder


def write_tum(folder: Path, scene: Scene) -> Path:
    """rgb at 30 Hz, depth 5 ms later, ground truth at 100 Hz (linear in time between frames)."""
    rgb_lines, depth_lines, gt_lines = ["# rgb"], ["# depth"], ["# ground truth"]
    for k, (rgb, depth) in enumerate(zip(scene.rgb, scene.depth)):
        t = 100.0 + k / 30
        write_png(folder / "rgb" / f"{t:.6f}.png", rgb)
        write_png(folder / "depth" / f"{t + 0.005:.6f}.png",
                  np.nan_to_num(np.round(depth * 5000), nan=0).astype(np.uint16))
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t + 0.005:.6f} depth/{t + 0.005:.6f}.png")
    for k, T in enumerate(scene.poses):  # exact samples at the rgb stamps plus one between
        t = 100.0 + k / 30
        gt_lines.append(f"{t:.6f} " + " ".join(map(str, tq_of(T))))
    (folder / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (folder / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    (folder / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    return folder


def write_scannet(folder: Path, scene: Scene) -> Path:
    """Colour at twice the depth size, as ScanNet's 1296x968 vs 640x480."""
    import cv2

    K4 = np.eye(4)
    K4[:3, :3] = scene.K
    write_matrix(folder / "intrinsic" / "intrinsic_depth.txt", K4)
    write_matrix(folder / "intrinsic" / "intrinsic_color.txt", K4 * [[2], [2], [1], [1]])
    for k, (rgb, depth, T) in enumerate(zip(scene.rgb, scene.depth, scene.poses)):
        big = cv2.resize(rgb, (rgb.shape[1] * 2, rgb.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
        write_png(folder / "color" / f"{k}.png", big)
        write_png(folder / "depth" / f"{k}.png", mm(depth))
        write_matrix(folder / "pose" / f"{k}.txt", T)
    return folder


def write_matterport(folder: Path, scene: Scene, scan: str = "17DRP5sb8fy") -> Path:
    """The official zips' nesting: <scan>/undistorted_*/<scan>/undistorted_*/files."""
    lines = ["dataset matterport", f"n_images {len(scene.rgb)}",
             "depth_directory undistorted_depth_images", "color_directory undistorted_color_images"]
    gl = np.diag([1.0, -1.0, -1.0, 1.0])
    for k, (rgb, depth, T) in enumerate(zip(scene.rgb, scene.depth, scene.poses)):
        if k % 3 == 0:
            K = scene.K
            lines.append("intrinsics_matrix " + " ".join(f"{v:g}" for v in K.ravel()))
        pano, cam = f"{k // 3:032x}", k % 3
        depth_name, color_name = f"{pano}_d{cam}_0.png", f"{pano}_i{cam}_0.jpg"
        write_png(folder / "undistorted_depth_images" / scan / "undistorted_depth_images" / depth_name,
                  np.nan_to_num(np.round(depth * 4000), nan=0).astype(np.uint16))
        write_png(folder / "undistorted_color_images" / scan / "undistorted_color_images" / color_name, rgb)
        lines.append(f"scan {depth_name} {color_name} " + " ".join(f"{v:.12g}" for v in (T @ gl).ravel()))
    conf = folder / "undistorted_camera_parameters" / scan / "undistorted_camera_parameters" / f"{scan}.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("\n".join(lines) + "\n")
    return folder
