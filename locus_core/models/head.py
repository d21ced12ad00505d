"""The LoCUS head: a small transformer over a frame's backbone patches → S L2-normalised 64-d maps.

Position encoding: fixed 2D sinusoids in patch units (half the channels for rows, half for
columns), added after the input projection. Fixed rather than learned because it is defined for
every grid size without interpolation — the same head runs on 32x40 training grids, other
inference sizes and other backbones' strides — it has no parameters to overfit on the few scenes we
train on, and it exports as plain arithmetic on the grid size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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


BLOCK = 4  # neighbourhood attention computes queries in BLOCK x BLOCK tiles (fastest for radius 3 here)
_FAR = -1e4  # attention bias of a key outside the neighbourhood (finite: a padding query keeps finite output)
_FLOOR = -80.0  # lowest attention logit relative to its row's largest (see EncoderLayer._local)


def _tile_counts(height: int, width: int) -> tuple[int, int]:
    """(down, across): ``BLOCK`` x ``BLOCK`` tiles that cover a (height, width) grid."""
    return -(-height // BLOCK), -(-width // BLOCK)


def neighbourhoods(
    height: int, width: int, radius: int, *, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """What blocked neighbourhood attention gathers on a (height, width) patch grid.

    Queries come in ``BLOCK`` x ``BLOCK`` tiles (the grid zero-padded to whole tiles, row-major tile
    order); each tile gathers the keys of its tile grown by ``radius`` on every side.

    Returns:
        keys: (T, (BLOCK+2·radius)²) int64 row-major patch indices, ``height*width`` where the
            grown tile leaves the grid (a zero token).
        bias: (T, BLOCK², (BLOCK+2·radius)²) float, 0 where the key is in the grid and at most
            ``radius`` rows and columns from the query, else a large negative number.
    """
    tiles_down, tiles_across = _tile_counts(height, width)

    def grid_of(down: int, across: int) -> tuple[torch.Tensor, torch.Tensor]:  # row-major (rows, cols)
        rows = torch.arange(down, device=device)[:, None].expand(down, across)
        cols = torch.arange(across, device=device)[None, :].expand(down, across)
        return rows.reshape(-1), cols.reshape(-1)

    top, left = (t * BLOCK for t in grid_of(tiles_down, tiles_across))  # (T,) each tile's first patch
    side = BLOCK + 2 * radius
    d_row, d_col = grid_of(side, side)
    k_row, k_col = top[:, None] - radius + d_row, left[:, None] - radius + d_col  # (T, side²)
    inside = (k_row >= 0) & (k_row < height) & (k_col >= 0) & (k_col < width)
    keys = torch.where(inside, k_row * width + k_col, height * width)
    d_row, d_col = grid_of(BLOCK, BLOCK)
    q_row, q_col = top[:, None] + d_row, left[:, None] + d_col  # (T, BLOCK²)
    near = ((q_row[:, :, None] - k_row[:, None]).abs() <= radius) & (
        (q_col[:, :, None] - k_col[:, None]).abs() <= radius
    )
    bias = torch.zeros(near.shape, device=device).masked_fill(~(near & inside[:, None]), _FAR)
    return keys, bias


def _tiles(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, h*w, C) → (B, T, BLOCK², C): the grid zero-padded to whole tiles, cut into tiles."""
    b, _, c = x.shape
    h, w = grid
    down, across = _tile_counts(h, w)
    x = F.pad(x.view(b, h, w, c), (0, 0, 0, across * BLOCK - w, 0, down * BLOCK - h))
    return x.view(b, down, BLOCK, across, BLOCK, c).transpose(2, 3).reshape(b, down * across, BLOCK * BLOCK, c)


