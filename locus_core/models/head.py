"""The LoCUS head: a small transformer over a frame's backbone patches → S L2-normalised 64-d maps.

Position encoding: fixed 2D sinusoids in patch units (half the channels for rows, half for
columns), added after the input projection. Fixed rather than learned because it is defined for
every grid size without interpolation — the same head runs on 32x40 training grids, other
inference sizes and other backbones' strides — it has no parameters to overfit on the few scenes we
train on, and it exports as plain arithmetic on the grid size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from locus_core.models.errors import ModelError


def sinusoidal_position_encoding(
    height: int, width: int, dim: int, *, device: torch.device | None = None
) -> torch.Tensor:
    """(height*width, dim) row-major 2D encoding: [sin/cos(row·f), sin/cos(col·f)], f geometric.

    ``dim`` must be a multiple of 4.
    """
    if dim % 4:
        raise ModelError(f"sinusoidal position encoding needs a dim divisible by 4, got {dim}")
    quarter = dim // 4
    freqs = torch.exp(
        torch.arange(quarter, device=device, dtype=torch.float32) * (-math.log(10000.0) / quarter)
    )
    rows = torch.arange(height, device=device, dtype=torch.float32)[:, None] * freqs  # (h, q)
    cols = torch.arange(width, device=device, dtype=torch.float32)[:, None] * freqs  # (w, q)
    row_enc = torch.cat([rows.sin(), rows.cos()], dim=1)[:, None, :].expand(height, width, 2 * quarter)
    col_enc = torch.cat([cols.sin(), cols.cos()], dim=1)[None, :, :].expand(height, width, 2 * quarter)
    return torch.cat([row_enc, col_enc], dim=2).reshape(height * width, dim)


class LocusHead(nn.Module):
    """LayerNorm → Linear(C→hidden) + 2D sinusoids → ``layers`` pre-norm transformer blocks →
    LayerNorm → Linear(hidden→dim·S) → S L2-normalised maps.

    The input LayerNorm is not in the paper: backbone features differ in scale by orders of
    magnitude (XFeat's convolutional maps vs. ViT tokens with outlier channels), and normalising
    them keeps one learning rate right for every backbone.
    """

    def __init__(
        self,
        in_dim: int,
        *,
        dim: int = 64,
        hidden: int = 128,
        layers: int = 2,
        heads: int = 4,
        scales: int = 1,
    ) -> None:
        super().__init__()
        if hidden % heads or hidden % 4:
            raise ModelError(f"head: hidden={hidden} must be divisible by heads={heads} and by 4")
        self.in_dim, self.dim, self.hidden, self.scales = in_dim, dim, hidden, scales
        self.in_norm = nn.LayerNorm(in_dim)
        self.proj = nn.Linear(in_dim, hidden)
        block = nn.TransformerEncoderLayer(
            hidden,
            heads,
            dim_feedforward=4 * hidden,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, dim * scales)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, in_dim, h, w) backbone features → (B, S, dim, h, w), unit norm along dim."""
        if feats.ndim != 4 or feats.shape[1] != self.in_dim:
            raise ModelError(
                f"head: expected backbone features (B,{self.in_dim},h,w), got {tuple(feats.shape)}"
            )
        b, _, h, w = feats.shape
        x = self.proj(self.in_norm(feats.flatten(2).transpose(1, 2)))
        x = x + sinusoidal_position_encoding(h, w, self.hidden, device=x.device).to(x.dtype)
        x = self.out(self.out_norm(self.blocks(x)))  # (B, h*w, S*dim)
        x = x.view(b, h, w, self.scales, self.dim).permute(0, 3, 4, 1, 2)
        return F.normalize(x, dim=2)


class NormalizeHead(nn.Module):
    """No learning: raw backbone features, L2-normalised, as one scale (the paper's baseline)."""

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) → (B, 1, C, h, w), unit norm along C."""
        if feats.ndim != 4:
            raise ModelError(f"head: expected backbone features (B,C,h,w), got {tuple(feats.shape)}")
        return F.normalize(feats, dim=1).unsqueeze(1)
