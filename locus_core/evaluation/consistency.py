"""Task 5: 3D consistency: cosine similarity of features at corresponding pixels across two views,
against the viewpoint change between them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from locus_core.evaluation.pose import pose_error
from locus_core.geometry import invert_se3, project, transform_points, visible

# Viewpoint-change bins (degrees of relative camera rotation) for the report's table.
ANGLE_BINS = (0.0, 10.0, 20.0, 40.0, 180.0)


def viewpoint_change_deg(T_world_a: np.ndarray, T_world_b: np.ndarray) -> float:
    """Angle (deg) of the relative rotation between two camera-to-world poses (of the nearest
    rotation, as ``pose.pose_error``'s: poses slightly off orthonormal are not rotated)."""
    return pose_error(T_world_a, T_world_b)[1]


def sample_features(features: torch.Tensor, uv: torch.Tensor, stride: int) -> torch.Tensor:
    """Bilinearly sampled, re-normalised features at pixel positions.

    Args:
        features: (D, h, w) map whose cell (i, j) centre is pixel (stride*j + (stride-1)/2, stride*i + ...).
        uv: (N, 2) pixel coordinates of the image the map was computed on.
    Returns:
        (N, D).
    """
    d, h, w = features.shape
    x = (uv[:, 0] - (stride - 1) / 2) / stride
    y = (uv[:, 1] - (stride - 1) / 2) / stride
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)
    out = F.grid_sample(features[None].float(), grid[None, None].float(), mode="bilinear",
                        padding_mode="border", align_corners=True)
    return F.normalize(out[0, :, 0].T, dim=-1)


def correspondence_cosine(
    features_a: torch.Tensor, features_b: torch.Tensor, points_a: torch.Tensor,
    depth_b: torch.Tensor, K_b: torch.Tensor, T_world_b: torch.Tensor, stride: int,
    tolerance: float = 0.05,
) -> torch.Tensor:
    """Cosine between each patch of view a and view b's feature where a's 3D point appears in b.

    Args:
        features_a, features_b: (D, h, w) L2-normalised maps of the two (resized) views.
        points_a: (h*w, 3) world points of a's patch centres (NaN = no depth).
        depth_b: (H, W) metres of view b; K_b: (3, 3); T_world_b: (4, 4) camera-to-world.
    Returns:
        (M,) cosines of the patches of a that b sees (depth-checked).
    """
    d = features_a.shape[0]
    seen = visible(points_a[None].float(), depth_b[None].float(), K_b[None].float(), T_world_b[None].float(),
                   tolerance)[0]
    if not seen.any():
        return torch.zeros(0)
    cam_b = transform_points(invert_se3(T_world_b.float()), points_a[seen].float())
    uv, _ = project(cam_b, K_b.float())
    fb = sample_features(features_b, uv, stride)
    fa = features_a.reshape(d, -1).T[seen].float()
    return (fa * fb).sum(-1)


def bin_by_angle(angles: np.ndarray, cosines: list[np.ndarray], bins: tuple[float, ...] = ANGLE_BINS) -> list[dict]:
    """Mean cosine and count per viewpoint-change bin (pairs pooled)."""
    rows = []
    angles = np.asarray(angles)
    for lo, hi in zip(bins[:-1], bins[1:]):
        inside = [c for a, c in zip(angles, cosines) if lo <= a < hi and len(c)]
        values = np.concatenate(inside) if inside else np.zeros(0)
        rows.append({"angle_deg": [lo, hi], "pairs": len(inside),
                     "mean_cosine": float(values.mean()) if len(values) else float("nan")})
    return rows
