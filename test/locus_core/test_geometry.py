from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.geometry import (
    depth_edge_patches,
    compose_se3,
    invert_se3,
    lift_patches,
    pairwise_distances,
    patch_centers,
    project,
    transform_points,
    unproject,
    visible,
)

DTYPES = (torch.float32, torch.float64)


def random_se3(gen: torch.Generator, batch: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    q = torch.randn(*batch, 4, generator=gen, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*batch, 3, 3)
    T = torch.eye(4, dtype=torch.float64).expand(*batch, 4, 4).clone()
    T[..., :3, :3] = R
    T[..., :3, 3] = torch.randn(*batch, 3, generator=gen, dtype=torch.float64) * 2
    return T.to(dtype)


def intrinsics(batch: tuple[int, ...], dtype: torch.dtype, fx: float = 500.0, fy: float = 520.0,
               cx: float = 160.0, cy: float = 120.0) -> torch.Tensor:
    K = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=dtype)
    return K.expand(*batch, 3, 3).clone()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 50), dtype=st.sampled_from(DTYPES),
       fx=st.floats(100, 1000), fy=st.floats(100, 1000))
def test_project_inverts_unproject(seed: int, n: int, dtype: torch.dtype, fx: float, fy: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    uv = (torch.rand(2, n, 2, generator=gen, dtype=torch.float64) * 640).to(dtype)
    depth = (0.1 + torch.rand(2, n, generator=gen, dtype=torch.float64) * 10).to(dtype)
    K = intrinsics((2,), dtype, fx, fy)
    points = unproject(uv, depth, K)
    assert points.dtype == dtype and points.shape == (2, n, 3)
    uv2, z = project(points, K)
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(uv2, uv, atol=tol * 100, rtol=tol)
    torch.testing.assert_close(z, depth, atol=tol, rtol=tol)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from(DTYPES))
