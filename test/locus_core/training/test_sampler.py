from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.training.errors import TrainingError
from locus_core.training.sampler import MixedSampler, OverlapSampler


def _chain(n: int) -> np.ndarray:
    """A trajectory where frame i overlaps frame j by 1 - |i - j| / 5 (zero beyond 5 apart)."""
    i = np.arange(n)
    return np.clip(1 - np.abs(i[:, None] - i[None, :]) / 5, 0, 1).astype(np.float32)


def test_batches_are_deterministic_by_seed_and_step() -> None:
    mixed = MixedSampler([OverlapSampler(_chain(40), 4, 0.3, 0.9, name="a"),
                          OverlapSampler(_chain(10), 3, 0.3, 0.9, name="b")], [1, 1])
    first = [mixed.batch(0, step) for step in range(50)]
    assert first == [mixed.batch(0, step) for step in range(50)]
    assert first != [mixed.batch(1, step) for step in range(50)]
    assert {b.scene for b in first} == {0, 1}
    assert len({b.frames for b in first}) > 30


def test_partners_overlap_in_range() -> None:
    covis = _chain(40)
    sampler = OverlapSampler(covis, 4, 0.3, 0.9, name="chain")
    rng = np.random.default_rng(0)
    for _ in range(100):
        frames = sampler.draw(rng)
        assert len(set(frames)) == 4
        seed = frames[0]
        for j in frames[1:]:
            assert 0.3 <= min(covis[seed, j], covis[j, seed]) <= 0.9


def test_too_few_partners_fills_with_best_overlap() -> None:
    # only the 1-apart neighbours (0.8) are in range
    sampler = OverlapSampler(_chain(12), 6, 0.7, 0.9, name="chain")
    frames = sampler.draw(np.random.default_rng(3))
    assert len(set(frames)) == 6
    assert max(frames) - min(frames) <= 6


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(2, 15), data=st.data())
def test_draw_respects_the_overlap_range_on_random_covisibility(seed: int, n: int, data) -> None:
    rng = np.random.default_rng(seed)
    covis = rng.random((n, n)) ** 2  # asymmetric, many pairs out of range
    batch_frames = data.draw(st.integers(1, n))
    lo = data.draw(st.floats(0.0, 0.8))
    hi = data.draw(st.floats(lo + 0.05, 1.0))
    sampler = OverlapSampler(covis, batch_frames, lo, hi, name="random")
    overlap = np.minimum(covis, covis.T)
    in_range = (overlap >= lo) & (overlap <= hi) & ~np.eye(n, dtype=bool)
    for _ in range(5):
        frames = sampler.draw(rng)
        assert len(frames) == len(set(frames)) == batch_frames
        first, others = frames[0], np.array(frames[1:], dtype=int)
        if in_range.any():
            assert in_range[first].any()  # a seed with a partner whenever one exists
        # As many partners in range as the seed has (up to the batch), and those come first.
        k = min(batch_frames - 1, int(in_range[first].sum()))
        assert in_range[first, others[:k]].all() and not in_range[first, others[k:]].any()
        # The rest: the best-overlapping of the frames left.
        left = np.setdiff1d(np.arange(n), frames[: k + 1])
        if others[k:].size:
            assert overlap[first, others[k:]].min() >= np.sort(overlap[first, left])[::-1][others[k:].size - 1]


def test_weights_pick_scenes() -> None:
    mixed = MixedSampler([OverlapSampler(_chain(10), 2, 0.1, 0.9, name="chain")] * 2, [9, 1])
    scenes = [mixed.batch(0, s).scene for s in range(400)]
    assert 0.8 < scenes.count(0) / 400 < 0.97


def test_bad_inputs() -> None:
    with pytest.raises(TrainingError, match=r"^kitchen\[0:5\]: data.batch_frames=8 exceeds the scene's 5 frames"):
        OverlapSampler(_chain(5), 8, 0.1, 0.9, name="kitchen[0:5]")
    with pytest.raises(TrainingError, match=r"^kitchen\[0:5\]: co-visibility: expected a square"):
        OverlapSampler(np.zeros((3, 4)), 2, 0.1, 0.9, name="kitchen[0:5]")
    with pytest.raises(TrainingError, match="weights must be > 0"):
        MixedSampler([OverlapSampler(_chain(5), 2, 0.1, 0.9, name="chain")], [0])
