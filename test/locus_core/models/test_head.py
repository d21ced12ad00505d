"""LoCUS head: output shape and norm for any grid, position encoding, gradients, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core.models.errors import ModelError
from locus_core.models.head import LocusHead, NormalizeHead, sinusoidal_position_encoding


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), scales=st.integers(1, 3), batch=st.integers(1, 2))
def test_head_output_is_normalised_for_any_grid(h: int, w: int, scales: int, batch: int) -> None:
    torch.manual_seed(0)
    head = LocusHead(16, dim=8, hidden=32, layers=2, heads=4, scales=scales)
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
