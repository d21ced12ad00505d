"""Pairwise frame overlap by depth reprojection, for batch sampling and evaluation."""

from __future__ import annotations

import hashlib
import json
import logging
from functools import partial
from pathlib import Path

import numpy as np

from locus_core.cache import cache_dir
from locus_core.data.dataset import PosedDataset
from locus_core.data.resize import resize_frame
from locus_core.durable import atomic_write

log = logging.getLogger(__name__)

# Bump when the computation changes, so stale caches are not reused.
VERSION = 1


def _cache_key(dataset: PosedDataset, stride: int, size: tuple[int, int], tolerance: float) -> str:
    digest = hashlib.sha256()
    meta = {"v": VERSION, "path": str(dataset.path.resolve()), "format": dataset.format,
            "indices": dataset.indices, "stride": stride, "size": list(size), "tolerance": tolerance}
    digest.update(json.dumps(meta, sort_keys=True).encode())
    digest.update(dataset.content_digest().encode())
    return digest.hexdigest()[:20]


def covisibility_matrix(
    dataset: PosedDataset,
    *,
    stride: int = 8,
    size: tuple[int, int] = (120, 160),
    tolerance: float = 0.05,
    cache: bool = True,
) -> np.ndarray:
    """(N, N) float32: [i, j] = fraction of frame i's valid-depth sample points visible in frame j.

    Frames are resized to ``size`` (H, W); sample points are the stride-``stride`` patch centres
    lifted at their median valid depth (:func:`locus_core.geometry.lift_patches`); visibility is
    the depth-checked test of :func:`locus_core.geometry.visible` with ``tolerance`` metres. The
    diagonal is 1 (0 elsewhere in the row of a frame without valid depth). The result is cached
    under :func:`cache_dir` per data set path, selection, poses, intrinsics, parameters and the
    size and modification time of the data set's files.
    """
    path = cache_dir() / f"covisibility-{dataset.name}-{_cache_key(dataset, stride, size, tolerance)}.npy"
    if cache and path.is_file():
        try:
            matrix = np.load(path)
            if matrix.shape == (len(dataset), len(dataset)):
                return matrix
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable cache (%s); recomputing", path, exc)
    matrix = _compute(dataset, stride, size, tolerance)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, partial(_save_npy, matrix=matrix))
    return matrix


def _save_npy(tmp: Path, matrix: np.ndarray) -> None:
    # Through an open file: np.save given a name without ".npy" writes to that name plus ".npy".
    with open(tmp, "wb") as f:
        np.save(f, matrix)


def _compute(dataset: PosedDataset, stride: int, size: tuple[int, int], tolerance: float,
             chunk: int = 16) -> np.ndarray:
    import torch

    from locus_core.geometry import lift_patches, visible

    frames = [resize_frame(dataset[k], size) for k in range(len(dataset))]
    depth = torch.from_numpy(np.stack([f.depth for f in frames]))
    K = torch.from_numpy(np.stack([f.K for f in frames]).astype(np.float32))
    T = torch.from_numpy(np.stack([f.T_world_cam for f in frames]).astype(np.float32))
    with torch.inference_mode():
        points = lift_patches(depth, K, T, stride)  # (N, P, 3)
        N, P, _ = points.shape
        valid = torch.isfinite(points).all(-1)  # (N, P)
        flat = points.reshape(1, N * P, 3)
        counts = torch.empty(N, N)
        for start in range(0, N, chunk):
            j = slice(start, min(start + chunk, N))
            seen = visible(flat.expand(j.stop - start, -1, -1), depth[j], K[j], T[j], tolerance)
            counts[:, j] = seen.reshape(-1, N, P).sum(-1).T.float()
        matrix = counts / valid.sum(-1, keepdim=True).clamp(min=1)
    matrix = matrix.numpy().astype(np.float32)
    np.fill_diagonal(matrix, 1.0)
    return matrix
