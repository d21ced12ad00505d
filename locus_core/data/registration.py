"""Depth registration: a depth image as the colour camera of the same RGB-D rig sees it.

An RGB-D sensor whose driver does not register depth (7-Scenes' Kinect v1 recordings) gives a depth
image from its own camera, with its own intrinsics, a few centimetres beside the colour camera.
Reading that depth at a colour pixel puts each 3D point where the depth camera saw it, not where the
colour camera did: the error grows with the distance between views (20 px median at 10-40 %
co-visibility on 7-Scenes redkitchen, measured with LighterGlue's matches).
"""

from __future__ import annotations

import numpy as np


def register_depth(depth: np.ndarray, K_depth: np.ndarray, K_color: np.ndarray, T_color_depth: np.ndarray,
                   color_size: tuple[int, int]) -> np.ndarray:
    """Depth seen from the colour camera: every valid depth pixel is lifted with ``K_depth``, moved by
    ``T_color_depth`` and projected with ``K_color``; where several land on one colour pixel the
    nearest wins (a z-buffer), as the nearer surface hides the farther.

    Args:
        depth: (Hd, Wd) metres of the depth camera; NaN, inf or <= 0 = invalid.
        K_depth, K_color: (3, 3) intrinsics of the depth and colour cameras.
        T_color_depth: (4, 4) depth-camera coordinates -> colour-camera coordinates.
        color_size: (H, W) of the colour image.
    Returns:
        (H, W) float32 metres along the colour camera's axis, NaN where no depth pixel lands.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected (H, W), got shape {depth.shape}")
    for name, m, shape in (("K_depth", K_depth, (3, 3)), ("K_color", K_color, (3, 3)),
                           ("T_color_depth", T_color_depth, (4, 4))):
        if np.shape(m) != shape or not np.isfinite(m).all():
            raise ValueError(f"{name}: expected a finite {shape} matrix, got {np.asarray(m)!r}")
    H, W = color_size
    if H < 1 or W < 1:
        raise ValueError(f"color_size: expected (H, W) >= 1, got {color_size}")
    import torch

    from locus_core.geometry import project, transform_points, unproject

    rows, cols = np.nonzero(np.isfinite(depth) & (depth > 0))
    uv = torch.from_numpy(np.stack([cols, rows], -1).astype(np.float64))  # pixel centres at integers
    K_depth, K_color, T_color_depth = (torch.from_numpy(np.asarray(m, np.float64)) for m in (K_depth, K_color, T_color_depth))
    points = unproject(uv, torch.from_numpy(depth[rows, cols].astype(np.float64)), K_depth)
    uv_color, z = project(transform_points(T_color_depth, points), K_color)
    u, v, z = uv_color[:, 0].round().long().numpy(), uv_color[:, 1].round().long().numpy(), z.numpy()
    inside = (z > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    target, zc = v[inside] * W + u[inside], z[inside]
    order = np.lexsort((zc, target))  # by pixel, nearest first
    target, zc = target[order], zc[order]
    first = np.ones(len(target), bool)
    first[1:] = target[1:] != target[:-1]
    out = np.full((H, W), np.nan, np.float32)
    out.reshape(-1)[target[first]] = zc[first]
    return out
