from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.errors import LocusError
from locus_core.losses import LossInputError, vectorized_smooth_ap


def reference_smooth_ap(
    landmarks: torch.Tensor,
    patches: torch.Tensor,
    positive: torch.Tensor,
    candidates: torch.Tensor,
    temperature: float = 0.01,
    per_row: bool = True,
) -> torch.Tensor:
    """The definition, written literally: one (|P_a| x |C_a|) sigmoid matrix per landmark row."""
    s = landmarks @ patches.T
    if not per_row:
        s, positive, candidates = s.reshape(1, -1), positive.reshape(1, -1), candidates.reshape(1, -1)
    ratios = []
    for a in range(s.shape[0]):
        pos = positive[a].nonzero().flatten()
        cand = candidates[a].nonzero().flatten()
        if pos.numel() == 0:
            continue
        si = s[a, pos][:, None]
        not_self_c = cand[None, :] != pos[:, None]
        not_self_p = pos[None, :] != pos[:, None]
        r_all = 1 + (torch.sigmoid((s[a, cand][None, :] - si) / temperature) * not_self_c).sum(1)
        r_pos = 1 + (torch.sigmoid((s[a, pos][None, :] - si) / temperature) * not_self_p).sum(1)
        ratios.append(r_pos / r_all)
    return torch.cat(ratios).mean()


def random_problem(
    n: int, m: int, d: int = 16, *, p_pos: float = 0.05, p_cand: float = 0.8, seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    landmarks = torch.nn.functional.normalize(torch.randn(n, d, generator=gen, dtype=dtype), dim=1)
    patches = torch.nn.functional.normalize(torch.randn(m, d, generator=gen, dtype=dtype), dim=1)
    candidates = torch.rand(n, m, generator=gen) < p_cand
    positive = (torch.rand(n, m, generator=gen) < p_pos) & candidates
    candidates[0, 0] = positive[0, 0] = True  # at least one positive pair
    return landmarks, patches, positive, candidates


def value_and_grads(fn, landmarks, patches, positive, candidates, **kwargs):
    landmarks = landmarks.detach().clone().requires_grad_()
    patches = patches.detach().clone().requires_grad_()
    value = fn(landmarks, patches, positive, candidates, **kwargs)
    value.backward()
    return value.detach(), landmarks.grad, patches.grad


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("per_row", [True, False])
@pytest.mark.parametrize("temperature", [0.01, 0.1])
def test_matches_reference_in_float64(per_row: bool, temperature: float) -> None:
    problem = random_problem(12, 300, seed=1)
    ours = value_and_grads(vectorized_smooth_ap, *problem, temperature=temperature, per_row=per_row)
    ref = value_and_grads(reference_smooth_ap, *problem, temperature=temperature, per_row=per_row)
    for got, want in zip(ours, ref):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_float32_value_and_gradient_cosine_at_medium_size() -> None:
    problem64 = random_problem(32, 2048, d=64, p_pos=0.02, seed=2)
    problem32 = tuple(t.float() if t.is_floating_point() else t for t in problem64)
    ours = value_and_grads(vectorized_smooth_ap, *problem32)
    ref = value_and_grads(reference_smooth_ap, *problem64)
    assert abs(float(ours[0]) - float(ref[0])) < 1e-5
    assert cosine(ours[1], ref[1]) >= 0.99999
    assert cosine(ours[2], ref[2]) >= 0.99999


def test_gradcheck_float64() -> None:
    landmarks, patches, positive, candidates = random_problem(4, 15, d=5, p_pos=0.3, p_cand=0.7, seed=3)
    for per_row in (True, False):
        assert torch.autograd.gradcheck(
            lambda lm, pt: vectorized_smooth_ap(lm, pt, positive, candidates, 0.2, per_row=per_row),
            (landmarks.requires_grad_(), patches.requires_grad_()),
        )


def test_chunk_size_does_not_change_the_result() -> None:
    problem = random_problem(8, 500, seed=4, p_pos=0.1)
    whole = value_and_grads(vectorized_smooth_ap, *problem, chunk_elements=10**9)
    for chunk in (1, 700, 5000):
        for got, want in zip(value_and_grads(vectorized_smooth_ap, *problem, chunk_elements=chunk), whole):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_rows_without_positives_are_ignored() -> None:
    landmarks, patches, positive, candidates = random_problem(6, 200, seed=5)
    base = vectorized_smooth_ap(landmarks, patches, positive, candidates)
    extra = torch.zeros(1, 200, dtype=torch.bool)
    grown = vectorized_smooth_ap(
        torch.cat([landmarks, landmarks[:1]]), patches, torch.cat([positive, extra]), torch.cat([candidates, ~extra])
    )
    torch.testing.assert_close(grown, base)


def test_no_positive_at_all_gives_zero_and_zero_gradients() -> None:
    landmarks, patches, _, candidates = random_problem(4, 50, seed=6)
    landmarks.requires_grad_()
    patches.requires_grad_()
    value = vectorized_smooth_ap(landmarks, patches, torch.zeros_like(candidates), candidates)
    value.backward()
    assert float(value.detach()) == 0.0
    assert not landmarks.grad.any() and not patches.grad.any()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 4), m=st.integers(1, 12), seed=st.integers(0, 10_000), per_row=st.booleans(),
       temperature=st.sampled_from([0.01, 0.5]), chunk=st.integers(1, 30))
