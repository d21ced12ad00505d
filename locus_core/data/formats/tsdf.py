"""The 7-Scenes / tsdf-fusion layout and its variants (label-fusion depth, synthetic scenes).

``frame-N.color.{png,jpg}``, ``frame-N.depth.png``, ``frame-N.pose.txt`` (4x4 camera-to-world),
optional ``frame-N.segm.png`` (class ids) and ``frame-N.instance.png``, and one intrinsics file.
Depth is uint16 millimetres (0 and 65535 invalid), except in label-fusion exports where metres =
``(raw >> 3) / 1e4`` and values under 0.3 m are invalid. That encoding is recognised from the
data itself: its raw values are multiples of 8 (millimetre depth only by chance, ~1 in 8) and
decode to a median of at least 0.3 m (a millimetre image would need a median over 24 m).
7-Scenes ships its Kinect v1's depth camera intrinsics (fx = fy = 585, principal point at the
centre of 640x480: tsdf-fusion's ``camera-intrinsics.txt``) and poses of that camera, and its depth
is not registered to colour. Such a folder is read as the colour camera sees it (``registration``
"auto", or "7scenes"): colour intrinsics fx = fy = 525, depth re-projected into the colour camera and
poses moved to it, with the Kinect calibration the 7-Scenes re-localisation literature uses (DSAC*,
ACE: LIRIS's Kinect calibration). ``registration="none"`` reads the files as they are.
A ``scene.json`` marks a scene written by :func:`locus_core.data.synthetic.generate_scene`; its
``scene.json.tmp`` without ``scene.json`` marks one whose writing was interrupted (refused).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.data.dataset import PosedDataset
from locus_core.data.errors import DataFileError, FormatError
from locus_core.data.formats.common import check_options, entries, find_intrinsics, numbered
from locus_core.data.frame import PosedFrame
from locus_core.data.io import depth_from_raw, depth_to_mm, read_depth_raw, read_labels, read_matrix, read_rgb
from locus_core.data.poses import check_pose
from locus_core.data.registration import register_depth
from locus_core.data.selection import select

INTRINSICS_FILES = ("camera-intrinsics.txt", "intrinsics.K.txt", "camera-intrinsics.color.txt",
                    "intrinsics.txt")
ENCODINGS = ("mm", "labelfusion")
# Fraction of valid raw depth values that are multiples of 8 above which the encoding is
# label-fusion's (measured: 0.97 on labelfusion-shelf, 0.11-0.16 on millimetre sets, ~1/8 expected).
LABELFUSION_MULTIPLE_OF_8 = 0.9
SCENE_FILE = "scene.json"
# Present while generate_scene writes a folder, renamed to SCENE_FILE when the scene is complete.
PARTIAL_SCENE_FILE = "scene.json.tmp"
REGISTRATIONS = ("auto", "7scenes", "none")
SEVEN_SCENES_DEPTH_K = np.array([[585.0, 0, 320], [0, 585.0, 240], [0, 0, 1]])
SEVEN_SCENES_COLOR_K = np.array([[525.0, 0, 320], [0, 525.0, 240], [0, 0, 1]])
SEVEN_SCENES_SIZE = (480, 640)
# depth-camera -> colour-camera coordinates of a Kinect v1 (LIRIS's calibration): 2.6 cm along x
SEVEN_SCENES_COLOR_FROM_DEPTH = check_pose(np.array([
    [9.9996518012567637e-01, 2.6765126468950343e-03, -7.9041012313000904e-03, -2.5558943178152542e-02],
    [-2.7409311281316700e-03, 9.9996302803027592e-01, -8.1504520778013286e-03, 1.0109636268061706e-04],
    [7.8819942130445332e-03, 8.1718328771890631e-03, 9.9993554558014031e-01, 2.0318321729487039e-03],
    [0.0, 0.0, 0.0, 1.0],
]), "the Kinect v1 depth-to-colour calibration")
# These layouts carry no timestamps; Kinect-class sensors run at 30 Hz.
NOMINAL_RATE_HZ = 30.0


def detect(path: Path) -> bool:
    return path.is_dir() and next(path.glob("frame-*.pose.txt"), None) is not None


def detect_encoding(depth_files: list[Path]) -> str:
    """The encoding of the first of ``depth_files`` with enough valid pixels to tell ("mm" if none):
    a frame without valid depth (a covered camera, a depth stream still starting) says nothing, and
    judging by it read a label-fusion recording that starts with one as millimetres (80x too far)."""
    for depth_file in depth_files:
        raw = read_depth_raw(depth_file)
        valid = raw[(raw > 0) & (raw < 65535)]
        if valid.size >= 100:
            multiples_of_8 = np.mean(valid % 8 == 0) > LABELFUSION_MULTIPLE_OF_8
            return "labelfusion" if multiples_of_8 and np.median(valid >> 3) >= 3000 else "mm"
    return "mm"


def decode_depth(raw: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "labelfusion":
        return depth_from_raw(raw >> 3, 1e4, invalid=(0,), min_depth=0.3)
    return depth_from_raw(raw, 1000.0, invalid=(0, 65535))


def open(path: Path, frames: str | None = None, **options: Any) -> PosedDataset:
    """Options: ``intrinsics`` (file or "fx,fy,cx,cy"), ``depth_encoding`` ("mm" | "labelfusion"),
    ``registration`` ("auto" | "7scenes" | "none", see the module's docstring)."""
    check_options(options, ("intrinsics", "depth_encoding", "registration"), str(path))
    if (path / PARTIAL_SCENE_FILE).is_file() and not (path / SCENE_FILE).is_file():
        raise FormatError(f"{path}: an interrupted synthetic scene: re-run locus data synth")
    files = entries(path)
    poses_files = numbered(files, r"frame-(\d+)\.pose\.txt")
    all_indices = sorted(poses_files)
    positions = select(all_indices, frames, source=str(path))
    indices = [all_indices[p] for p in positions]

    def color_file(i: int) -> Path:
        for ext in ("png", "jpg", "jpeg"):
            f = path / f"frame-{i:06d}.color.{ext}"
            if f.is_file():
                return f
        raise DataFileError(f"{path / f'frame-{i:06d}.color.png'}: file not found (nor .jpg)")

    colors = [color_file(i) for i in indices]
    depths = [path / f"frame-{i:06d}.depth.png" for i in indices]
    for f in depths:
        if not f.is_file():
            raise DataFileError(f"{f}: file not found")
    poses = np.stack([check_pose(read_matrix(poses_files[i], (4, 4)), str(poses_files[i])) for i in indices])
    K = find_intrinsics(path, INTRINSICS_FILES, options.get("intrinsics"))

    synthetic = (path / SCENE_FILE).is_file()
    if synthetic:
        try:
            json.loads((path / SCENE_FILE).read_text())
        except json.JSONDecodeError as exc:
            raise FormatError(f"{path / SCENE_FILE}: not valid JSON ({exc})") from None
    encoding = options.get("depth_encoding") or ("mm" if synthetic else detect_encoding(depths))
    if encoding not in ENCODINGS:
        raise FormatError(f"{path}: depth_encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
    fmt = "synthetic" if synthetic else ("labelfusion" if encoding == "labelfusion" else "7scenes")
    H, W = read_depth_raw(depths[0]).shape
    seven_scenes = _seven_scenes_rig(path, options, fmt, K, (H, W))
    if seven_scenes:
        K = SEVEN_SCENES_COLOR_K.copy()
        poses = poses @ np.linalg.inv(SEVEN_SCENES_COLOR_FROM_DEPTH)

    def load(k: int) -> PosedFrame:
        i = indices[k]
        rgb = read_rgb(colors[k])
        depth = decode_depth(read_depth_raw(depths[k]), encoding)
        if seven_scenes:  # in millimetres, as a driver that registers depth gives it (and a bag holds it)
            depth = decode_depth(depth_to_mm(register_depth(depth, SEVEN_SCENES_DEPTH_K, K,
                                                            SEVEN_SCENES_COLOR_FROM_DEPTH, (H, W))), encoding)
        segm, inst = path / f"frame-{i:06d}.segm.png", path / f"frame-{i:06d}.instance.png"
        frame = PosedFrame(
            rgb=rgb, depth=depth, K=K, T_world_cam=poses[k], frame_id=f"{path.name}/frame-{i:06d}",
            index=i, stamp=i / NOMINAL_RATE_HZ, semantic=read_labels(segm) if segm.is_file() else None,
            instance=read_labels(inst) if inst.is_file() else None,
        )
        return frame.validate()

    return PosedDataset(path=path, name=path.name, format=fmt, indices=indices, poses=poses,
                        intrinsics=K, image_size=(H, W), loader=load)


def _seven_scenes_rig(path: Path, options: dict[str, Any], fmt: str, K: np.ndarray, size: tuple[int, int]) -> bool:
    """Whether to read ``path`` as 7-Scenes' Kinect v1 (see the module's docstring): "auto" says yes
    for millimetre depth at 640x480 with 7-Scenes' depth intrinsics from the folder's own file."""
    mode = options.get("registration") or "auto"
    if mode not in REGISTRATIONS:
        raise FormatError(f"{path}: registration {mode!r} is not one of {', '.join(REGISTRATIONS)}")
    if mode != "auto":
        if mode == "7scenes" and size != SEVEN_SCENES_SIZE:
            H, W = size
            raise FormatError(f"{path}: registration '7scenes' is for 7-Scenes' 640x480 Kinect v1 images, "
                              f"these are {W}x{H}")
        return mode == "7scenes"
    return (fmt == "7scenes" and options.get("intrinsics") is None and size == SEVEN_SCENES_SIZE
            and np.allclose(K, SEVEN_SCENES_DEPTH_K))
