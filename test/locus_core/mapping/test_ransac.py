from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.evaluation.pose import pose_error
from locus_core.mapping.ransac import kabsch, perturb, pnp_ransac, pose_covariance, ransac_rigid, refine_rigid, so3_exp


def random_pose(rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = so3_exp(rng.normal(size=3))
    T[:3, 3] = rng.normal(size=3) * scale
    return T


def test_kabsch_exact_and_batched() -> None:
    rng = np.random.default_rng(0)
    T = random_pose(rng)
    src = rng.normal(size=(2, 10, 3))
    dst = src @ T[:3, :3].T + T[:3, 3]
    out = kabsch(src, dst)
    assert out.shape == (2, 4, 4)
    np.testing.assert_allclose(out, np.broadcast_to(T, (2, 4, 4)), atol=1e-9)
    with pytest.raises(ValueError, match="N>=3"):
        kabsch(src[:, :2], dst[:, :2])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), outlier_ratio=st.floats(0.0, 0.6))
def test_ransac_recovers_transform_with_outliers(seed: int, outlier_ratio: float) -> None:
    rng = np.random.default_rng(seed)
    T = random_pose(rng, 2.0)
    n = 200
    src = rng.uniform(-2, 2, size=(n, 3))
    dst = src @ T[:3, :3].T + T[:3, 3] + rng.normal(scale=0.005, size=(n, 3))
    bad = rng.random(n) < outlier_ratio
    dst[bad] = rng.uniform(-5, 5, size=(bad.sum(), 3))
    fit = ransac_rigid(src, dst, 0.03, iterations=300, seed=seed)
    assert fit is not None
    dt, dr = pose_error(fit.T, T)
    assert dt < 0.01 and dr < 0.5
    assert fit.inliers[~bad].mean() > 0.95
    assert fit.covariance is not None and np.all(np.linalg.eigvalsh(fit.covariance) > 0)


def test_ransac_gives_up_on_pure_noise() -> None:
    rng = np.random.default_rng(1)
    src, dst = rng.uniform(-2, 2, (100, 3)), rng.uniform(-2, 2, (100, 3))
    assert ransac_rigid(src, dst, 0.01, min_inliers=20) is None
    assert ransac_rigid(src[:2], dst[:2], 0.01) is None


@pytest.mark.parametrize("solver", ["epnp", "ap3p"])
def test_pnp_recovers_pose_with_outliers(solver: str) -> None:
    rng = np.random.default_rng(2)
    K = np.array([[300.0, 0, 160], [0, 300, 128], [0, 0, 1]])
    T_map_cam = random_pose(rng, 0.5)
    cam = np.stack([rng.uniform(-1.5, 1.5, 300), rng.uniform(-1, 1, 300), rng.uniform(1, 4, 300)], 1)
    world = cam @ T_map_cam[:3, :3].T + T_map_cam[:3, 3]
    uv = (cam / cam[:, 2:]) @ K.T
    uv = uv[:, :2] + rng.normal(scale=0.5, size=(300, 2))
    uv[:90] = rng.uniform(0, 320, (90, 2))
    fit = pnp_ransac(world, uv, K, 4.0, solver=solver)
    assert fit is not None
    dt, dr = pose_error(fit.T, T_map_cam)
    assert dt < 0.02 and dr < 0.5
    assert fit.inliers[90:].mean() > 0.95
    assert fit.covariance is not None and fit.covariance.shape == (6, 6)


def test_pnp_solver_is_checked() -> None:
    with pytest.raises(ValueError, match="solver must be one of epnp, ap3p, got 'p3p'"):
        pnp_ransac(np.zeros((10, 3)), np.zeros((10, 2)), np.eye(3), 4.0, solver="p3p")


def test_covariance_scales_with_noise() -> None:
    rng = np.random.default_rng(3)
    src = rng.uniform(-2, 2, (100, 3))
    covs = []
    for noise in (0.001, 0.01):
        dst = src + rng.normal(scale=noise, size=src.shape)
        T = kabsch(src, dst)
        covs.append(pose_covariance(lambda T_: (src @ T_[:3, :3].T + T_[:3, 3] - dst).ravel(), T))
    ratio = np.trace(covs[1][:3, :3]) / np.trace(covs[0][:3, :3])
    assert 50 < ratio < 200  # variance grows with noise squared
    np.testing.assert_allclose(perturb(np.eye(4), np.zeros(6)), np.eye(4))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_robust_refit_resists_neighbour_matches(seed: int) -> None:
    # 300 exact matches and 60 that went to a neighbouring patch 4 cm off in one direction: inside a
    # 5 cm threshold, so plain least squares is pulled; the Cauchy refit stays close to the truth.
    rng = np.random.default_rng(seed)
    T = random_pose(rng)
    src = rng.uniform(-1.5, 1.5, size=(360, 3))
    dst = src @ T[:3, :3].T + T[:3, 3]
    dst[300:] += np.array([0.04, 0.0, 0.0])
    plain = kabsch(src, dst)
    robust = refine_rigid(src, dst, plain, 0.025)
    assert pose_error(robust, T)[0] < 0.5 * pose_error(plain, T)[0]
    np.testing.assert_allclose(refine_rigid(src[:300], dst[:300], T, 0.025), T, atol=1e-9)  # exact data: a fixed point
