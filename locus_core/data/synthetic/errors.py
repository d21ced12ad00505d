"""Errors of the synthetic scene generator; messages name the parameter or path at fault."""

from __future__ import annotations

from locus_core.errors import LocusError


class SyntheticError(LocusError):
    """A synthetic scene cannot be generated or rendered with the given parameters."""
