"""What every backbone shares: its preprocessing record and the frozen-module behaviour."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from locus_core.models.errors import ModelError


@dataclass(frozen=True)
class BackboneInfo:
    """How a backbone wants its input and what it gives back.

    Attributes:
        name: registry name (``xfeat``, ``dino_vitb8``, ...).
        stride: pixels per output cell; outputs are ``(H // stride, W // stride)``.
        dim: channels of the feature map.
        mean, std: per-channel normalisation applied to [0, 1] input (one value when grayscale).
        grayscale: the network reads one channel (the mean of R, G, B).
    """

    name: str
    stride: int
    dim: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    grayscale: bool


class Backbone(nn.Module):
    """A frozen feature extractor: RGB in [0, 1] in, a dense stride-``info.stride`` feature map out.

    Subclasses implement :meth:`features` on normalised input whose height and width are multiples
    of the stride. :meth:`forward` crops the bottom/right remainder first, so that output cell
    ``(i, j)`` always covers pixels ``[s*i, s*i + s) x [s*j, s*j + s)`` — the patch whose centre
    ``locus_core.geometry.patch_centers`` returns.
    """

    def __init__(self, info: BackboneInfo) -> None:
        super().__init__()
        self.info = info
        channels = 1 if info.grayscale else 3
        if len(info.mean) != channels or len(info.std) != channels:
            raise ModelError(f"backbone {info.name}: mean/std need {channels} value(s)")
        self.register_buffer("_mean", torch.tensor(info.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(info.std).view(1, -1, 1, 1), persistent=False)

    def freeze(self) -> Backbone:
        """No gradients for any parameter, and evaluation mode for good (see :meth:`train`)."""
        for p in self.parameters():
            p.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> Backbone:
        # Frozen: batch-norm statistics and dropout must not change when a parent module trains.
        return super().train(False)

    def resized(self, img_size: tuple[int, int]) -> Backbone:
        """This backbone for another input size; convolutional backbones take any size: itself."""
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) float RGB in [0,1] → (B,1|3,H',W') normalised, H', W' multiples of the stride."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ModelError(
                f"backbone {self.info.name}: expected images (B,3,H,W), got {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise ModelError(
                f"backbone {self.info.name}: expected float images in [0, 1], got {images.dtype}"
            )
        s = self.info.stride
        height, width = images.shape[-2:]
        if height < s or width < s:
            raise ModelError(
                f"backbone {self.info.name}: image {height}x{width} is smaller than the stride {s}"
            )
        x = images[..., : height // s * s, : width // s * s]
        if self.info.grayscale:
            x = x.mean(dim=1, keepdim=True)
        return (x - self._mean) / self._std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B,1|3,h*s,w*s) normalised → (B, dim, h, w)."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) float RGB in [0,1] → (B, dim, H // stride, W // stride)."""
        return self.features(self.preprocess(images))
