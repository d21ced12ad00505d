"""Errors of the training subsystem (bad training configs, runs that cannot resume)."""

from __future__ import annotations

from locus_core.errors import LocusError


class TrainingError(LocusError):
    """A training run cannot start or continue; the message names the config key, file or value."""