def test_matches_reference_on_degenerate_masks_and_ties(
    n: int, m: int, seed: int, per_row: bool, temperature: float, chunk: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    # Two-level descriptors: many exact ties between similarities.
    landmarks = torch.randint(0, 2, (n, 3), generator=gen).double()
    patches = torch.randint(0, 2, (m, 3), generator=gen).double()
    # Per row: all don't-care, only positives, no positive, or mixed.
    kind = torch.randint(0, 4, (n, 1), generator=gen)
    mixed_cand = torch.rand(n, m, generator=gen) < 0.7
    mixed_pos = (torch.rand(n, m, generator=gen) < 0.4) & mixed_cand
    candidates = torch.where(kind == 0, False, torch.where(kind == 1, True, mixed_cand))
    positive = torch.where(kind == 1, True, torch.where(kind == 3, mixed_pos, False))
    problem = (landmarks, patches, positive, candidates)
    ours = value_and_grads(vectorized_smooth_ap, *problem, temperature=temperature, per_row=per_row,
                           chunk_elements=chunk)
    assert all(torch.isfinite(t).all() for t in ours)
    if not positive.any():
        assert float(ours[0]) == 0.0 and not ours[1].any() and not ours[2].any()
        return
    ref = value_and_grads(reference_smooth_ap, *problem, temperature=temperature, per_row=per_row)
    for got, want in zip(ours, ref):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1.0, 30.0, 1e4]), per_row=st.booleans())
def test_finite_at_temperature_001_for_extreme_similarities(seed: int, scale: float, per_row: bool) -> None:
    # |s| / tau up to 1e10: every sigmoid saturates to exactly 0 or 1, slopes underflow to 0.
    landmarks, patches, positive, candidates = random_problem(5, 60, d=4, p_pos=0.2, seed=seed,
                                                              dtype=torch.float32)
    value, g_lm, g_pt = value_and_grads(vectorized_smooth_ap, landmarks * scale, patches * scale, positive,
                                        candidates, temperature=0.01, per_row=per_row)
    assert 0 < float(value) <= 1
    assert torch.isfinite(g_lm).all() and torch.isfinite(g_pt).all()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 5), m=st.integers(2, 40), seed=st.integers(0, 10_000), per_row=st.booleans())
def test_permuting_patches_keeps_the_value(n: int, m: int, seed: int, per_row: bool) -> None:
    landmarks, patches, positive, candidates = random_problem(n, m, d=4, p_pos=0.3, seed=seed)
    perm = torch.randperm(m, generator=torch.Generator().manual_seed(seed))
    value = vectorized_smooth_ap(landmarks, patches, positive, candidates, 0.1, per_row=per_row)
    permuted = vectorized_smooth_ap(landmarks, patches[perm], positive[:, perm], candidates[:, perm], 0.1,
                                    per_row=per_row)
    assert math.isclose(float(value), float(permuted), rel_tol=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 5), m=st.integers(2, 40), extra=st.integers(1, 20), seed=st.integers(0, 10_000))
