"""Latency of a call: warm-up runs, then percentiles over timed repeats.

Wall-clock time is the latency; the process CPU time of each call (all its threads) is kept beside
it because on a shared machine wall time swings with other processes' load while CPU time
measures the work itself (with spinning thread pools off: ``OMP_WAIT_POLICY=PASSIVE``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Latency percentiles (ms), every timed sample (ms, in run order) and the median process CPU
    time per call (ms, summed over threads; None where not measured)."""

    p50_ms: float
    p95_ms: float
    samples: tuple[float, ...]
    cpu_p50_ms: float | None = None


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
    samples, cpu = [], []
    for _ in range(repeats):
        cpu_start, start = time.process_time(), time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - cpu_start) * 1000)
    return Timing(p50_ms=percentile(samples, 50), p95_ms=percentile(samples, 95), samples=tuple(samples),
                  cpu_p50_ms=percentile(cpu, 50))


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
    cpu: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out, out_cpu in zip((ours, baseline), samples, cpu):
            one = measure(fn, warmup=0, repeats=1)
            out.extend(one.samples)
            out_cpu.append(one.cpu_p50_ms)
    return tuple(  # type: ignore[return-value]
        Timing(p50_ms=percentile(s, 50), p95_ms=percentile(s, 95), samples=tuple(s), cpu_p50_ms=percentile(c, 50))
        for s, c in zip(samples, cpu)
    )
