"""Errors of the ROS layer: bad messages, unusable transforms and rejected parameters.

The node catches these per frame (the frame is skipped and counted in diagnostics); it never lets
one escape the executor. Message and transform errors are raised by the ROS-free code in
locus_core and re-exported here under the names the node uses.
"""

from __future__ import annotations

from locus_core.data.errors import ExtrapolationError, LookupTransformError, TransformError
from locus_core.errors import LocusError
from locus_core.pipeline.errors import ConversionError, UnsupportedEncoding

__all__ = [
    "ConversionError",
    "ExtrapolationError",
    "LookupTransformError",
    "ParameterError",
    "RosError",
    "TransformError",
    "UnsupportedEncoding",
]


class RosError(LocusError):
    """Base class of the ROS layer's own errors."""


class ParameterError(RosError):
    """A node parameter holds a value the node cannot run with."""
