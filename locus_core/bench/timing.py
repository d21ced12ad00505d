"""Wall-clock latency of a call: warm-up runs, then percentiles over timed repeats."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Latency percentiles (ms) and every timed sample (ms, in run order)."""

    p50_ms: float
    p95_ms: float
    samples: tuple[float, ...]


def percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile (0..100) with linear interpolation between order statistics (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def measure(fn: Callable[[], object], *, warmup: int, repeats: int) -> Timing:
    """Call ``fn`` ``warmup`` times untimed (caches, allocator, lazy init), then ``repeats`` times timed."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return Timing(p50_ms=percentile(samples, 50), p95_ms=percentile(samples, 95), samples=tuple(samples))


def measure_pair(
    ours: Callable[[], object], baseline: Callable[[], object], *, warmup: int, repeats: int
) -> tuple[Timing, Timing]:
    """Time two calls alternately (ours, baseline, ours, ...) so that load changes on a shared
    machine hit both alike and their ratio stays meaningful. Returns (ours, baseline)."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    for _ in range(warmup):
        ours()
        baseline()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in zip((ours, baseline), samples):
            out.extend(measure(fn, warmup=0, repeats=1).samples)
    return tuple(  # type: ignore[return-value]
        Timing(p50_ms=percentile(s, 50), p95_ms=percentile(s, 95), samples=tuple(s)) for s in samples
    )
