"""Benchmarks behind ``locus bench NAME``: latency p50/p95 against a baseline measured in the same run.

Each benchmark is a module ``locus_core.bench.<name>`` defining ``add_arguments(parser)`` and
``run(args) -> list[BenchResult]``; ``locus bench`` finds them by those two functions, so adding a
file is enough. The CLI imports every module here to build its parser, so benchmark modules keep
heavy imports (torch, faiss, cv2) inside their functions, like the CLI's own modules.

Shared pieces: :func:`locus_core.bench.timing.measure` (latency percentiles),
:mod:`locus_core.bench.memory` (peak tensor memory of a call, CPU and CUDA) and
:mod:`locus_core.bench.report` (table and JSON output).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from locus_core.bench.timing import Timing


@dataclass(frozen=True)
class BenchResult:
    """One measured configuration; ``speedup`` = baseline p50 / ours p50 (None without a baseline)."""

    name: str
    p50_ms: float
    p95_ms: float
    baseline: str | None = None
    baseline_p50_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    speedup: float | None = field(init=False)

    def __post_init__(self) -> None:
        ratio = None
        if self.baseline_p50_ms is not None and self.p50_ms > 0:
            ratio = self.baseline_p50_ms / self.p50_ms
        object.__setattr__(self, "speedup", ratio)

    @classmethod
    def from_timings(
        cls,
        name: str,
        ours: Timing,
        *,
        baseline: str | None = None,
        baseline_timing: Timing | None = None,
        extra: dict[str, Any] | None = None,
    ) -> BenchResult:
        return cls(
            name=name,
            p50_ms=ours.p50_ms,
            p95_ms=ours.p95_ms,
            baseline=baseline,
            baseline_p50_ms=None if baseline_timing is None else baseline_timing.p50_ms,
            extra={**_cpu_times(ours, baseline_timing), **(extra or {})},
        )

    def to_json(self) -> dict[str, Any]:
        """The contract's keys (name, p50_ms, p95_ms, baseline, baseline_p50_ms, speedup) + extra."""
        return {
            "name": self.name,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "baseline": self.baseline,
            "baseline_p50_ms": self.baseline_p50_ms,
            "speedup": self.speedup,
            "extra": self.extra,
        }


def _cpu_times(ours: Timing, baseline: Timing | None) -> dict[str, float]:
    # Beside the load-dependent p50: the fastest call (closest to an idle machine) and the CPU time
    # per call (the work itself, whatever the load).
    out = {"min_ms": min(ours.samples)} if ours.samples else {}
    if baseline is not None and baseline.samples:
        out["baseline_min_ms"] = min(baseline.samples)
    if ours.cpu_p50_ms is not None:
        out["cpu_ms"] = ours.cpu_p50_ms
    if baseline is not None and baseline.cpu_p50_ms is not None:
        out["baseline_cpu_ms"] = baseline.cpu_p50_ms
        if ours.cpu_p50_ms:
            out["cpu_speedup"] = baseline.cpu_p50_ms / ours.cpu_p50_ms
    return out


def benchmark_modules() -> dict[str, ModuleType]:
    """Benchmark name -> module, for every module here with ``add_arguments`` and ``run``."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "add_arguments", None)) and callable(getattr(module, "run", None)):
            found[info.name] = module
    return dict(sorted(found.items()))
