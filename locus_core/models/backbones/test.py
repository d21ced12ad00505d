"""A tiny random convolutional backbone (stride 8, dim 16) for fast, deterministic unit tests."""

from __future__ import annotations

import torch
from torch import nn

from locus_core.models.backbones.base import Backbone, BackboneInfo

TEST_INFO = BackboneInfo(
    name="test", stride=8, dim=16, mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25), grayscale=False
)


class TestBackbone(Backbone):
    """Three stride-2 convolutions with seeded random weights: same weights in every process."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, seed: int = 0) -> None:
        super().__init__(TEST_INFO)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(
                nn.Conv2d(3, 8, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(8, 16, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, TEST_INFO.dim, 3, stride=2, padding=1),
            )
        self.freeze()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
