"""Robust rigid pose from correspondences: 3D–3D (Kabsch + RANSAC) and 2D–3D (OpenCV PnP RANSAC),
refined on the inliers, with a covariance from the residuals and Jacobian of the final fit.

Covariance convention (as ROS ``PoseWithCovariance``): 6x6 over (x, y, z, rot_x, rot_y, rot_z) where
the position perturbation moves the camera centre in the map frame and the rotation perturbation
rotates the camera about map-frame axes through its own centre.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np


_CHUNK = 64


@dataclass(frozen=True)
class RigidFit:
    """T (4,4) maps source points to target points (``target ≈ R @ source + t``); inliers (N,) bool;
    ``covariance`` (6,6) of T's camera centre and rotation, None when under-determined, computed
    from ``residuals`` (the inliers' residuals as a function of T) when first asked for: the
    localizer verifies several places and needs the covariance of none of their RANSAC fits."""

    T: np.ndarray
    inliers: np.ndarray
    residuals: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)

    @property
    def num_inliers(self) -> int:
        return int(self.inliers.sum())

    @cached_property
    def covariance(self) -> np.ndarray | None:
        return pose_covariance(self.residuals, self.T)


def kabsch(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares rotation + translation (no scale) with ``target ≈ R source + t``.

    Args:
        source, target: (..., N, 3) with N >= 3.
        weights: (..., N) non-negative, or None for uniform.
    Returns:
        (..., 4, 4) rigid transforms.
    """
    if source.shape != target.shape or source.shape[-1] != 3 or source.shape[-2] < 3:
        raise ValueError(f"kabsch: need matching (..., N>=3, 3) arrays, got {source.shape} and {target.shape}")
    w = np.ones(source.shape[:-1]) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / np.maximum(w.sum(-1, keepdims=True), 1e-12)
    p_mean = (w[..., None] * source).sum(-2)
    q_mean = (w[..., None] * target).sum(-2)
    H = np.swapaxes(w[..., None] * (source - p_mean[..., None, :]), -1, -2) @ (target - q_mean[..., None, :])
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.swapaxes(Vt, -1, -2) @ np.swapaxes(U, -1, -2)))
    D = np.broadcast_to(np.eye(3), H.shape).copy()
    D[..., 2, 2] = np.where(d == 0, 1.0, d)
    R = np.swapaxes(Vt, -1, -2) @ D @ np.swapaxes(U, -1, -2)
    T = np.broadcast_to(np.eye(4), H.shape[:-2] + (4, 4)).copy()
    T[..., :3, :3] = R
    T[..., :3, 3] = q_mean - (R @ p_mean[..., None])[..., 0]
    return T


def refine_rigid(source: np.ndarray, target: np.ndarray, T: np.ndarray, scale: float | np.ndarray, iterations: int = 5) -> np.ndarray:
    """``T`` refit by iteratively reweighted least squares with Cauchy weights 1 / (1 + (r / scale)^2).

    Matches to a neighbouring patch (a few cm off) pass an inlier threshold but would pull a plain
    least-squares fit; the Cauchy weights let the many exact matches decide.

    Args:
        source, target: (N, 3) inlier correspondences, ``target ≈ T source``; scale: scalar or (N,) metres.
    """
    for _ in range(iterations):
        r = np.linalg.norm(source @ T[:3, :3].T + T[:3, 3] - target, axis=1)
        T = kabsch(source, target, 1.0 / (1.0 + (r / scale) ** 2))
    return T


