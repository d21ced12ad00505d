"""Errors of ``locus eval``: bad input found before any work starts."""

from __future__ import annotations

from locus_core.errors import LocusError


class EvaluationError(LocusError):
    """The model, data set, frame selection or task list cannot be evaluated (the message says why)."""
