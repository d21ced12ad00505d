from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.evaluation.pose import pose_error
from locus_core.mapping.projective import associate, patch_normals, point_to_plane_step, projective_refine
from locus_core.mapping.ransac import perturb, so3_exp

GRID, STRIDE = (24, 32), 8
K = np.array([[230.0, 0, 128], [0, 230.0, 96], [0, 0, 1]])


def patch_points(rng: np.random.Generator) -> np.ndarray:
    """(h*w, 3) camera points of the patch centres of a bumpy surface about 2 m away (non-planar, so
    every degree of freedom of a pose is pinned)."""
    h, w = GRID
    v, u = np.mgrid[:h, :w].reshape(2, -1) * STRIDE + (STRIDE - 1) / 2
    z = 2.0 + 0.4 * np.sin(u / 40.0) * np.cos(v / 30.0) + 0.3 * (u > 128) + rng.uniform(0, 0.02, u.shape)
    return np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)


def pose(rng: np.random.Generator) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = so3_exp(rng.normal(size=3))
    T[:3, 3] = rng.normal(size=3)
    return T


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_landmarks_at_patch_centres_associate_with_their_own_patch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = patch_points(rng)
    T = pose(rng)
    world = points @ T[:3, :3].T + T[:3, 3]
    behind = T[:3, :3] @ np.array([0.0, 0.0, -2.0]) + T[:3, 3]
    outside = T[:3, :3] @ np.array([50.0, 0.0, 1.0]) + T[:3, 3]
    rows, patches = associate(T, np.vstack([world, behind, outside]), K, GRID, STRIDE)
    np.testing.assert_array_equal(rows, np.arange(len(world)))
    np.testing.assert_array_equal(patches, np.arange(len(world)))


