from __future__ import annotations

import pytest

from locus_core.bench.timing import measure, measure_pair, percentile


def test_measure_calls_warmup_plus_repeats_and_orders_percentiles() -> None:
    calls = []
    timing = measure(lambda: calls.append(1), warmup=3, repeats=7)
    assert len(calls) == 10
    assert len(timing.samples) == 7
    assert 0 <= min(timing.samples) <= timing.p50_ms <= timing.p95_ms <= max(timing.samples)


def test_measure_pair_alternates_the_two_calls() -> None:
    order: list[str] = []
    ours, base = measure_pair(lambda: order.append("a"), lambda: order.append("b"), warmup=1, repeats=3)
    assert order == ["a", "b"] * 4
    assert len(ours.samples) == len(base.samples) == 3


def test_percentile_interpolates_like_numpy() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile([7.0], 95) == 7.0


@pytest.mark.parametrize(("warmup", "repeats"), [(-1, 3), (0, 0)])
def test_measure_rejects_bad_counts(warmup: int, repeats: int) -> None:
    with pytest.raises(ValueError, match="need warmup >= 0 and repeats >= 1"):
        measure(lambda: None, warmup=warmup, repeats=repeats)
