"""Errors of the data layer; every message names the file, frame or value at fault."""

from __future__ import annotations

from locus_core.errors import LocusError


class DataError(LocusError):
    """A data set cannot be used as given."""


class DataFileError(DataError):
    """A file a data set needs is missing or cannot be read."""


class FormatError(DataError):
    """A folder or file is not in any known format, or breaks the rules of its format."""


class MessageError(DataError):
    """A ROS message cannot be turned into arrays: data inconsistent with its size, a bad
    calibration, undecodable bytes."""


class UnsupportedMessage(MessageError):
    """An image encoding or codec that is not read: a configuration problem, not a corrupt message."""


class SelectionError(DataError):
    """A ``--frames START:STOP[:STEP]`` selection is malformed or selects nothing."""


class FrameError(DataError):
    """A frame's content is unusable: sizes disagree, no valid depth, a NaN or non-rigid pose."""


class TransformError(DataError):
    """A transform cannot be stored or looked up (base class of the two cases below)."""


class LookupTransformError(TransformError):
    """The frames are unknown or not connected in the transform tree."""


class ExtrapolationError(TransformError):
    """The requested time lies outside the buffered transforms of one edge of the chain (or in a gap)."""
