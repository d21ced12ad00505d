from __future__ import annotations

import json

import pytest

from locus_core.bench import BenchResult, benchmark_modules
from locus_core.bench.report import format_json_lines, format_table
from locus_core.bench.timing import Timing

KEYS = ["name", "p50_ms", "p95_ms", "baseline", "baseline_p50_ms", "speedup"]


def test_speedup_is_baseline_p50_over_ours() -> None:
    result = BenchResult.from_timings(
        "x", Timing(2.0, 3.0, (2.0, 3.0)), baseline="slow", baseline_timing=Timing(10.0, 12.0, (10.0,))
    )
    assert result.speedup == pytest.approx(5.0)
    assert "cpu_ms" not in result.extra and result.extra["min_ms"] == 2.0
    timed = BenchResult.from_timings("x", Timing(2.0, 3.0, (2.0,), cpu_p50_ms=4.0), baseline="slow",
                                     baseline_timing=Timing(10.0, 12.0, (10.0,), cpu_p50_ms=16.0))
    assert timed.extra == {"min_ms": 2.0, "baseline_min_ms": 10.0, "cpu_ms": 4.0, "baseline_cpu_ms": 16.0,
                           "cpu_speedup": 4.0}
    assert BenchResult("y", 1.0, 2.0).speedup is None


def test_json_lines_have_the_contract_keys() -> None:
    results = [
        BenchResult("a", 1.0, 2.0, baseline="b", baseline_p50_ms=4.0, extra={"peak_mb": 1.5}),
        BenchResult("c", 1.0, 2.0),
    ]
    objects = [json.loads(line) for line in format_json_lines(results).splitlines()]
    assert len(objects) == 2
    for obj in objects:
        assert list(obj)[: len(KEYS)] == KEYS
    assert objects[0]["speedup"] == 4.0 and objects[0]["extra"] == {"peak_mb": 1.5}
    assert objects[1]["baseline"] is None and objects[1]["speedup"] is None


def test_table_shows_ratios_and_notes() -> None:
    table = format_table([BenchResult("loss 32x4096", 10.0, 12.0, baseline="naive", baseline_p50_ms=65.0,
                                      extra={"memory_ratio": 61.234567})])
    header, rule, row = table.splitlines()
    assert header.startswith("benchmark") and set(rule) == {"-"}
    assert "6.50x" in row and "memory_ratio=61.23" in row


def test_discovery_finds_the_benchmarks_and_skips_helpers() -> None:
    modules = benchmark_modules()
    assert {"infer", "loss", "map", "node", "pipeline", "bag", "suite"} <= set(modules)
    assert not {"timing", "memory", "report", "record", "recordings", "errors"} & set(modules)


def test_json_lines_are_strict_json_for_a_skipped_runtime() -> None:
    # A skipped runtime's NaN latencies were written as bare NaN, which is not JSON: jq, JavaScript
    # and other strict parsers refused the whole results.jsonl.
    skipped = BenchResult("m cuda", float("nan"), float("nan"), extra={"skipped": "cuda: no GPU", "ap": float("inf")})

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    (obj,) = [json.loads(line, parse_constant=refuse) for line in format_json_lines([skipped]).splitlines()]
    assert obj["p50_ms"] is None and obj["p95_ms"] is None and obj["speedup"] is None
    assert obj["extra"] == {"skipped": "cuda: no GPU", "ap": None}
