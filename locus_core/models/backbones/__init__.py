"""Frozen image backbones by name; each carries its own preprocessing (see :class:`BackboneInfo`)."""

from locus_core.models.backbones.base import Backbone, BackboneInfo
from locus_core.models.backbones.registry import available_backbones, create_backbone
from locus_core.models.backbones.weights import RANDOM

__all__ = ["RANDOM", "Backbone", "BackboneInfo", "available_backbones", "create_backbone"]
