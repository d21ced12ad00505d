"""What a user checks about a data set before training on it (``locus data info``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from locus_core.data.consistency import reprojection_residuals
from locus_core.data.dataset import PosedDataset
from locus_core.data.errors import DataError


def trajectory_length(poses: np.ndarray) -> float:
    """Sum of camera centre displacements (metres) along (N, 4, 4) poses."""
    return float(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1).sum()) if len(poses) > 1 else 0.0


def summarize(dataset: PosedDataset, *, sample: int = 20) -> dict[str, Any]:
    """Format, size, depth statistics and pose consistency, reading about ``2 * sample`` frames.

    Depth statistics come from ``sample`` frames spread over the sequence; the reprojection
    median is the median over pairs (k, k+1) at those places of each pair's median residual.

    Raises:
        DataError: the data set has no frames. ValueError: ``sample`` < 0.
    """
    n = len(dataset)
    if n == 0:
        raise DataError(f"{dataset.path}: no frames to summarise")
    if sample < 0:
        raise ValueError(f"sample must be >= 0, got {sample}")
    spots = np.unique(np.linspace(0, n - 1, min(sample, n)).round().astype(int))
    depths, pair_medians = [], []
    for k in spots:
        frame = dataset[int(k)]
        if frame.depth is not None:
            depths.append(frame.depth[::4, ::4].ravel())
        if dataset.has_poses and k + 1 < n and frame.depth is not None:
            residual = reprojection_residuals(frame, dataset[int(k) + 1])
            if residual.size:
                pair_medians.append(float(np.median(residual)))
    values = np.concatenate(depths) if depths else np.empty(0, np.float32)
    valid = values[np.isfinite(values)]
    H, W = dataset.image_size
    return {
        "path": str(dataset.path),
        "format": dataset.format,
        "frames": n,
        "first_index": dataset.indices[0],
        "last_index": dataset.indices[-1],
        "image_size": [H, W],
        "depth_min_m": float(np.percentile(valid, 1)) if valid.size else None,
        "depth_median_m": float(np.median(valid)) if valid.size else None,
        "depth_max_m": float(np.percentile(valid, 99)) if valid.size else None,
        "depth_valid_fraction": float(valid.size / values.size) if values.size else 0.0,
        "has_poses": dataset.has_poses,
        "trajectory_length_m": trajectory_length(dataset.poses()) if dataset.has_poses else None,
        "reprojection_median_m": float(np.median(pair_medians)) if pair_medians else None,
        "reprojection_pairs": len(pair_medians),
    }
