from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.evaluation.retrieval import average_precision, interpolated_pr, patch_retrieval, sample_queries


def _ap(scores, pos, cand=None):
    scores = torch.tensor([scores], dtype=torch.float32)
    pos = torch.tensor([pos])
    cand = torch.ones_like(pos) if cand is None else torch.tensor([cand])
    return average_precision(scores, pos, cand).item()


def test_perfect_ranking_has_ap_one() -> None:
    assert _ap([0.9, 0.8, 0.1, 0.0], [True, True, False, False]) == pytest.approx(1.0)


def test_inverted_ranking() -> None:
    # positives ranked 3rd and 4th of 4: (1/3 + 2/4) / 2
    assert _ap([0.0, 0.1, 0.8, 0.9], [True, True, False, False]) == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_non_candidates_are_ignored_and_no_positive_is_nan() -> None:
    assert _ap([0.1, 0.9, 0.5], [True, False, False], [True, False, False]) == pytest.approx(1.0)
    assert np.isnan(_ap([0.1, 0.9], [False, False]))


def test_ties_rank_together() -> None:
    # a tie is no evidence that the positive comes first: collapsed (constant) features score the
    # share of positives, not a perfect 1.0, as the PR curve's thresholds already counted them
    assert _ap([0.5] * 4, [True, False, False, False]) == pytest.approx(1 / 4)
    # the positives tied with a negative at the top: both at precision 2/3, then 3/4
    assert _ap([0.9, 0.9, 0.9, 0.1, 0.2], [True, True, False, False, True]) == pytest.approx((2 / 3 * 2 + 3 / 4) / 3)


def test_patch_retrieval_of_collapsed_features_is_not_perfect() -> None:
    points = torch.tensor([[[0.0, 0, 0], [5.0, 0, 0]], [[0.0, 0, 0], [5.0, 0, 0]]])
    features = torch.ones(2, 2, 4) / 2
    result = patch_retrieval(features, points, torch.tensor([0, 1]))
    assert result.ap == pytest.approx(0.5)


def reference_ap(scores: np.ndarray, pos: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = pos[order]
    prec = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(prec[hits].mean())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-1, 1, allow_nan=False), st.booleans()), min_size=1, max_size=30, unique_by=lambda t: t[0]))
def test_matches_sorting_reference_without_ties(items) -> None:
    scores = np.array([s for s, _ in items], dtype=np.float32)
    pos = np.array([p for _, p in items])
    if len(np.unique(scores)) != len(scores) or not pos.any():
        return
    assert _ap(scores.tolist(), pos.tolist()) == pytest.approx(reference_ap(scores, pos), abs=1e-6)


def test_pr_curve_of_perfect_ranking_is_one() -> None:
    s = torch.tensor([[0.9, 0.8, 0.1]])
    p = torch.tensor([[True, True, False]])
    assert np.allclose(interpolated_pr(s, p, torch.ones_like(p)), 1.0)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        average_precision(torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.bool), torch.zeros(2, 3, dtype=torch.bool))


def test_patch_retrieval_with_features_that_identify_the_3d_point() -> None:
    # Every frame sees the same 50 points; a one-hot feature per point ranks its copies first: AP 1.
    gen = torch.Generator().manual_seed(0)
    pts = (torch.rand(1, 50, 3, generator=gen) * 2).repeat(4, 1, 1)
    feats = torch.eye(50)[None].repeat(4, 1, 1)
    pts[2, :5] = float("nan")
    q = sample_queries(pts, 20, seed=0)
    assert len(q) == 20 and torch.isfinite(pts.reshape(-1, 3)[q]).all()
    res = patch_retrieval(feats, pts, q, rho=0.01)
    assert res.num_queries == 20
    assert res.ap == pytest.approx(1.0)
    assert np.allclose(res.pr_curve, 1.0)
    shuffled = torch.stack([f[torch.randperm(50, generator=gen)] for f in feats])
    assert patch_retrieval(shuffled, pts, q, rho=0.01).ap < 0.5


@settings(max_examples=10, deadline=None)
@given(offset=st.tuples(*[st.floats(-2000.0, 2000.0)] * 3))
def test_patch_retrieval_does_not_depend_on_where_the_map_origin_is(offset: tuple[float, float, float]) -> None:
    # |a|^2 + |b|^2 - 2ab (cdist's fast path) cancels at hundreds of metres: at 700 m, in float32,
    # points 0.19 m apart measured 0 m and points 0.21 m apart 0.25 m
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(3, 40, 3, generator=gen, dtype=torch.float64)
    pts[1:] = pts[0] + 0.02 * torch.randn(2, 40, 3, generator=gen, dtype=torch.float64)  # positives at rho = 0.05
    feats = torch.nn.functional.normalize(torch.randn(3, 40, 8, generator=gen), dim=-1)
    q = torch.arange(40)
    near = patch_retrieval(feats, pts.float(), q, rho=0.05)
    far = patch_retrieval(feats, (pts + torch.tensor(offset, dtype=torch.float64)).float(), q, rho=0.05)
    np.testing.assert_allclose(far.per_query, near.per_query, atol=0.05)


def test_query_without_a_3d_point_is_not_scored() -> None:
    # Two frames see the same points; a point near the origin would be every depthless query's
    # positive if its missing point were read as (0, 0, 0).
    pts = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [float("nan")] * 3]]).repeat(2, 1, 1)
    feats = torch.eye(3)[None].repeat(2, 1, 1)
    res = patch_retrieval(feats, pts, torch.tensor([0, 1, 2]), rho=0.1)
    assert res.num_queries == 2
    assert np.isnan(res.per_query[2]) and res.ap == pytest.approx(1.0)
