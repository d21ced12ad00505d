"""Models: frozen backbones by name, the LoCUS head, checkpoints, and dense feature extraction."""

from locus_core.models.backbones import Backbone, BackboneInfo, available_backbones, create_backbone
from locus_core.models.errors import ModelError, UnknownBackboneError, WeightsNotFoundError

__all__ = [
    "Backbone",
    "BackboneInfo",
    "ModelError",
    "UnknownBackboneError",
    "WeightsNotFoundError",
    "available_backbones",
    "create_backbone",
]