@settings(max_examples=50, deadline=None)
@given(st.floats(-0.49, GRID[1] * STRIDE - 0.51), st.floats(-0.49, GRID[0] * STRIDE - 0.51))
def test_a_landmark_associates_with_the_patch_holding_the_pixel_it_projects_into(u: float, v: float) -> None:
    # pixel centres are integers (as K's), so pixel (round(u), round(v)) is the one hit
    z = 2.0
    point = np.array([[(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z]])
    rows, patches = associate(np.eye(4), point, K, GRID, STRIDE)
    col, row = int(np.floor(u + 0.5)) // STRIDE, int(np.floor(v + 0.5)) // STRIDE
    assert rows.tolist() == [0] and patches.tolist() == [row * GRID[1] + col]


@pytest.mark.parametrize("seed", range(5))
def test_a_perturbed_pose_is_refined_to_the_true_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = patch_points(rng)
    T = pose(rng)
    landmarks = (points @ T[:3, :3].T + T[:3, 3])[rng.permutation(len(points))[:400]]
    start = perturb(T, rng.normal(size=6) * np.array([0.01, 0.01, 0.01, 0.005, 0.005, 0.005]))
    assert pose_error(start, T)[0] > 0.005
    fit = projective_refine(start, landmarks, points, K, GRID, STRIDE, 0.05, 0.02, rounds=20)
    assert fit is not None and fit.rounds < 20
    dt, dr = pose_error(fit.T, T)
    assert dt < 1e-4 and dr < 1e-2
    assert len(fit.patches) == len(fit.landmarks) >= 380  # all but those the start pose put out of view


def test_too_few_pairs_and_a_mismatched_grid() -> None:
    rng = np.random.default_rng(0)
    points = patch_points(rng)
    T = np.eye(4)
    assert projective_refine(T, points[:10], points, K, GRID, STRIDE, 0.05, 0.02, min_inliers=20) is None
    points[: len(points) // 2] = np.nan  # patches without depth pair with nothing
    fit = projective_refine(T, points[len(points) // 2 :], points, K, GRID, STRIDE, 0.05, 0.02)
    assert fit is not None and len(fit.landmarks) == len(points) // 2
    with pytest.raises(ValueError, match="does not match grid"):
        projective_refine(T, points, points[:-1], K, GRID, STRIDE, 0.05, 0.02)
    with pytest.raises(ValueError, match="rounds must be >= 1, got 0"):
        projective_refine(T, points, points, K, GRID, STRIDE, 0.05, 0.02, rounds=0)


def test_max_landmarks_thins_the_landmarks_in_view() -> None:
    rng = np.random.default_rng(1)
    points = patch_points(rng)
    fit = projective_refine(np.eye(4), points, points, K, GRID, STRIDE, 0.05, 0.02, max_landmarks=100)
    assert fit is not None and 90 <= len(fit.landmarks) <= 100


def surface_point(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 3) camera points of ``patch_points``' bumpy surface (without its noise) at pixels (u, v)."""
    z = 2.0 + 0.4 * np.sin(u / 40.0) * np.cos(v / 30.0) + 0.3 * (u > 128)
    return np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)


@pytest.mark.parametrize("seed", range(3))
def test_landmarks_anywhere_inside_their_patch_do_not_pull_the_pose(seed: int) -> None:
    # a map's landmarks are other views' patch centres: they fall anywhere inside the query patch
    # they project onto; that offset lies along the surface and must not move the pose
    rng = np.random.default_rng(seed)
    h, w = GRID
    v, u = np.mgrid[:h, :w].reshape(2, -1) * STRIDE + (STRIDE - 1) / 2
    points = surface_point(u, v, rng)
    T = pose(rng)
    lu, lv = rng.uniform(-0.5, w * STRIDE - 0.5, 600), rng.uniform(-0.5, h * STRIDE - 0.5, 600)
    landmarks = surface_point(lu, lv, rng) @ T[:3, :3].T + T[:3, 3]
    start = perturb(T, rng.normal(size=6) * np.array([0.01, 0.01, 0.01, 0.005, 0.005, 0.005]))
    fit = projective_refine(start, landmarks, points, K, GRID, STRIDE, 0.05, 0.02, rounds=20)
    assert fit is not None
    dt, dr = pose_error(fit.T, T)
    assert dt < 0.003 and dr < 0.1


def test_patch_normals_of_a_plane_face_the_camera_up_to_borders_and_holes() -> None:
    h, w = GRID
    v, u = np.mgrid[:h, :w].reshape(2, -1) * STRIDE + (STRIDE - 1) / 2
    normal = np.array([0.3, -0.2, -1.0]) / np.linalg.norm([0.3, -0.2, -1.0])
    # the plane n . X = -2 seen through each pixel ray
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=1)
    points = rays * (-2.0 / (rays @ normal))[:, None]
    points[5 * w + 7] = np.nan
    normals = patch_normals(points, GRID)
    assert np.isnan(normals[5 * w + 7]).all()
    good = np.delete(np.arange(h * w), 5 * w + 7)
    np.testing.assert_allclose(normals[good], np.broadcast_to(normal, (len(good), 3)), atol=1e-9)
    isolated = np.full((h * w, 3), np.nan)
    isolated[0] = points[0]
    assert np.isnan(patch_normals(isolated, GRID)).all()


def test_a_point_to_plane_step_does_not_slide_along_a_single_plane() -> None:
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(-1, 1, (200, 2)), np.full(200, 2.0)]
    normals = np.tile([0.0, 0.0, -1.0], (200, 1))
    D = point_to_plane_step(points, normals, points + [0.3, -0.2, 0.05], 1.0)
    np.testing.assert_allclose(D[:3, 3], [0.0, 0.0, 0.05], atol=1e-9)
    np.testing.assert_allclose(D[:3, :3], np.eye(3), atol=1e-9)


def test_no_landmark_in_view_is_no_fit() -> None:
    points = patch_points(np.random.default_rng(2))
    assert projective_refine(np.eye(4), np.zeros((0, 3)), points, K, GRID, STRIDE, 0.05, 0.02) is None
    assert projective_refine(np.eye(4), -points, points, K, GRID, STRIDE, 0.05, 0.02) is None  # all behind


def padded_patch_normals(points_cam: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``patch_normals`` as first written (NaN-padded neighbours, ``np.cross``): its reference."""
    h, w = grid
    P = points_cam.reshape(h, w, 3)
    tangents = []
    for axis in (0, 1):
        padded = np.pad(P, [(1, 1) if a == axis else (0, 0) for a in range(3)], constant_values=np.nan)
        before, after = np.take(padded, range(0, P.shape[axis]), axis), np.take(padded, range(2, P.shape[axis] + 2), axis)
        d = after - before
        d = np.where(np.isnan(d), after - P, d)
        tangents.append(np.where(np.isnan(d), P - before, d))
    n = np.cross(tangents[1], tangents[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[(n * P).sum(-1) > 0] *= -1
    n[np.isnan(P).any(-1)] = np.nan
    return n.reshape(-1, 3)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_patch_normals_equal_their_padded_reference(seed: int, holes: float) -> None:
    rng = np.random.default_rng(seed)
    points = patch_points(rng)
    points[rng.random(len(points)) < holes] = np.nan
    np.testing.assert_array_equal(patch_normals(points, GRID), padded_patch_normals(points, GRID))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(6, 300))
def test_point_to_plane_step_equals_its_stacked_reference(seed: int, n: int) -> None:
    # the step as first written: np.cross, np.hstack; bit for bit, degenerate (planar) sets included
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n, 3))
    normals = rng.normal(size=(n, 3)) if seed % 2 else np.tile([0.0, 0.6, -0.8], (n, 1))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    targets = points + rng.normal(scale=0.02, size=(n, 3))
    scale = rng.uniform(0.005, 0.05, n)
    r = np.einsum("ij,ij->i", points - targets, normals)
    weights = 1.0 / (1.0 + (r / scale) ** 2)
    J = np.hstack([np.cross(points, normals), normals])
    x = np.linalg.lstsq((J * weights[:, None]).T @ J, -(J * weights[:, None]).T @ r, rcond=1e-9)[0]
    D = point_to_plane_step(points, normals, targets, scale)
    np.testing.assert_array_equal(D[:3, :3], so3_exp(x[:3]))
    np.testing.assert_array_equal(D[:3, 3], x[3:])


@pytest.mark.parametrize("seed", range(3))
def test_the_fits_pairs_name_rows_of_the_landmarks_given(seed: int) -> None:
    # landmarks in any order, many out of view, thinned: each pair's landmark row is the one its
    # patch's point lands near under the fitted pose
    rng = np.random.default_rng(seed)
    points = patch_points(rng)
    T = pose(rng)
    world = points @ T[:3, :3].T + T[:3, 3]
    behind = T[:3, :3] @ np.array([0.0, 0.0, -2.0]) + T[:3, 3] + rng.normal(size=(300, 3)) * 0.1
    landmarks = np.vstack([world, behind])[rng.permutation(len(world) + 300)]
    start = perturb(T, rng.normal(size=6) * np.array([0.005, 0.005, 0.005, 0.002, 0.002, 0.002]))
    fit = projective_refine(start, landmarks, points, K, GRID, STRIDE, 0.05, 0.02, max_landmarks=200)
    assert fit is not None and 150 <= len(fit.landmarks) <= 200 and len(np.unique(fit.landmarks)) == len(fit.landmarks)
    moved = points[fit.patches] @ fit.T[:3, :3].T + fit.T[:3, 3]
    assert np.linalg.norm(moved - landmarks[fit.landmarks], axis=1).max() < 0.05
    np.testing.assert_array_equal(fit.normals, patch_normals(points, GRID)[fit.patches])
