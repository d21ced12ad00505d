"""Errors of the models subpackage: bad backbone names, missing weights, unreadable checkpoints."""

from __future__ import annotations

from locus_core.errors import LocusError


class ModelError(LocusError):
    """A model, backbone or checkpoint problem; the message names the file, name or value at fault."""


class UnknownBackboneError(ModelError):
    """A backbone name that is not in the registry (the message lists the valid ones)."""


class WeightsNotFoundError(ModelError):
    """Pretrained weights that are not on this machine (the message says which file and where)."""


class ModelConfigError(ModelError, ValueError):
    """A bad ``ModelConfig`` value. Also a ValueError, so that config loaders add the file name."""
