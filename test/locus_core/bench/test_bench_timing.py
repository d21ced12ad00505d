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


def test_cpu_time_excludes_waiting() -> None:
    import time

    timing = measure(lambda: time.sleep(0.02), warmup=0, repeats=2)
    assert timing.cpu_p50_ms is not None and 0 <= timing.cpu_p50_ms < timing.p50_ms
    ours, base = measure_pair(lambda: sum(range(20000)), lambda: None, warmup=0, repeats=2)
    assert ours.cpu_p50_ms is not None and base.cpu_p50_ms is not None
