"""LoCUS head: output shape and norm for any grid, position encoding, gradients, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.models.errors import ModelError
from locus_core.models.head import EncoderLayer, LocusHead, NormalizeHead, sinusoidal_position_encoding


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), scales=st.integers(1, 3), batch=st.integers(1, 2),
       radii=st.sampled_from([(), (1, 0), (3, 3)]))
def test_head_output_is_normalised_for_any_grid(h: int, w: int, scales: int, batch: int, radii: tuple) -> None:
    torch.manual_seed(0)
    head = LocusHead(16, dim=8, hidden=32, layers=2, heads=4, scales=scales, attention_radii=radii)
    out = head(torch.randn(batch, 16, h, w) * 50)
    assert out.shape == (batch, scales, 8, h, w)
    torch.testing.assert_close(out.norm(dim=2), torch.ones(batch, scales, h, w))


def test_head_is_equivariant_to_batch_and_uses_positions() -> None:
    torch.manual_seed(0)
    head = LocusHead(16, dim=8, hidden=32).eval()
    feats = torch.randn(2, 16, 3, 4)
    together = head(feats)
    torch.testing.assert_close(head(feats[1:]), together[1:], rtol=1e-5, atol=1e-5)
    same = torch.randn(16, 1, 1).expand(16, 3, 4)[None]  # one feature everywhere
    out = head(same)[0, 0].flatten(1)
    assert (out[:, :1] - out).abs().max() > 1e-3  # positions make patches differ


def test_position_encoding_rows_and_columns() -> None:
    enc = sinusoidal_position_encoding(3, 5, 16)
    assert enc.shape == (15, 16)
    grid = enc.view(3, 5, 16)
    torch.testing.assert_close(grid[:, 0, :8], grid[:, 4, :8])  # row half ignores the column
    torch.testing.assert_close(grid[0, :, 8:], grid[2, :, 8:])  # column half ignores the row
    with pytest.raises(ModelError, match="divisible by 4"):
        sinusoidal_position_encoding(2, 2, 6)


def test_head_trains() -> None:
    torch.manual_seed(0)
    head = LocusHead(16, dim=8, hidden=32)
    head(torch.randn(1, 16, 2, 3)).sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_head_rejects_wrong_channels() -> None:
    with pytest.raises(ModelError, match=r"expected backbone features \(B,16,h,w\), got \(1, 8, 2, 2\)"):
        LocusHead(16)(torch.randn(1, 8, 2, 2))
    with pytest.raises(ModelError, match="divisible by heads"):
        LocusHead(16, hidden=30, heads=4)


def test_normalize_head() -> None:
    out = NormalizeHead()(torch.randn(2, 5, 3, 4))
    assert out.shape == (2, 1, 5, 3, 4)
    torch.testing.assert_close(out.norm(dim=2), torch.ones(2, 1, 3, 4))


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 13), w=st.integers(1, 13), radius=st.integers(1, 4), batch=st.integers(1, 2))
def test_local_attention_is_attention_masked_to_each_neighbourhood(h: int, w: int, radius: int, batch: int) -> None:
    torch.manual_seed(0)
    layer = EncoderLayer(16, 4, radius=radius).eval()
    x = torch.randn(batch, h * w, 16)
    rows, cols = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)
    far = ((rows[:, None] - rows[None]).abs() > radius) | ((cols[:, None] - cols[None]).abs() > radius)
    y = layer.norm1(x)
    masked = layer.self_attn(y, y, y, need_weights=False, attn_mask=far)[0]
    torch.testing.assert_close(layer._local(y, (h, w)), masked, rtol=1e-5, atol=1e-5)


def test_local_layers_depend_on_the_neighbourhood_only() -> None:
    torch.manual_seed(0)
    h, w, radius = 9, 11, 2
    x = torch.randn(1, h * w, 16)
    layer = EncoderLayer(16, 4, radius=radius)
    patch = 4 * w + 3  # row 4, column 3

    def f(value: torch.Tensor) -> torch.Tensor:
        return layer(torch.cat([x[:, :patch], value[None, None], x[:, patch + 1 :]], 1), (h, w))

    seen = torch.autograd.functional.jacobian(f, x[0, patch]).abs().sum((0, 2, 3)).view(h, w) > 0
    expected = torch.zeros(h, w, dtype=torch.bool)
    expected[4 - radius : 4 + radius + 1, 3 - radius : 3 + radius + 1] = True
    assert torch.equal(seen, expected)
    with pytest.raises(ModelError, match=r"one radius >= 0 per layer \(2\), got \[3\]"):
        LocusHead(16, attention_radii=(3,))
    with pytest.raises(ModelError, match="one radius >= 0 per layer"):
        LocusHead(16, attention_radii=(3, -1))


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 11), w=st.integers(1, 11), pool=st.integers(2, 4), batch=st.integers(1, 2))
def test_pooled_attention_attends_to_averaged_blocks_of_patches(h: int, w: int, pool: int, batch: int) -> None:
    torch.manual_seed(0)
    layer = EncoderLayer(16, 4, kv_pool=pool).eval()
    x = torch.randn(batch, h * w, 16)
    y = layer.norm1(x)
    # averaging commutes with the key and value projections, so the blocks can be averaged first
    blocks = torch.nn.functional.avg_pool2d(y.transpose(1, 2).reshape(batch, 16, h, w), pool, ceil_mode=True)
    blocks = blocks.flatten(2).transpose(1, 2)
    assert blocks.shape[1] == -(-h // pool) * -(-w // pool)
    expected = layer.self_attn(y, blocks, blocks, need_weights=False)[0]
    torch.testing.assert_close(layer._pooled(y, (h, w)), expected, rtol=1e-5, atol=1e-5)
    after = x + expected
    mlp = layer.linear2(torch.nn.functional.gelu(layer.linear1(layer.norm2(after))))
    torch.testing.assert_close(layer(x, (h, w)), after + mlp, rtol=1e-5, atol=1e-5)


def test_pooling_applies_to_global_layers_only() -> None:
    torch.manual_seed(0)
    plain, pooled = LocusHead(16, hidden=32, attention_radii=(2, 0)), LocusHead(16, hidden=32, attention_radii=(2, 0), kv_pool=2)
    pooled.load_state_dict(plain.state_dict())  # the same parameters
    x = torch.randn(1, 6 * 7, 32)
    local, glob = (layer for layer in zip(plain.blocks.layers, pooled.blocks.layers))
    assert torch.equal(local[0](x, (6, 7)), local[1](x, (6, 7)))
    assert not torch.allclose(glob[0](x, (6, 7)), glob[1](x, (6, 7)))
    with pytest.raises(ModelError, match="kv_pool must be >= 1, got 0"):
        LocusHead(16, kv_pool=0)


def test_global_layers_compute_what_torchs_encoder_layer_does() -> None:
    torch.manual_seed(0)
    ours = EncoderLayer(32, 4).eval()  # radius 0: global attention
    torchs = torch.nn.TransformerEncoderLayer(32, 4, 128, 0.0, "gelu", batch_first=True, norm_first=True).eval()
    torchs.load_state_dict(ours.state_dict())  # the same parameter names
    x = torch.randn(2, 12, 32)
    torch.testing.assert_close(ours(x, (3, 4)), torchs(x), rtol=1e-5, atol=1e-5)
