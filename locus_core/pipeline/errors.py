"""Errors of the frame pipeline; messages name the topic and the value at fault."""

from __future__ import annotations

from locus_core.errors import LocusError


class PipelineError(LocusError):
    """The pipeline cannot process a frame or run a request (no map, nothing to save...)."""


class ConversionError(PipelineError):
    """A message cannot be turned into arrays: wrong size, bad calibration, undecodable data."""


class UnsupportedEncoding(ConversionError):
    """An image encoding the pipeline does not read (counted apart from bad messages, as
    ``unknown_encoding``: a configuration problem)."""
