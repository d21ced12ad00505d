"""Models: frozen backbones by name, the LoCUS head, checkpoints, and dense feature extraction."""

from locus_core.models.backbones import Backbone, BackboneInfo, available_backbones, create_backbone
from locus_core.models.errors import ModelError, UnknownBackboneError, WeightsNotFoundError
from locus_core.models.extract import extract_features, extract_features_batch
from locus_core.models.head import LocusHead
from locus_core.models.model import DEFAULT_CHECKPOINT, LocusModel, ModelConfig, load_model

__all__ = [
    "DEFAULT_CHECKPOINT",
    "Backbone",
    "BackboneInfo",
    "LocusHead",
    "LocusModel",
    "ModelConfig",
    "ModelError",
    "UnknownBackboneError",
    "WeightsNotFoundError",
    "available_backbones",
    "create_backbone",
    "extract_features",
    "extract_features_batch",
    "load_model",
]
