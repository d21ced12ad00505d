"""Geometric pose refinement against the map's landmarks by projective data association.

Descriptor matches find the place and a first pose, but LoCUS descriptors are trained to agree over
ρ = 0.2 m, so a landmark's best match is often a neighbouring patch a few centimetres away, and those
offsets do not average out. Given the pose, each landmark in view is instead paired with the query
patch it projects onto (the query's depth gives that patch's 3D point), the pose is refit on the pairs
within the inlier threshold, and the projection is repeated until the pose settles: ICP with projective
association, as KinectFusion aligns depth frames, on the map's sparse points. The descriptors decide
where the robot is; the geometry decides the last centimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from locus_core.mapping.ransac import refine_rigid


@dataclass(frozen=True)
class ProjectiveFit:
    """Refined camera-to-map pose (4,4), its inlier pairs (query patch rows (n,), landmark rows (n,))
    and the association rounds run."""

    T: np.ndarray
    patches: np.ndarray
    landmarks: np.ndarray
    rounds: int


def associate(
    T_map_cam: np.ndarray, landmarks: np.ndarray, K: np.ndarray, grid: tuple[int, int], stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pair each landmark with the patch it projects onto under ``T_map_cam``.

    Args:
        T_map_cam: (4, 4) camera-to-map pose; landmarks: (N, 3) map-frame points;
        K: (3, 3) intrinsics of the patch grid's image; grid: (h, w) patches of ``stride`` pixels.
    Returns:
        landmark rows (n,) in front of the camera and inside the image, and their patch rows (n,)
        (row-major, as ``locus_core.geometry.patch_centers``).
    """
    h, w = grid
    R, t = T_map_cam[:3, :3], T_map_cam[:3, 3]
    cam = (landmarks - t) @ R  # R^T (X - t), row-wise
    z = cam[:, 2]
    front = np.flatnonzero(z > 1e-6)
    u = K[0, 0] * cam[front, 0] / z[front] + K[0, 2]
    v = K[1, 1] * cam[front, 1] / z[front] + K[1, 2]
    # pixel centres are integers (as K's), so patch j spans [stride*j - 0.5, stride*(j+1) - 0.5)
    col = np.floor((u + 0.5) / stride)
    row = np.floor((v + 0.5) / stride)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    return front[inside], (row[inside] * w + col[inside]).astype(np.int64)


def projective_refine(
    T_map_cam: np.ndarray,
    landmarks: np.ndarray,
    points_cam: np.ndarray,
    K: np.ndarray,
    grid: tuple[int, int],
    stride: int,
    threshold_m: float,
    threshold_relative: float,
    *,
    rounds: int = 10,
    max_landmarks: int = 1000,
    min_inliers: int = 3,
    tolerance_m: float = 1e-4,
) -> ProjectiveFit | None:
    """Refine ``T_map_cam`` by alternating ``associate`` and a Cauchy-weighted rigid fit.

    A pair is an inlier when the query point, moved by the pose, lies within
    max(``threshold_m``, ``threshold_relative`` x depth) of its landmark; each round's fit is one
    Cauchy-weighted step of ``ransac.refine_rigid`` (scale half the threshold). Stops when the pose
    moves less than ``tolerance_m`` (translation, and rotation as arc length at 1 m) or after
    ``rounds``.
    After the first round only the landmarks then in view take part, at most ``max_landmarks`` of
    them (evenly spaced).

    Args:
        T_map_cam: (4, 4) the starting pose (e.g. from descriptor matches).
        landmarks: (N, 3) map-frame points near the pose.
        points_cam: (h*w, 3) camera-frame point of each query patch, NaN where it has none.
        K, grid, stride: as ``associate``.
    Returns:
        The refined fit, or None when a round has fewer than ``min_inliers`` pairs.
    """
    if points_cam.shape != (grid[0] * grid[1], 3):
        raise ValueError(f"projective_refine: points_cam {points_cam.shape} does not match grid {grid}")
    if rounds < 1:
        raise ValueError(f"projective_refine: rounds must be >= 1, got {rounds}")
    T = np.asarray(T_map_cam, np.float64)
    rows = np.arange(len(landmarks))
    for done in range(1, rounds + 1):
        lm, patch = associate(T, landmarks[rows], K, grid, stride)
        src = points_cam[patch]
        ok = np.isfinite(src).all(1)
        lm, patch, src = rows[lm[ok]], patch[ok], src[ok]
        if done == 1:
            # the pose moves by centimetres: later rounds need only the landmarks in view now, and
            # an even subset of them pins a pose as well as all do, at a fraction of the time
            rows = lm[:: -(-len(lm) // max_landmarks)] if len(lm) > max_landmarks else lm
            keep = np.isin(lm, rows)
            lm, patch, src = lm[keep], patch[keep], src[keep]
        dst = landmarks[lm]
        threshold = np.maximum(threshold_m, threshold_relative * src[:, 2])
        r = np.linalg.norm(src @ T[:3, :3].T + T[:3, 3] - dst, axis=1)
        inlier = r < threshold
        if inlier.sum() < max(min_inliers, 3):
            return None
        new = refine_rigid(src[inlier], dst[inlier], T, 0.5 * threshold[inlier], iterations=1)
        step = np.linalg.inv(T) @ new
        T = new
        angle = np.arccos(np.clip((np.trace(step[:3, :3]) - 1) / 2, -1.0, 1.0))
        if np.linalg.norm(step[:3, 3]) < tolerance_m and angle < tolerance_m:
            break
    return ProjectiveFit(T, patch[inlier], lm[inlier], done)