def _untile(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of ``_tiles``: (B, T, BLOCK², C) → (B, h*w, C)."""
    b, _, _, c = x.shape
    h, w = grid
    down, across = _tile_counts(h, w)
    x = x.view(b, down, across, BLOCK, BLOCK, c).transpose(2, 3).reshape(b, down * BLOCK, across * BLOCK, c)
    return x[:, :h, :w].reshape(b, h * w, c)


class EncoderLayer(nn.Module):
    """A pre-norm transformer layer: x + attention(norm1(x)), then x + MLP(norm2(x)) (GELU, 4x
    width), with the parameters of ``nn.TransformerEncoderLayer(norm_first=True)`` under the same
    names (checkpoints of either load into the other).

    ``radius`` > 0: each patch attends only to the patches at most ``radius`` rows and columns
    away (its neighbourhood, clipped at the border); 0: to every patch, or with ``kv_pool`` > 1 to
    every ``kv_pool`` x ``kv_pool`` block of patches, averaged (the last row or column of blocks
    may be smaller). Neighbourhood attention is computed per ``BLOCK`` x ``BLOCK`` tile of queries
    against the keys of the tile grown by ``radius``, the keys beyond each query's neighbourhood
    masked: exact, and in plain batched matrix products that every runtime handles (an (h·w)² mask
    on fused attention ran 2.6x slower).
    """

    def __init__(self, dim: int, heads: int, radius: int = 0, kv_pool: int = 1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.linear1 = nn.Linear(dim, 4 * dim)
        self.linear2 = nn.Linear(4 * dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.radius = radius
        self.kv_pool = kv_pool

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(B, h*w, dim) → (B, h*w, dim); ``grid`` = (h, w)."""
        y = self.norm1(x)
        if self.radius:
            y = self._local(y, grid)
        elif self.kv_pool > 1:
            y = self._pooled(y, grid)
        else:
            y = self.self_attn(y, y, y, need_weights=False)[0]
        x = x + y
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))

    def _local(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        # Not cached: a few ops on small index tensors per call, which exporters fold into constants.
        keys, bias = neighbourhoods(*grid, self.radius, device=x.device)
        b, _, c = x.shape
        q, k, v = self._projected(x)
        zero = x.new_zeros(b, 1, c)  # the key and value of grid positions outside the image
        # Heads are split before the gather, so the gathered keys and values come out as the matrix
        # products want them, (B, heads, T, side², C/heads): gathered in (B, T, side², C) they needed
        # a transpose of the whole gathered tensor each (ONNX Runtime: 3 of the head's 23 ms).
        heads = self.self_attn.num_heads
        q = _tiles(q, grid).view(b, -1, BLOCK * BLOCK, heads, c // heads)
        q = q.permute(0, 3, 1, 2, 4) * (c // heads) ** -0.5  # (B, heads, T, BLOCK², C/heads)
        k, v = (self._heads(torch.cat([t, zero], 1)).index_select(2, keys.flatten()).unflatten(2, keys.shape)
                for t in (k, v))
        logits = q @ k.transpose(-1, -2) + bias.to(q.dtype)
        # The exp of a masked logit (_FAR below the rest) is a denormal float, which CPUs compute
        # over 10x slower (ONNX Runtime's softmax took 3.3 of the model's 30 ms). So logits are
        # raised to _FLOOR below their row's largest (weights under exp(_FLOOR) = 1.8e-35, nothing
        # at float32 precision) and the masked keys' weights set to zero after the softmax.
        logits = torch.maximum(logits, logits.amax(-1, keepdim=True) + _FLOOR)
        weights = logits.softmax(-1) * (bias == 0).to(q.dtype)
        out = (weights @ v).permute(0, 2, 3, 1, 4).reshape(b, -1, BLOCK * BLOCK, c)
        return self.self_attn.out_proj(_untile(out, grid))

    def _pooled(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        attn = self.self_attn
        w_q, w_kv = attn.in_proj_weight.split([c, 2 * c])
        b_q, b_kv = attn.in_proj_bias.split([c, 2 * c])
        # An average commutes with the affine key and value projections, so the inputs are averaged
        # and 1/kv_pool² as many of them projected: the same keys and values, 1 ms sooner of the
        # head's 17 on ONNX Runtime. ceil_mode: a border row or column of an odd grid is averaged alone.
        pooled = F.avg_pool2d(x.transpose(1, 2).reshape(b, c, *grid), self.kv_pool, ceil_mode=True)
        k, v = F.linear(pooled.flatten(2).transpose(1, 2), w_kv, b_kv).chunk(2, dim=-1)
        q = F.linear(x, w_q, b_q)
        out = F.scaled_dot_product_attention(self._heads(q), self._heads(k), self._heads(v))
        return self.self_attn.out_proj(out.transpose(1, 2).reshape(b, n, c))

    def _projected(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, C) → queries, keys, values (B, L, C) each, by the attention's input projection."""
        attn = self.self_attn
        return F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """(..., L, C) → (..., heads, L, C/heads)."""
        heads = self.self_attn.num_heads
        return t.reshape(*t.shape[:-1], heads, t.shape[-1] // heads).transpose(-3, -2)


class Encoder(nn.Module):
    """``EncoderLayer``s, one per attention radius in ``radii`` (0: global attention)."""

    def __init__(self, dim: int, heads: int, radii: Sequence[int], kv_pool: int = 1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, radius, kv_pool) for radius in radii)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, grid)
        return x


class LocusHead(nn.Module):
    """LayerNorm → Linear(C→hidden) + 2D sinusoids → ``layers`` pre-norm transformer layers →
    LayerNorm → Linear(hidden→dim·S) → S L2-normalised maps.

    The input LayerNorm is not in the paper: backbone features differ in scale by orders of
    magnitude (XFeat's convolutional maps vs. ViT tokens with outlier channels), and normalising
    them keeps one learning rate right for every backbone.

    ``attention_radii``: per layer, 0 for attention over the whole image (the paper's, and the
    default for every layer), r > 0 for attention to the patches at most r rows and columns away.
    With few training views a local first layer generalises better to new ones: a patch's
    neighbourhood tells its place on a new view more reliably than the layout of the whole image,
    which changes with the viewpoint, and a global layer after it keeps the context that tells
    look-alike places apart (redkitchen, XFeat, 300 steps: test retrieval AP 0.439 with both layers
    global; 0.486 / 0.492 with both local, radius 3 / 5; 0.505 local 3 then global; 0.500 global
    then local 3). Every patch must see the same neighbourhood around itself: windows that tile the
    image did not help (8x8 windows, shifted in the second layer as Swin's: 0.432; 8x8 tiles each
    attending to the tile grown by 3: 0.428). On ONNX Runtime a radius-3 layer runs as fast as a
    global one at 256x320 (radius 5: 1.4x slower).

    ``kv_pool`` > 1: global layers attend to keys and values averaged over ``kv_pool`` x
    ``kv_pool`` patches (queries stay one per patch), as PVT's spatial-reduction attention: the
    context a global layer adds is coarse, and its quadratic cost dominates the head (redkitchen,
    XFeat, 300 steps: test retrieval AP 0.547 either way with 2x2; the whole model on ONNX Runtime
    in 21.1 instead of 24.0 ms per 256x320 frame when measured, 16.3 ms since the local attention's
    denormal fix and per-head gathers, ``locus bench infer``).
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
        attention_radii: Sequence[int] = (),
        kv_pool: int = 1,
    ) -> None:
        super().__init__()
        if kv_pool < 1:
            raise ModelError(f"head: kv_pool must be >= 1, got {kv_pool}")
        if hidden % heads or hidden % 4:
            raise ModelError(f"head: hidden={hidden} must be divisible by heads={heads} and by 4")
        radii = tuple(attention_radii) or (0,) * layers
        if len(radii) != layers or min(radii) < 0:
            raise ModelError(f"head: attention_radii needs one radius >= 0 per layer ({layers}), got {list(radii)}")
        self.in_dim, self.dim, self.hidden, self.scales = in_dim, dim, hidden, scales
        self.in_norm = nn.LayerNorm(in_dim)
        self.proj = nn.Linear(in_dim, hidden)
        self.blocks = Encoder(hidden, heads, radii, kv_pool)
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
        x = self.out(self.out_norm(self.blocks(x, (h, w))))  # (B, h*w, S*dim)
        x = x.view(b, h, w, self.scales, self.dim).permute(0, 3, 4, 1, 2)
        return F.normalize(x, dim=2)


class NormalizeHead(nn.Module):
    """No learning: raw backbone features, L2-normalised, as one scale (the paper's baseline)."""

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) → (B, 1, C, h, w), unit norm along C."""
        if feats.ndim != 4:
            raise ModelError(f"head: expected backbone features (B,C,h,w), got {tuple(feats.shape)}")
        return F.normalize(feats, dim=1).unsqueeze(1)