def ransac_rigid(
    source: np.ndarray,
    target: np.ndarray,
    threshold: float | np.ndarray,
    *,
    iterations: int = 500,
    seed: int = 0,
    min_inliers: int = 3,
    robust: bool = False,
) -> RigidFit | None:
    """RANSAC over minimal 3-point samples, then iterative refinement on the inliers and, with
    ``robust``, a Cauchy-weighted refit (``refine_rigid``, scale half the threshold).

    Args:
        source: (N, 3) points (e.g. query camera frame); target: (N, 3) (e.g. map frame).
        threshold: inlier distance in metres, scalar or per correspondence (N,).
    Returns:
        The fit, or None when fewer than ``min_inliers`` (and 3) correspondences agree.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    n = len(source)
    if n < max(3, min_inliers):
        return None
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n,))
    thr2 = thr**2
    rng = np.random.default_rng(seed)
    best_count, T, inliers = 0, None, None
    needed, done = iterations, 0
    # Hypotheses in chunks; stop once enough were drawn to find an all-inlier sample with 99.9 %
    # confidence at the best inlier ratio so far (the classic adaptive stopping rule).
    while done < min(needed, iterations):
        chunk = min(_CHUNK, iterations - done)
        done += chunk
        samples = np.argsort(rng.random((chunk, n)), axis=1)[:, :3] if n < 64 else rng.integers(0, n, (chunk, 3))
        P, Q = source[samples], target[samples]
        # Reject degenerate (near-collinear or repeated) samples and samples whose two triangles differ
        # in shape: a rigid motion preserves side lengths, so such a sample cannot be all inliers.
        area = np.linalg.norm(np.cross(P[:, 1] - P[:, 0], P[:, 2] - P[:, 0]), axis=-1)
        sides_p = np.linalg.norm(P - np.roll(P, 1, axis=1), axis=-1)
        sides_q = np.linalg.norm(Q - np.roll(Q, 1, axis=1), axis=-1)
        ok = (area > 1e-4) & (np.abs(sides_p - sides_q).max(-1) < 2 * thr[samples].max(-1))
        if not ok.any():
            continue
        hyps = kabsch(P[ok], Q[ok])
        # matmul, not einsum: the scoring of all hypotheses dominates the localizer's verify time
        moved = np.matmul(source, np.swapaxes(hyps[:, :3, :3], 1, 2)) + hyps[:, None, :3, 3]
        moved -= target
        err2 = np.square(moved).sum(-1)
        counts = (err2 < thr2).sum(-1)
        b = int(np.argmax(counts))
        if counts[b] > best_count:
            best_count, T, inliers = int(counts[b]), hyps[b], err2[b] < thr2
            w = best_count / n
            needed = int(np.ceil(np.log(1e-3) / np.log(max(1e-12, 1.0 - w**3)))) if w < 1 else 0
    if T is None or best_count < max(3, min_inliers):
        return None
    for _ in range(5):
        T = kabsch(source[inliers], target[inliers])
        new = np.linalg.norm(source @ T[:3, :3].T + T[:3, 3] - target, axis=-1) < thr
        if new.sum() < 3:
            break
        if np.array_equal(new, inliers):
            break
        inliers = new
    if inliers.sum() < max(3, min_inliers):
        return None
    if robust:
        T = refine_rigid(source[inliers], target[inliers], T, 0.5 * thr[inliers])

    def residuals(T_: np.ndarray) -> np.ndarray:
        return (source[inliers] @ T_[:3, :3].T + T_[:3, 3] - target[inliers]).ravel()

    return RigidFit(T, inliers, residuals)


PNP_SOLVERS = ("epnp", "ap3p")


def pnp_ransac(
    points: np.ndarray,
    uv: np.ndarray,
    K: np.ndarray,
    threshold_px: float,
    *,
    iterations: int = 500,
    seed: int = 0,
    min_inliers: int = 6,
    solver: str = "epnp",
) -> RigidFit | None:
    """Camera pose from map points (N, 3) and their pixels (N, 2) in an image with intrinsics K.

    ``solver`` fits RANSAC's minimal samples: "epnp" (5 points) or "ap3p" (4 points: all inliers more
    often at low inlier ratios, so RANSAC stops sooner, at some cost in hypothesis accuracy).
    Returns a fit whose ``T`` is camera-to-map (T_map_cam), or None when RANSAC finds no pose with
    ``min_inliers`` (at least 6) inliers.
    """
    import cv2

    if solver not in PNP_SOLVERS:
        raise ValueError(f"pnp_ransac: solver must be one of {', '.join(PNP_SOLVERS)}, got {solver!r}")

    n = len(points)
    if n < max(6, min_inliers):
        return None
    obj = np.ascontiguousarray(points, dtype=np.float64)
    img = np.ascontiguousarray(uv, dtype=np.float64)
    cv2.setRNGSeed(seed)
    ok, rvec, tvec, idx = cv2.solvePnPRansac(
        obj, img, K, None, iterationsCount=iterations, reprojectionError=float(threshold_px),
        confidence=0.999, flags=cv2.SOLVEPNP_EPNP if solver == "epnp" else cv2.SOLVEPNP_AP3P,
    )
    if not ok or idx is None or len(idx) < max(6, min_inliers):
        return None
    inliers = np.zeros(n, bool)
    inliers[idx.ravel()] = True
    T_cam_map = np.eye(4)
    T_cam_map[:3, :3] = cv2.Rodrigues(rvec)[0]
    T_cam_map[:3, 3] = tvec.ravel()
    T = refine_pnp(obj[inliers], img[inliers], K, np.linalg.inv(T_cam_map))
    residual, front = reprojection(T, obj, img, K)
    inliers = (np.linalg.norm(residual, axis=-1) < threshold_px) & front
    if inliers.sum() < max(6, min_inliers):
        return None
    return RigidFit(T, inliers, lambda T_: reprojection(T_, obj[inliers], img[inliers], K)[0].ravel())


def reprojection(T_map_cam: np.ndarray, points: np.ndarray, uv: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel residuals (N, 2) of map ``points`` (N, 3) seen from camera pose ``T_map_cam`` against
    ``uv`` (N, 2), and whether each point is in front of the camera (N,) bool."""
    cam = (points - T_map_cam[:3, 3]) @ T_map_cam[:3, :3]
    z = cam[:, 2]
    proj = cam[:, :2] / np.maximum(z, 1e-6)[:, None]
    return proj @ K[:2, :2].T + K[:2, 2] - uv, z > 0


