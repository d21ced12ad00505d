"""Errors of the benchmark suite."""

from __future__ import annotations

from locus_core.errors import LocusError


class BenchError(LocusError):
    """A benchmark was asked for impossible settings (sizes, fractions, thread counts)."""