def test_dont_care_patches_change_nothing(n: int, m: int, extra: int, seed: int) -> None:
    landmarks, patches, positive, candidates = random_problem(n, m, d=4, p_pos=0.3, seed=seed)
    # Don't-care patches identical to positives would outrank everything if they were counted.
    more = torch.cat([patches, patches[positive.nonzero()[:, 1]][:1].expand(extra, -1)])
    off = torch.zeros(n, extra, dtype=torch.bool)
    value = vectorized_smooth_ap(landmarks, patches, positive, candidates, 0.1)
    grown = vectorized_smooth_ap(landmarks, more, torch.cat([positive, off], 1), torch.cat([candidates, off], 1), 0.1)
    assert math.isclose(float(value), float(grown), rel_tol=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), m=st.integers(2, 30), seed=st.integers(0, 10_000))
def test_perfect_ranking_scores_one(n: int, m: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    positive = torch.rand(n, m, generator=gen) < 0.4
    positive[:, 0] = True
    candidates = positive | (torch.rand(n, m, generator=gen) < 0.7)
    # Landmark a is e_a; patch j holds 1 in every landmark dimension where it is a positive.
    landmarks = torch.eye(n, dtype=torch.float64)
    patches = positive.T.to(torch.float64)
    value = vectorized_smooth_ap(landmarks, patches, positive, candidates, 0.01)
    assert math.isclose(float(value), 1.0, abs_tol=1e-12)


def test_worse_ranking_scores_lower() -> None:
    landmarks, patches, positive, candidates = random_problem(8, 200, seed=7)
    good = vectorized_smooth_ap(landmarks, patches, positive, candidates)
    # Pull positive patches towards their landmarks: the ranking, and the AP, can only improve.
    pulled = patches + 2 * (positive.T.to(patches.dtype) @ landmarks)
    better = vectorized_smooth_ap(landmarks, torch.nn.functional.normalize(pulled, dim=1), positive, candidates)
    assert 0 < float(good) < float(better) <= 1


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda lm, pt, p, c: (lm[0], pt, p, c), "must be 2-d"),
        (lambda lm, pt, p, c: (lm, pt[:, :3], p, c), "descriptor dims differ"),
        (lambda lm, pt, p, c: (lm, pt.float(), p, c), "one floating dtype"),
        (lambda lm, pt, p, c: (lm, pt, p.long(), c), "positive must be a bool mask"),
        (lambda lm, pt, p, c: (lm, pt, p, c[:, :-1]), r"candidates must have shape \(n, m\) = \(4, 30\)"),
        (lambda lm, pt, p, c: (lm, pt, p | ~c, c), "not candidates"),
        (lambda lm, pt, p, c: (lm * float("nan"), pt, p, c), "NaN or inf"),
    ],
)
def test_bad_inputs_raise_clear_errors(change, match: str) -> None:
    problem = random_problem(4, 30, d=8, seed=8)
    with pytest.raises(LossInputError, match=match):
        vectorized_smooth_ap(*change(*problem))


@pytest.mark.parametrize(("value", "dtype"), [(3e18, torch.float32), (30.0, torch.float16)])
def test_similarity_overflowing_at_the_temperature_raises_instead_of_nan(value: float, dtype: torch.dtype) -> None:
    # s itself is finite (9e36 < float32 max, 900 < float16 max) but s / 0.01 is not.
    lm = torch.full((1, 1), value, dtype=dtype)
    pt = torch.full((2, 1), value, dtype=dtype)
    pos = torch.tensor([[True, False]])
    with pytest.raises(LossInputError, match="NaN or inf"):
        vectorized_smooth_ap(lm, pt, pos, torch.ones_like(pos), 0.01)


def test_bad_temperature_and_chunk_raise() -> None:
    problem = random_problem(4, 30, d=8, seed=9)
    with pytest.raises(LocusError, match="temperature must be > 0"):
        vectorized_smooth_ap(*problem, temperature=0.0)
    with pytest.raises(LocusError, match="chunk_elements must be >= 1"):
        vectorized_smooth_ap(*problem, chunk_elements=0)
