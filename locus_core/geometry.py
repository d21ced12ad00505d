"""Pinhole camera and SE(3) geometry as pure, batched torch functions.

Conventions: pixel ``(u, v)`` = (column, row) with the centre of pixel ``(i, j)`` at ``(j, i)``;
OpenCV camera axes (x right, y down, z forward); poses are 4x4 camera-to-world matrices
``T_world_cam``. Every function accepts float32 or float64 and broadcasts over leading dimensions
("..."); results keep the input dtype and device.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "compose_se3",
    "invert_se3",
    "lift_patches",
    "pairwise_distances",
    "patch_centers",
    "patch_depths",
    "project",
    "transform_points",
    "unproject",
    "visible",
]


def _check(name: str, tensor: torch.Tensor, tail: tuple[int | None, ...]) -> None:
    """Raise ValueError unless ``tensor`` is floating point and its last dims match ``tail``."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name}: expected a float32/float64 tensor, got {tensor.dtype}")
    shape = tuple(tensor.shape)
    ok = len(shape) >= len(tail) and all(
        t is None or s == t for s, t in zip(shape[len(shape) - len(tail):], tail)
    )
    if not ok:
        want = ", ".join("*" if t is None else str(t) for t in tail)
        raise ValueError(f"{name}: expected shape (..., {want}), got {shape}")