def refine_pnp(points: np.ndarray, uv: np.ndarray, K: np.ndarray, T_map_cam: np.ndarray) -> np.ndarray:
    """Levenberg–Marquardt refinement (OpenCV) of a camera pose on 2D–3D inliers (N >= 4)."""
    import cv2

    T_cam_map = np.linalg.inv(T_map_cam)
    rvec = cv2.Rodrigues(np.ascontiguousarray(T_cam_map[:3, :3]))[0]
    tvec = T_cam_map[:3, 3].reshape(3, 1).copy()
    rvec, tvec = cv2.solvePnPRefineLM(
        np.ascontiguousarray(points, dtype=np.float64), np.ascontiguousarray(uv, dtype=np.float64), K, None, rvec, tvec
    )
    out = np.eye(4)
    out[:3, :3] = cv2.Rodrigues(rvec)[0]
    out[:3, 3] = tvec.ravel()
    return np.linalg.inv(out)


def pose_covariance(residuals, T: np.ndarray, eps: float = 1e-6) -> np.ndarray | None:
    """σ² (JᵀJ)⁻¹ for the pose T (4,4) minimising ``residuals(T) -> (M,)``; σ² from the residuals.

    J is taken numerically over (position, rotation) perturbations in the convention of this module.
    Returns None when M <= 6 or JᵀJ is singular.
    """
    r0 = residuals(T)
    m = r0.size
    if m <= 6:
        return None
    J = np.empty((m, 6))
    for k in range(6):
        delta = np.zeros(6)
        delta[k] = eps
        J[:, k] = (residuals(perturb(T, delta)) - r0) / eps
    JtJ = J.T @ J
    if np.linalg.cond(JtJ) > 1e12:
        return None
    sigma2 = float(r0 @ r0) / (m - 6)
    return sigma2 * np.linalg.inv(JtJ)


def perturb(T: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Move T's centre by delta[:3] (map frame) and rotate it by exp(delta[3:]) about map axes."""
    out = T.copy()
    out[:3, :3] = so3_exp(delta[3:]) @ T[:3, :3]
    out[:3, 3] = T[:3, 3] + delta[:3]
    return out


def so3_exp(w: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation matrix of the rotation vector w (3,)."""
    theta = float(np.linalg.norm(w))
    W = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
    if theta < 1e-12:
        return np.eye(3) + W
    return np.eye(3) + np.sin(theta) / theta * W + (1 - np.cos(theta)) / theta**2 * (W @ W)

