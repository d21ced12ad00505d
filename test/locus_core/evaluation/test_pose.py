from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from locus_core.evaluation.pose import (
    guided_top_k,
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


def test_select_pairs_records_the_bin_of_a_float32_edge_value() -> None:
    # 210 of 300 patches: float32 0.7 is 0.69999999 as a float64, below the 0.7 edge it was drawn above
    cov = np.array([[1, 210 / 300], [210 / 300, 1]], np.float32)
    assert [(p.i, p.j, p.bin) for p in select_pairs(cov, bins=(0.1, 0.4, 0.7, 1.0), per_bin=5)] == [(0, 1, 2)]


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
def test_guided_top_k_without_limit_keeps_each_patchs_k_most_similar(seed: int) -> None:
    a, b, pa, pb = _features_and_points(seed)
    ia, ib = guided_top_k(a, b, pa, pb, float("inf"), 3)
    assert torch.equal(ia, torch.arange(len(a)).repeat_interleave(3))
    assert torch.equal(ib.view(-1, 3), (a @ b.T).topk(3, dim=1).indices)
    assert all(torch.equal(x, y) for x, y in zip(guided_top_k(a, b, pa, pb, float("inf"), 1), (torch.arange(len(a)), (a @ b.T).argmax(1))))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 4, 100])
def test_guided_top_k_keeps_the_k_most_similar_within_radius(seed: int, k: int) -> None:
    a, b, pa, pb = _features_and_points(seed)
    ia, ib = guided_top_k(a, b, pa, pb, 0.3, k)
    near = torch.cdist(pa, pb) < 0.3
    sim = a @ b.T
    assert len(ia) > 0 and bool(near[ia, ib].all()) and bool((ia[1:] >= ia[:-1]).all())
    for i in range(len(a)):
        partners = ib[ia == i]
        assert len(partners) == min(k, int(near[i].sum()))  # all it has in range, when fewer than k
        if len(partners):  # and none left out is more similar than one kept
            left_out = near[i].clone()
            left_out[partners] = False
            assert not left_out.any() or sim[i][left_out].max() <= sim[i, partners].min()


def test_guided_top_k_picks_the_near_one_of_two_lookalikes() -> None:
    a = torch.tensor([[1.0, 0.0]])
    b = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1]]), dim=-1)
    pa, pb = torch.zeros(1, 3), torch.tensor([[5.0, 0, 0], [0.1, 0, 0]])
    ia, ib = guided_top_k(a, b, pa, pb, 0.3, 2)
    assert ia.tolist() == [0] and ib.tolist() == [1]
    assert mutual_nearest(a, b)[1].tolist() == [0]
    empty = guided_top_k(a, b, pa + 10, pb, 0.3, 2)
    assert len(empty[0]) == 0 and len(empty[1]) == 0


def test_guided_top_k_checks_its_input() -> None:
    with pytest.raises(ValueError, match="points"):
        guided_top_k(torch.zeros(3, 4), torch.zeros(2, 4), torch.zeros(3, 2), torch.zeros(2, 3), 0.1, 2)
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        guided_top_k(torch.zeros(3, 4), torch.zeros(2, 4), torch.zeros(3, 3), torch.zeros(2, 3), 0.1, 0)


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
