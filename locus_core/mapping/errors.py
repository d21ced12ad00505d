"""Errors of the landmark map and the localizer."""

from __future__ import annotations

from locus_core.errors import LocusError


class MapError(LocusError):
    """A map directory is missing, truncated, corrupt, of another format version or another model,
    or a map operation got inconsistent input. The message names the file or value at fault."""