def _intrinsics(K: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """fx, fy, cx, cy of K (..., 3, 3), each shaped (..., 1) to broadcast against (..., N)."""
    return K[..., 0, 0, None], K[..., 1, 1, None], K[..., 0, 2, None], K[..., 1, 2, None]


def unproject(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Camera-frame 3D points of pixels at the given depth (z, not ray length).

    Args:
        uv: (..., N, 2) pixel coordinates (u = column, v = row).
        depth: (..., N) z in metres; NaN propagates to NaN points.
        K: (..., 3, 3) pinhole intrinsics (skew ignored).
    Returns:
        (..., N, 3) points in the camera frame.
    """
    _check("uv", uv, (None, 2))
    _check("depth", depth, (None,))
    _check("K", K, (3, 3))
    if depth.shape[-1] != uv.shape[-2]:
        raise ValueError(f"depth: {tuple(depth.shape)} does not match uv {tuple(uv.shape)}")
    fx, fy, cx, cy = _intrinsics(K)
    x = (uv[..., 0] - cx) / fx * depth
    y = (uv[..., 1] - cy) / fy * depth
    return torch.stack(torch.broadcast_tensors(x, y, depth), dim=-1)


def project(points: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates and depth of camera-frame points.

    Args:
        points: (..., N, 3) camera-frame points.
        K: (..., 3, 3) pinhole intrinsics.
    Returns:
        uv (..., N, 2) and z (..., N). Points with z <= 0 get meaningless (possibly inf) uv:
        callers test ``z > 0``.
    """
    _check("points", points, (None, 3))
    _check("K", K, (3, 3))
    fx, fy, cx, cy = _intrinsics(K)
    z = points[..., 2]
    u = fx * points[..., 0] / z + cx
    v = fy * points[..., 1] / z + cy
    u, v, z = torch.broadcast_tensors(u, v, z)
    return torch.stack((u, v), dim=-1), z


def transform_points(T: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply rigid transforms: T (..., 4, 4), points (..., N, 3) -> (..., N, 3)."""
    _check("T", T, (4, 4))
    _check("points", points, (None, 3))
    R = T[..., :3, :3]
    t = T[..., None, :3, 3]
    return points @ R.transpose(-1, -2) + t


def pairwise_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., M, 3), (..., N, 3) -> (..., M, N) Euclidean distances, NaN where a point is NaN.

    From the differences, not ``torch.cdist``'s fast |a|^2 + |b|^2 - 2ab: that cancels at map
    coordinates of tens of metres and more (float32 at 700 m: points 0.19 m apart came out 0 m).
    """
    _check("a", a, (None, 3))
    _check("b", b, (None, 3))
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def invert_se3(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms (..., 4, 4) using R^T (exact for rotations, no matrix inverse)."""
    _check("T", T, (4, 4))
    Rt = T[..., :3, :3].transpose(-1, -2)
    out = torch.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -(Rt @ T[..., :3, 3, None])[..., 0]
    out[..., 3, 3] = 1
    return out


def compose_se3(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """A @ B for (..., 4, 4) transforms (apply B first, then A)."""
    _check("A", A, (4, 4))
    _check("B", B, (4, 4))
    return A @ B


def patch_centers(
    height: int,
    width: int,
    stride: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(h*w, 2) pixel (u, v) of each stride-``stride`` patch centre, row-major.

    h = height // stride, w = width // stride; the centre of patch (i, j) is
    (stride*j + (stride-1)/2, stride*i + (stride-1)/2).
    """
    if stride < 1 or height < stride or width < stride:
        raise ValueError(f"patch_centers: need 1 <= stride <= image size, got {stride} for {height}x{width}")
    h, w = height // stride, width // stride
    offset = (stride - 1) / 2
    v = torch.arange(h, device=device, dtype=dtype) * stride + offset
    u = torch.arange(w, device=device, dtype=dtype) * stride + offset
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack((uu.reshape(-1), vv.reshape(-1)), dim=-1)


def _check_views(depth: torch.Tensor, K: torch.Tensor, T_world_cam: torch.Tensor) -> None:
    _check("depth", depth, (None, None))
    _check("K", K, (3, 3))
    _check("T_world_cam", T_world_cam, (4, 4))
    if depth.dim() != 3 or K.dim() != 3 or T_world_cam.dim() != 3:
        raise ValueError(
            f"expected depth (B,H,W), K (B,3,3), T_world_cam (B,4,4); got {tuple(depth.shape)}, "
            f"{tuple(K.shape)}, {tuple(T_world_cam.shape)}"
        )
    if not depth.shape[0] == K.shape[0] == T_world_cam.shape[0]:
        raise ValueError(
            f"batch sizes differ: depth {depth.shape[0]}, K {K.shape[0]}, T_world_cam {T_world_cam.shape[0]}"
        )


def lift_patches(
    depth: torch.Tensor, K: torch.Tensor, T_world_cam: torch.Tensor, stride: int
) -> torch.Tensor:
    """World points of every patch centre, at the median valid depth of the patch.

    Args:
        depth: (B, H, W) metres; NaN, inf or <= 0 = invalid.
        K: (B, 3, 3) intrinsics of ``depth``.
        T_world_cam: (B, 4, 4) camera-to-world poses.
        stride: patch size in pixels (rows/columns past the last whole patch are ignored).
    Returns:
        (B, h*w, 3) world points in ``patch_centers`` order; NaN where a patch has no valid depth.
        The depth of a patch is ``patch_depths``': always one that was measured.
    """
    _check_views(depth, K, T_world_cam)
    B, H, W = depth.shape
    centers = patch_centers(H, W, stride, device=depth.device, dtype=depth.dtype)
    points = unproject(centers.expand(B, -1, -1), patch_depths(depth, stride), K)
    return transform_points(T_world_cam, points)


def patch_depths(depth: torch.Tensor, stride: int) -> torch.Tensor:
    """Median valid depth of every stride-``stride`` patch.

    Args:
        depth: (B, H, W) metres; NaN, inf or <= 0 = invalid.
        stride: patch size in pixels (rows/columns past the last whole patch are ignored).
    Returns:
        (B, h*w) in ``patch_centers`` order, ``depth``'s dtype; NaN where a patch has no valid depth.
        The median of an even count is the lower of the two middle values (``torch.nanmedian``),
        so the depth is always one that was measured, never a blend across an edge.
    """
    _check("depth", depth, (None, None))
    if depth.dim() != 3:
        raise ValueError(f"depth: expected (B, H, W), got {tuple(depth.shape)}")
    B, H, W = depth.shape
    h, w = H // stride, W // stride
    d = depth[:, : h * stride, : w * stride]
    d = d.masked_fill(~((d > 0) & (d < float("inf"))), float("nan"))  # NaN fails d > 0
    patches = d.reshape(B, h, stride, w, stride).permute(0, 1, 3, 2, 4).reshape(B, h * w, -1)
    return _lower_nanmedian(patches)


def _lower_nanmedian(x: torch.Tensor) -> torch.Tensor:
    """(..., n) -> (...): ``torch.nanmedian`` over the last dim (the lower of two middle values; NaN
    where a row has none). On CPU through numpy's sort, which puts NaN last: 7x faster than
    ``torch.nanmedian`` on rows of 64 depths, a seventh of tracking a frame."""
    if x.device.type != "cpu" or x.requires_grad or x.dtype not in (torch.float32, torch.float64):
        return x.nanmedian(dim=-1).values
    a = x.numpy()
    valid = (~np.isnan(a)).sum(-1, keepdims=True)
    z = np.take_along_axis(np.sort(a, axis=-1), np.maximum(valid - 1, 0) // 2, -1)[..., 0]
    z[valid[..., 0] == 0] = np.nan
    return torch.from_numpy(z)


def depth_edge_patches(depth: torch.Tensor, patch_depth: torch.Tensor, stride: int, tolerance: float) -> torch.Tensor:
    """Patches that straddle a depth edge: more than a tenth of their valid depths lie farther than
    ``tolerance`` times the patch depth from it. Their colour and depth may show different surfaces
    (a depth camera not registered to colour, as in 7-Scenes, shifts them) and a single 3D point
    does not describe them.

    Args:
        depth: (B, H, W) metres; NaN, inf or <= 0 = invalid.
        patch_depth: (B, h*w) the depth given to each patch (``lift_patches``' z), NaN where none.
        stride: patch size in pixels.
        tolerance: relative depth deviation, e.g. 0.05.
    Returns:
        (B, h*w) bool in ``patch_centers`` order (False for patches without depth).
    """
    B, H, W = depth.shape
    h, w = H // stride, W // stride
    _check("patch_depth", patch_depth, (B, h * w))
    # float32 and int32 counts: a relative test needs no more, and it halves the time of float64
    d = depth[:, : h * stride, : w * stride].float().reshape(B, h, stride, w, stride)
    # patch-major (a copy): each patch's depths in a row, so the tests against its depth and the
    # counts run along contiguous rows; over the image's own layout they took 1.6x the time
    d = d.permute(0, 1, 3, 2, 4).reshape(B, h * w, stride * stride)
    z = patch_depth.reshape(B, h * w, 1).float()
    valid = (d > 0) & (d < float("inf"))
    off = ((d - z).abs() > tolerance * z) & valid
    return off.sum(-1, dtype=torch.int32) > 0.1 * valid.sum(-1, dtype=torch.int32)


def visible(
    points_world: torch.Tensor,
    depth: torch.Tensor,
    K: torch.Tensor,
    T_world_cam: torch.Tensor,
    tolerance: float = 0.05,
    *,
    relative: bool = False,
) -> torch.Tensor:
    """Which world points a depth camera sees (the paper's occlusion test).

    A point is visible in view b when it is finite, in front of the camera, projects inside the
    image (nearest pixel), that pixel has valid depth d, and the point's camera depth z satisfies
    ``z <= d + tol`` (not hidden behind the observed surface by more than ``tol``). A pixel without
    valid depth cannot confirm visibility, so such points count as not visible.

    Args:
        points_world: (B, N, 3) world points (NaN = no point).
        depth: (B, H, W) metres; NaN, inf or <= 0 = invalid.
        K: (B, 3, 3) intrinsics of ``depth``.
        T_world_cam: (B, 4, 4) camera-to-world poses.
        tolerance: metres, or with ``relative=True`` a fraction of the observed depth d
            (``tol = tolerance * d``; sensor noise grows with range).
    Returns:
        (B, N) bool.
    """
    _check_views(depth, K, T_world_cam)
    _check("points_world", points_world, (None, 3))
    if points_world.dim() != 3 or points_world.shape[0] != depth.shape[0]:
        raise ValueError(f"points_world: expected ({depth.shape[0]}, N, 3), got {tuple(points_world.shape)}")
    B, H, W = depth.shape
    cam = transform_points(invert_se3(T_world_cam), points_world)
    uv, z = project(cam, K)
    col = torch.round(uv[..., 0])
    row = torch.round(uv[..., 1])
    inside = (z > 0) & (col >= 0) & (col <= W - 1) & (row >= 0) & (row <= H - 1)
    flat = (row.clamp(0, H - 1) * W + col.clamp(0, W - 1)).nan_to_num(0).long()
    observed = depth.reshape(B, -1).gather(1, flat)
    valid = torch.isfinite(observed) & (observed > 0)
    tol = tolerance * observed if relative else tolerance
    return inside & valid & (z <= observed + tol)
