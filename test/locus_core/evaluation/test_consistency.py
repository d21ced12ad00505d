from __future__ import annotations

import numpy as np
import pytest
import torch

from locus_core.evaluation.consistency import bin_by_angle, correspondence_cosine, sample_features, viewpoint_change_deg
from locus_core.geometry import lift_patches


def test_sample_features_at_cell_centres_returns_the_cells() -> None:
    feats = torch.nn.functional.normalize(torch.randn(8, 3, 4), dim=0)
    uv = torch.tensor([[3.5, 3.5], [8 * 3 + 3.5, 8 * 2 + 3.5]])
    out = sample_features(feats, uv, 8)
    assert torch.allclose(out[0], feats[:, 0, 0], atol=1e-5)
    assert torch.allclose(out[1], feats[:, 2, 3], atol=1e-5)


def test_same_view_is_perfectly_consistent() -> None:
    depth = torch.full((24, 32), 2.0)
    K = torch.tensor([[30.0, 0, 16], [0, 30, 12], [0, 0, 1]])
    T = torch.eye(4)
    feats = torch.nn.functional.normalize(torch.randn(8, 3, 4), dim=0)
    pts = lift_patches(depth[None], K[None], T[None], 8)[0]
    cos = correspondence_cosine(feats, feats, pts, depth, K, T, 8)
    assert len(cos) == 12
    assert torch.allclose(cos, torch.ones(12), atol=1e-5)


def test_viewpoint_change_and_bins() -> None:
    T = np.eye(4)
    T[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    assert viewpoint_change_deg(np.eye(4), T) == pytest.approx(90.0)
    # 7-Scenes poses are ~3e-4 off orthonormal: the trace formula read one such pose as 1.6 deg from itself
    skewed = np.eye(4)
    skewed[:3, :3] *= 1 - 3e-4
    assert viewpoint_change_deg(skewed, skewed) == pytest.approx(0.0, abs=1e-6)
    rows = bin_by_angle(np.array([5.0, 15.0]), [np.array([1.0, 0.5]), np.zeros(0)], bins=(0, 10, 20))
    assert rows[0]["mean_cosine"] == 0.75 and rows[1]["pairs"] == 0
