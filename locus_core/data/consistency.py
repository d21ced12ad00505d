"""How well depth, intrinsics and poses agree: reproject one frame's depth into another."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from locus_core.data.frame import PosedFrame


def reprojection_residuals(a: PosedFrame, b: PosedFrame, *, stride: int = 4) -> np.ndarray:
    """|z - d_b| (metres) for frame a's valid depth pixels (every ``stride``-th row and column)
    that land inside frame b on a pixel with valid depth; z = their depth in b's camera.

    Empty when nothing overlaps. Both frames need depth and a pose.
    """
    import torch

    from locus_core.geometry import invert_se3, project, transform_points, unproject

    if a.depth is None or b.depth is None or a.T_world_cam is None or b.T_world_cam is None:
        raise ValueError(f"reprojection needs depth and pose on {a.frame_id} and {b.frame_id}")
    rows, cols = np.mgrid[0: a.height: stride, 0: a.width: stride]
    d = a.depth[rows, cols]
    ok = np.isfinite(d)
    uv = torch.from_numpy(np.stack([cols[ok], rows[ok]], -1).astype(np.float64))
    points = unproject(uv, torch.from_numpy(d[ok].astype(np.float64)), torch.from_numpy(a.K))
    T_b_a = invert_se3(torch.from_numpy(b.T_world_cam)) @ torch.from_numpy(a.T_world_cam)
    uv_b, z = project(transform_points(T_b_a, points), torch.from_numpy(b.K))
    col, row = uv_b[:, 0].round().numpy(), uv_b[:, 1].round().numpy()
    inside = (z.numpy() > 0) & (col >= 0) & (col < b.width) & (row >= 0) & (row < b.height)
    observed = b.depth[row[inside].astype(np.int64), col[inside].astype(np.int64)]
    residual = np.abs(z.numpy()[inside] - observed)
    return residual[np.isfinite(residual)]


def reprojection_median(frames: Sequence[PosedFrame], gap: int = 1, *, stride: int = 4) -> float:
    """Median over frame pairs (k, k+gap) of the median reprojection residual (metres); NaN when no
    pair overlaps."""
    medians = []
    for k in range(len(frames) - gap):
        residual = reprojection_residuals(frames[k], frames[k + gap], stride=stride)
        if residual.size:
            medians.append(float(np.median(residual)))
    return float(np.median(medians)) if medians else float("nan")