def test_se3_inverse_and_compose(seed: int, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(seed)
    T = random_se3(gen, (3, 2), dtype)
    eye = torch.eye(4, dtype=dtype).expand(3, 2, 4, 4)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(compose_se3(T, invert_se3(T)), eye, atol=tol, rtol=0)
    torch.testing.assert_close(compose_se3(invert_se3(T), T), eye, atol=tol, rtol=0)
    points = torch.randn(3, 2, 7, 3, generator=gen, dtype=torch.float64).to(dtype)
    back = transform_points(invert_se3(T), transform_points(T, points))
    torch.testing.assert_close(back, points, atol=tol * 10, rtol=0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_batch_equals_items(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    T = random_se3(gen, (4,), torch.float64)
    K = intrinsics((4,), torch.float64)
    uv = torch.rand(4, 9, 2, generator=gen, dtype=torch.float64) * 300
    depth = 0.5 + torch.rand(4, 9, generator=gen, dtype=torch.float64)
    depth_map = 0.5 + torch.rand(4, 24, 32, generator=gen, dtype=torch.float64) * 3
    depth_map[:, :4, :4] = float("nan")
    world = transform_points(T, unproject(uv, depth, K))
    lifted = lift_patches(depth_map, K, T, 4)
    seen = visible(world, depth_map, K, T)
    for b in range(4):
        single = transform_points(T[b], unproject(uv[b], depth[b], K[b]))
        torch.testing.assert_close(single, world[b])
        torch.testing.assert_close(lift_patches(depth_map[b : b + 1], K[b : b + 1], T[b : b + 1], 4)[0],
                                   lifted[b], equal_nan=True)
        assert torch.equal(visible(world[b : b + 1], depth_map[b : b + 1], K[b : b + 1], T[b : b + 1])[0],
                           seen[b])


def test_broadcast_shared_intrinsics() -> None:
    uv = torch.rand(3, 5, 2) * 100
    depth = torch.rand(3, 5) + 1
    K = intrinsics((), torch.float32)
    torch.testing.assert_close(unproject(uv, depth, K), unproject(uv, depth, K.expand(3, 3, 3)))


def test_patch_centers_layout() -> None:
    c = patch_centers(16, 24, 8)
    assert c.shape == (2 * 3, 2)
    assert c[0].tolist() == [3.5, 3.5]
    assert c[1].tolist() == [11.5, 3.5]  # row-major: u advances first
    assert c[3].tolist() == [3.5, 11.5]
    assert patch_centers(17, 25, 8, dtype=torch.float64).shape == (6, 2)


def test_lift_patches_median_and_nan() -> None:
    depth = torch.full((1, 8, 8), 2.0)
    depth[0, :4, :4] = float("nan")  # patch 0: no valid depth
    depth[0, :4, 4:] = 0.0  # patch 1: zeros are invalid too
    depth[0, 4:, :4] = torch.tensor([1.0, 1.0, 3.0, 5.0]).repeat(4, 1)  # patch 2: median 1 or 3 of 16
    depth[0, 4, 4] = float("nan")  # patch 3: one invalid pixel ignored
    K = intrinsics((1,), torch.float32, 100, 100, 3.5, 3.5)
    T = torch.eye(4).expand(1, 4, 4)
    points = lift_patches(depth, K, T, 4)
    assert points.shape == (1, 4, 3)
    assert torch.isnan(points[0, :2]).all()
    assert points[0, 2, 2].item() in (1.0, 3.0)
    torch.testing.assert_close(points[0, 3], torch.tensor([0.04, 0.04, 2.0]))
    # World frame: translate the camera by +1 in x.
    T2 = torch.eye(4).expand(1, 4, 4).clone()
    T2[0, 0, 3] = 1.0
    moved = lift_patches(depth, K, T2, 4)
    torch.testing.assert_close(moved[0, 3], torch.tensor([1.04, 0.04, 2.0]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]), holes=st.floats(0.0, 1.0))
def test_lift_patches_depth_is_the_lower_median_of_the_valid_depths(seed: int, dtype: torch.dtype, holes: float) -> None:
    g = torch.Generator().manual_seed(seed)
    depth = (0.5 + 4 * torch.rand(2, 24, 32, generator=g)).round(decimals=1).to(dtype)  # ties, as quantised depth has
    depth[torch.rand(depth.shape, generator=g) < holes] = float("nan")
    depth[:, :8, :8] = 0.0  # a patch without valid depth
    z = lift_patches(depth, torch.eye(3, dtype=dtype).expand(2, 3, 3), torch.eye(4, dtype=dtype).expand(2, 4, 4), 8)[..., 2]
    patches = depth.masked_fill(depth <= 0, float("nan")).reshape(2, 3, 8, 4, 8).permute(0, 1, 3, 2, 4).reshape(2, 12, 64)
    torch.testing.assert_close(z, patches.nanmedian(dim=-1).values, rtol=0, atol=0, equal_nan=True)
    assert z.dtype == dtype


def test_pairwise_distances_hold_far_from_the_origin() -> None:
    offset = torch.tensor([700.0, -300.0, 20.0])
    a, b = torch.zeros(1, 3) + offset, torch.tensor([[0.19, 0.0, 0.0], [0.21, 0.0, 0.0]] * 20) + offset
    torch.testing.assert_close(pairwise_distances(a, b)[0, :2], torch.tensor([0.19, 0.21]), atol=1e-4, rtol=0)
    assert pairwise_distances(torch.full((1, 3), float("nan")), b).isnan().all()
    with pytest.raises(ValueError, match=r"b: expected shape \(\.\.\., \*, 3\), got \(4, 2\)"):
        pairwise_distances(a, torch.zeros(4, 2))


def test_visible_occlusion() -> None:
    # Camera at the origin looking at a wall 2 m away; a box at 1 m covers the left half.
    H, W = 20, 20
    depth = torch.full((1, H, W), 2.0, dtype=torch.float64)
    depth[0, :, :10] = 1.0
    depth[0, 0, 15] = float("nan")
    K = intrinsics((1,), torch.float64, 20, 20, 9.5, 9.5)
    T = torch.eye(4, dtype=torch.float64).expand(1, 4, 4)
    uv = torch.tensor([[[5.0, 5.0], [15.0, 5.0], [5.0, 5.0], [15.0, 5.0], [15.0, 0.0], [30.0, 5.0]]],
                      dtype=torch.float64)
    z = torch.tensor([[2.0, 2.0, 1.0, 2.04, 2.0, 2.0]], dtype=torch.float64)
    points = unproject(uv, z, K)
    points = torch.cat([points, torch.tensor([[[0.0, 0.0, -1.0], [math.nan, 0.0, 1.0]]],
                                             dtype=torch.float64)], dim=1)
    seen = visible(points, depth, K, T, tolerance=0.05)
    # hidden behind box, on the wall, on the box, within tolerance, no depth there, outside,
    # behind the camera, NaN
    assert seen[0].tolist() == [False, True, True, True, False, False, False, False]
    assert not visible(points, depth, K, T, tolerance=0.01)[0, 3]
    assert visible(points, depth, K, T, tolerance=1.1, relative=True)[0, 0]
    # The same scene seen from a camera moved 10 m away sees nothing.
    far = T.clone()
    far[0, 2, 3] = -10.0
    assert not visible(points, depth, K, far)[0].any()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from(DTYPES), stride=st.integers(1, 9),
       height=st.integers(9, 30), width=st.integers(9, 30))
def test_lifted_patches_project_to_their_centres_and_are_visible(
    seed: int, dtype: torch.dtype, stride: int, height: int, width: int
) -> None:
    # lift_patches, patch_centers, project and visible must share one pixel convention: a patch of
    # constant depth lifts to a point that projects back onto its centre, seen by its own camera.
    gen = torch.Generator().manual_seed(seed)
    T = random_se3(gen, (2,), dtype)
    K = intrinsics((2,), dtype, 300, 310, width / 2 - 0.3, height / 2 + 0.2)
    h, w = height // stride, width // stride
    z = (0.5 + 5 * torch.rand(2, h, w, generator=gen, dtype=torch.float64)).to(dtype)
    depth = torch.full((2, height, width), float("nan"), dtype=dtype)
    depth[:, : h * stride, : w * stride] = z.repeat_interleave(stride, 1).repeat_interleave(stride, 2)
    points = lift_patches(depth, K, T, stride)
    uv, zc = project(transform_points(invert_se3(T), points), K)
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(uv, patch_centers(height, width, stride, dtype=dtype).expand(2, -1, -1),
                               atol=tol, rtol=0)
    torch.testing.assert_close(zc, z.reshape(2, -1), atol=tol, rtol=tol)
    assert visible(points, depth, K, T).all()


def test_visible_image_border_is_half_a_pixel_out() -> None:
    H, W = 10, 12
    K = intrinsics((1,), torch.float64, 10, 10, 5.5, 4.5)
    T = torch.eye(4, dtype=torch.float64)[None]
    depth = torch.full((1, H, W), 2.0, dtype=torch.float64)
    uv = torch.tensor([[[-0.49, 3], [-0.51, 3], [W - 0.51, 3], [W - 0.49, 3],
                        [3, -0.49], [3, -0.51], [3, H - 0.51], [3, H - 0.49]]], dtype=torch.float64)
    points = unproject(uv, torch.full((1, 8), 2.0, dtype=torch.float64), K)
    assert visible(points, depth, K, T)[0].tolist() == [True, False] * 4


def test_input_checks() -> None:
    with pytest.raises(ValueError, match=r"uv: expected shape \(\.\.\., \*, 2\)"):
        unproject(torch.zeros(4, 3), torch.zeros(4), torch.eye(3))
    with pytest.raises(ValueError, match="float32/float64"):
        project(torch.zeros(4, 3, dtype=torch.int64), torch.eye(3))
    with pytest.raises(ValueError, match="depth: .* does not match uv"):
        unproject(torch.zeros(4, 2), torch.zeros(5), torch.eye(3))
    with pytest.raises(ValueError, match="batch sizes differ"):
        lift_patches(torch.ones(2, 8, 8), torch.eye(3).expand(3, 3, 3), torch.eye(4).expand(2, 4, 4), 4)
    with pytest.raises(ValueError, match="stride"):
        patch_centers(4, 4, 8)
    with pytest.raises(TypeError, match="torch.Tensor"):
        invert_se3([[1.0]])  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([0.125, 0.5, 2.0, 8.0]))  # exact in floating point
