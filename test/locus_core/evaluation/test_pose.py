from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from locus_core.evaluation.pose import (
    guided_mutual_nearest,
    match_quality,
    mutual_nearest,
    pose_error,
    select_pairs,
    summarize,
)


def _T(rotvec_deg, t):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(np.radians(rotvec_deg)).as_matrix()
    T[:3, 3] = t
    return T


def test_pose_error_known_offsets() -> None:
    trans, rot = pose_error(_T([0, 0, 10], [0.3, 0, 0.4]), _T([0, 0, 0], [0, 0, 0]))
    assert trans == pytest.approx(0.5)
    assert rot == pytest.approx(10.0)
    assert pose_error(None, np.eye(4)) == (float("inf"), float("inf"))


def test_summarize_counts_failures_as_infinite() -> None:
    errors = np.array([[0.05, 1.0], [0.2, 1.0], [np.inf, np.inf]])
    s = summarize(errors)
    assert s["median_trans_m"] == pytest.approx(0.2)
    assert s["success_rate"] == pytest.approx(1 / 3)
    assert s["pairs"] == 3
    assert np.isnan(summarize(np.zeros((0, 2)))["median_rot_deg"])


def test_select_pairs_respects_bins() -> None:
    cov = np.array([[1, 0.2, 0.5, 0.9], [0.3, 1, 0.05, 0.8], [0.6, 0.1, 1, 0.45], [0.95, 0.7, 0.5, 1]])
    pairs = select_pairs(cov, bins=(0.1, 0.4, 0.7, 1.0), per_bin=5)
    got = {(p.i, p.j): p.covisibility for p in pairs}
    assert got == {(0, 1): 0.2, (0, 2): 0.5, (0, 3): 0.9, (1, 3): 0.7, (2, 3): 0.45}


def test_mutual_nearest() -> None:
    a = torch.eye(3)
    b = torch.tensor([[0.0, 1, 0], [1, 0, 0], [0.9, 0.1, 0]])
    ia, ib = mutual_nearest(a, torch.nn.functional.normalize(b, dim=-1))
    assert sorted(zip(ia.tolist(), ib.tolist())) == [(0, 1), (1, 0)]


def _features_and_points(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """40 and 30 random unit features in 8-d, with random points in a unit cube."""
    g = torch.Generator().manual_seed(seed)
    a = torch.nn.functional.normalize(torch.randn(40, 8, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(30, 8, generator=g), dim=-1)
    return a, b, torch.rand(40, 3, generator=g), torch.rand(30, 3, generator=g)


@pytest.mark.parametrize("seed", range(5))
def test_guided_mutual_nearest_without_limit_is_mutual_nearest(seed: int) -> None:
    a, b, pa, pb = _features_and_points(seed)
    assert all(torch.equal(x, y) for x, y in zip(guided_mutual_nearest(a, b, pa, pb, float("inf")), mutual_nearest(a, b)))


@pytest.mark.parametrize("seed", range(5))
def test_guided_mutual_nearest_keeps_pairs_within_radius(seed: int) -> None:
    a, b, pa, pb = _features_and_points(seed)
    ia, ib = guided_mutual_nearest(a, b, pa, pb, 0.3)
    assert len(ia) > 0 and ((pa[ia] - pb[ib]).norm(dim=-1) < 0.3).all()
    sim = a @ b.T
    near = torch.cdist(pa, pb) < 0.3
    for i, j in zip(ia.tolist(), ib.tolist()):  # mutual best among the pairs in range
        assert sim[i, j] == sim[i][near[i]].max() and sim[i, j] == sim[:, j][near[:, j]].max()


def test_guided_mutual_nearest_picks_the_near_one_of_two_lookalikes() -> None:
    a = torch.tensor([[1.0, 0.0]])
    b = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1]]), dim=-1)
    pa, pb = torch.zeros(1, 3), torch.tensor([[5.0, 0, 0], [0.1, 0, 0]])
    ia, ib = guided_mutual_nearest(a, b, pa, pb, 0.3)
    assert ia.tolist() == [0] and ib.tolist() == [1]
    assert mutual_nearest(a, b)[1].tolist() == [0]
    empty = guided_mutual_nearest(a, b, pa + 10, pb, 0.3)
    assert len(empty[0]) == 0 and len(empty[1]) == 0


def test_guided_mutual_nearest_checks_shapes() -> None:
    with pytest.raises(ValueError, match="points"):
        guided_mutual_nearest(torch.zeros(3, 4), torch.zeros(2, 4), torch.zeros(3, 2), torch.zeros(2, 3), 0.1)


def test_match_quality_pools_pairs() -> None:
    q = match_quality([np.array([0.01, 0.1, 0.3]), np.array([0.02])], inlier_m=0.05, rho=0.2)
    assert q["matches_per_pair"] == 2.0
    assert q["match_median_error_m"] == pytest.approx(0.06)
    assert q["match_within_inlier_m"] == 0.5
    assert q["match_within_rho"] == 0.75


def test_match_quality_without_matches_is_nan() -> None:
    assert np.isnan(match_quality([], 0.05, 0.2)["matches_per_pair"])
    q = match_quality([np.zeros(0)], 0.05, 0.2)
    assert q["matches_per_pair"] == 0 and np.isnan(q["match_within_rho"])
