"""Errors of the bag tools; messages name the bag, topic or value at fault."""

from __future__ import annotations

from locus_core.errors import LocusError


class BagError(LocusError):
    """A bag cannot be written or replayed: missing topic, unreadable file, unusable settings."""