def test_depth_edges_are_scale_invariant_and_ignore_holes(seed: int, scale: float) -> None:
    g = torch.Generator().manual_seed(seed)
    depth = 1.0 + 3.0 * torch.rand(2, 16, 24, generator=g, dtype=torch.float64)
    depth[:, :, :8] = 2.0  # a flat patch column ...
    depth[:, ::3, :8] = float("nan")  # ... with holes
    depth[:, 1::3, :8] = 0.0
    z = lift_patches(depth, torch.eye(3, dtype=torch.float64).expand(2, 3, 3), torch.eye(4, dtype=torch.float64).expand(2, 4, 4), 8)[..., 2]
    edges = depth_edge_patches(depth, z, 8, 0.05)
    assert edges.shape == (2, 6)
    assert not edges.reshape(2, 2, 3)[:, :, 0].any()  # flat, holes do not count
    torch.testing.assert_close(depth_edge_patches(scale * depth, scale * z, 8, 0.05), edges, rtol=0, atol=0)
    assert not depth_edge_patches(depth, z, 8, 10.0).any()  # every deviation tolerated


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), dtype=st.sampled_from(DTYPES), tolerance=st.sampled_from([0.05, 0.1, 2.0]))
def test_depth_edges_equal_the_test_over_the_image_layout(seed: int, dtype: torch.dtype, tolerance: float) -> None:
    # the per-pixel test as first written, over (B, h, stride, w, stride); depths right at the
    # tolerance, holes, zeros, inf and pixels past the last whole patch included
    g = torch.Generator().manual_seed(seed)
    depth = (0.5 + 4 * torch.rand(2, 27, 35, generator=g, dtype=torch.float64)).round(decimals=2)
    z = lift_patches(depth, torch.eye(3, dtype=torch.float64).expand(2, 3, 3), torch.eye(4, dtype=torch.float64).expand(2, 4, 4), 8)[..., 2]
    at_tolerance = (z.float() * (1 + torch.tensor(tolerance, dtype=torch.float32))).double().reshape(2, 3, 1, 4, 1)
    pick = torch.rand(2, 3, 8, 4, 8, generator=g) < 0.2
    depth[:, :24, :32] = torch.where(pick, at_tolerance, depth[:, :24, :32].reshape(2, 3, 8, 4, 8)).reshape(2, 24, 32)
    for value, share in ((float("nan"), 0.1), (0.0, 0.05), (-1.0, 0.02), (float("inf"), 0.02)):
        depth[torch.rand(depth.shape, generator=g) < share] = value
    depth, z = depth.to(dtype), z.to(dtype)
    d = depth[:, :24, :32].float().reshape(2, 3, 8, 4, 8)
    zz = z.reshape(2, 3, 1, 4, 1).float()
    valid = (d > 0) & (d < float("inf"))
    off = ((d - zz).abs() > tolerance * zz) & valid
    expected = off.sum((2, 4), dtype=torch.int32).reshape(2, -1) > 0.1 * valid.sum((2, 4), dtype=torch.int32).reshape(2, -1)
    assert torch.equal(depth_edge_patches(depth, z, 8, tolerance), expected)
