"""Errors of the ROS layer: bad messages, unusable transforms and rejected parameters.

The node catches these per frame (the frame is skipped and counted in diagnostics); it never lets
one escape the executor.
"""

from __future__ import annotations

from locus_core.errors import LocusError


class RosError(LocusError):
    """Base class of the ROS layer's errors."""


class ConversionError(RosError):
    """A message cannot be turned into arrays: unsupported encoding, wrong size, bad calibration."""


class TransformError(RosError):
    """A transform cannot be looked up (base class of the two cases below)."""


class LookupTransformError(TransformError):
    """The frames are unknown or not connected in the transform tree."""


class ExtrapolationError(TransformError):
    """The requested time lies outside the buffered transforms of one edge of the chain."""


class ParameterError(RosError):
    """A node parameter holds a value the node cannot run with."""
