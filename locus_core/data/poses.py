"""Pose conversions and checks shared by the readers (numpy, float64)."""

from __future__ import annotations

import numpy as np

from locus_core.data.errors import FrameError

# OpenGL/Blender camera axes (x right, y up, z back) to OpenCV (x right, y down, z forward).
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


# Rotations further than this from orthonormal are repaired by check_pose; closer ones are float
# noise, returned unchanged so that clean data reads back bit for bit.
ORTHONORMAL_EPS = 1e-9


class QuaternionError(FrameError, ValueError):
    """A quaternion that is no rotation (zero norm): a ValueError to the maths, a FrameError (one
    line, no traceback) to the CLI when it comes from a data file."""


def check_pose(T: np.ndarray, source: str, *, tolerance: float = 1e-3) -> np.ndarray:
    """``T`` as a new float64 (4, 4) rigid transform: its rotation re-orthonormalised (nearest
    rotation, by SVD) and its last row made exactly (0, 0, 0, 1).

    Raises:
        FrameError: naming ``source``, when ``T`` is not finite, or its rotation or last row is
        further than ``tolerance`` from a rigid transform's.
    """
    T = np.array(T, dtype=np.float64)  # a copy: the repair below must not write into the caller's array
    if T.shape != (4, 4):
        raise FrameError(f"{source}: pose must be 4x4, got shape {T.shape}")
    if not np.isfinite(T).all():
        raise FrameError(f"{source}: pose has NaN or infinite entries")
    R = T[:3, :3]
    error = max(np.abs(R.T @ R - np.eye(3)).max(), abs(np.linalg.det(R) - 1))
    if error > tolerance or np.abs(T[3] - (0, 0, 0, 1)).max() > tolerance:
        raise FrameError(f"{source}: pose is not rigid (rotation error {error:.2g}, last row {T[3].tolist()})")
    if error > ORTHONORMAL_EPS:  # e.g. 7-Scenes' ~3e-4: inverses by transpose and quaternions assume exact
        U, _, Vt = np.linalg.svd(R)
        T[:3, :3] = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt
    T[3] = (0.0, 0.0, 0.0, 1.0)
    return T


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) Hamilton quaternions ``qx qy qz qw`` (scalar last; normalised here) → (..., 3, 3).

    Raises:
        QuaternionError (a ValueError): a quaternion of zero norm. NaN entries give NaN matrices.
    """
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if (norm == 0).any():
        raise QuaternionError(f"quaternion (0, 0, 0, 0), {int((norm == 0).sum())} of {norm.size}: zero norm, not a rotation")
    x, y, z, w = np.moveaxis(q / norm, -1, 0)
    return np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def pose_from_tq(tq: np.ndarray, source: str = "") -> np.ndarray:
    """(..., 7) rows ``tx ty tz qx qy qz qw`` → (..., 4, 4) transforms.

    Raises:
        QuaternionError: a zero quaternion, its message naming ``source`` (a file and row) when given.
    """
    tq = np.asarray(tq, dtype=np.float64)
    T = np.zeros((*tq.shape[:-1], 4, 4))
    try:
        T[..., :3, :3] = quaternion_to_matrix(tq[..., 3:7])
    except QuaternionError as exc:
        if not source:
            raise
        raise QuaternionError(f"{source}: {exc}") from None
    T[..., :3, 3] = tq[..., :3]
    T[..., 3, 3] = 1
    return T


def slerp_tq(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """(7,) ``tx ty tz qx qy qz qw`` between a (w=0) and b (w=1): lerp translation, slerp rotation."""
    q0, q1 = a[3:] / np.linalg.norm(a[3:]), b[3:] / np.linalg.norm(b[3:])
    if np.dot(q0, q1) < 0:
        q1 = -q1
    theta = np.arccos(np.clip(np.dot(q0, q1), -1.0, 1.0))
    if theta < 1e-6:
        q = q0 * (1 - w) + q1 * w
    else:
        q = (np.sin((1 - w) * theta) * q0 + np.sin(w * theta) * q1) / np.sin(theta)
    return np.concatenate([a[:3] * (1 - w) + b[:3] * w, q])


def interpolate_tq(stamps: np.ndarray, tq: np.ndarray, t: float, max_dt: float) -> np.ndarray | None:
    """Pose ``tx ty tz qx qy qz qw`` at time t from samples (sorted ``stamps`` (N,), ``tq`` (N,7)).

    Exact samples are returned as they are; otherwise t must lie between two samples, each no
    more than ``max_dt`` seconds away (no extrapolation). None when it does not.
    """
    j = int(np.searchsorted(stamps, t))
    if j < len(stamps) and abs(stamps[j] - t) <= 1e-9:
        return tq[j]
    if j == 0 or j == len(stamps) or t - stamps[j - 1] > max_dt or stamps[j] - t > max_dt:
        return None
    return slerp_tq(tq[j - 1], tq[j], (t - stamps[j - 1]) / (stamps[j] - stamps[j - 1]))
