"""Benchmark output: an aligned table for people, one JSON object per line for machines."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

from locus_core.bench import BenchResult


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _extra(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_table(results: Iterable[BenchResult]) -> str:
    """Columns: benchmark, p50/p95 (ms), baseline and its p50, speedup, then the extra figures."""
    header = ("benchmark", "p50 ms", "p95 ms", "baseline", "baseline p50 ms", "speedup", "notes")
    rows = [header]
    for r in results:
        notes = ", ".join(f"{k}={_extra(v)}" for k, v in r.extra.items())
        speedup = "-" if r.speedup is None else f"{r.speedup:.2f}x"
        rows.append((r.name, _number(r.p50_ms), _number(r.p95_ms), r.baseline or "-",
                     _number(r.baseline_p50_ms), speedup, notes))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)


def format_json_lines(results: Iterable[BenchResult]) -> str:
    """One JSON object per benchmark result, one per line (NaN and infinities as null)."""
    return "\n".join(json.dumps(_json_safe(r.to_json()), sort_keys=False) for r in results)


def _json_safe(value: object) -> object:
    # json.dumps writes NaN (a skipped runtime's latency) as a bare NaN, which is not JSON: strict
    # parsers (jq, JavaScript) refuse the whole file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
