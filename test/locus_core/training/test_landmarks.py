from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from locus_core import geometry
from locus_core.training.landmarks import batch_masks, landmark_masks, sample_landmarks, subsample_patches

SIZE, STRIDE, F = 16, 4, 100.0  # 4x4 patches, 8 cm apart on a wall 2 m away


def _K() -> torch.Tensor:
    c = (SIZE - 1) / 2
    return torch.tensor([[F, 0, c], [0, F, c], [0, 0, 1]], dtype=torch.float64)


def _pose(R: list[list[float]], t: list[float]) -> torch.Tensor:
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.tensor(R, dtype=torch.float64)
    T[:3, 3] = torch.tensor(t, dtype=torch.float64)
    return T


def _scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frame 0: a wall at z = 2. Frame 1: the same wall, camera 5 cm to the left, one patch
    without depth. Frame 2: behind the wall, looking back at a second wall 10 cm behind the first
    (z = 2.1) — its patches are within 20 cm of the first wall's points, but do not see them."""
    I = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    T = torch.stack([_pose(I, [0, 0, 0]), _pose(I, [-0.05, 0, 0]), _pose([[-1, 0, 0], [0, 1, 0], [0, 0, -1]], [0, 0, 4.1])])
    depth = torch.full((3, SIZE, SIZE), 2.0, dtype=torch.float64)
    depth[1, :STRIDE, :STRIDE] = float("nan")  # patch 0 of frame 1: no depth
    K = _K().expand(3, 3, 3).contiguous()
    points = geometry.lift_patches(depth, K, T, STRIDE)
    return points, depth, K, T


def test_masks_on_known_geometry() -> None:
    points, depth, K, T = _scene()
    n = points.shape[1]
    landmark = 0  # frame 0, top-left patch
    pos, cand = landmark_masks(points, depth, K, T, torch.tensor([landmark]), (0.2, 0.25), 0.3)
    assert pos.shape == cand.shape == (2, 1, 3 * n)
    flat = points.reshape(-1, 3)
    dist = (flat - flat[landmark]).norm(dim=1)
    frame = torch.arange(3).repeat_interleave(n)
    p, c = pos[0, 0], cand[0, 0]
    assert not p[landmark] and not c[landmark]  # the landmark itself is don't-care
    assert not (p & ~c).any()
    # Same surface, seen from frames 0 and 1: positives within ρ, negatives in [ρ, κ).
    seen = (frame < 2) & torch.isfinite(dist)
    near = seen & (dist < 0.2)
    near[landmark] = False
    assert near.sum() >= 5 and torch.equal(p[frame < 2], near[frame < 2])
    assert (c[seen & (dist >= 0.2) & (dist < 0.3)]).all()
    assert not c[seen & (dist >= 0.3)].any() and (seen & (dist >= 0.3)).any()  # beyond κ: don't care
    assert not c[n] and not p[n]  # no depth: don't care
    # Across the wall: within ρ in 3D but occluded → neither positive nor negative.
    across = (frame == 2) & (dist < 0.2)
    assert across.any() and not p[across].any() and not c[across].any()
    assert c[(frame == 2) & (dist >= 0.2) & (dist < 0.3)].all()
    # The larger radius: more positives, and still a subset of its candidates.
    assert (pos[1, 0] >= p).all() and pos[1, 0].sum() > p.sum()
    assert not (pos[1] & ~cand[1]).any()


def test_batch_masks_keep_every_positive_and_are_deterministic() -> None:
    points, depth, K, T = _scene()
    kwargs = dict(radii=(0.2,), kappa=0.3, landmarks=4, min_separation=0.1, patch_keep=0.1,
                  visibility_tolerance=0.05)
    a = batch_masks(points, depth, K, T, seed=7, **kwargs)
    b = batch_masks(points, depth, K, T, seed=7, **kwargs)
    assert torch.equal(a.landmark_index, b.landmark_index) and torch.equal(a.patch_index, b.patch_index)
    assert a.landmark_index.numel() >= 1 and a.num_positives > 0
    full_pos, _ = landmark_masks(points, depth, K, T, a.landmark_index, (0.2,), 0.3)
    assert a.num_positives == int(full_pos.sum())  # subsampling dropped no positive
    assert a.positive.shape == a.candidates.shape == (1, a.landmark_index.numel(), a.patch_index.numel())
    assert a.positive.any(dim=2).all()  # landmarks without positives were dropped


def test_no_valid_depth_gives_no_landmarks() -> None:
    points, depth, K, T = _scene()
    depth = torch.full_like(depth, float("nan"))
    points = geometry.lift_patches(depth, K, T, STRIDE)
    masks = batch_masks(points, depth, K, T, radii=(0.2,), kappa=0.3, landmarks=8, min_separation=0.0,
                        patch_keep=1.0, visibility_tolerance=0.05, seed=0)
    assert masks.landmark_index.numel() == 0 and masks.num_positives == 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), count=st.integers(1, 20), sep=st.floats(0.0, 0.5))
def test_sample_landmarks_spread_and_valid(seed: int, count: int, sep: float) -> None:
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(200, 3, generator=g)
    points[::7] = float("nan")
    index = sample_landmarks(points, count, sep, torch.Generator().manual_seed(seed))
    assert 1 <= index.numel() <= count
    chosen = points[index]
    assert torch.isfinite(chosen).all()
    if index.numel() > 1:
        d = torch.cdist(chosen, chosen) + torch.eye(index.numel()) * 1e9
        assert d.min() >= sep - 1e-6
    again = sample_landmarks(points, count, sep, torch.Generator().manual_seed(seed))
    assert torch.equal(index, again)


def _reference_masks(points, depth, K, T, landmarks, radii, kappa, tol):
    """The module docstring's definition, one landmark / patch pair at a time, in numpy."""
    B, n, _ = points.shape
    H, W = depth.shape[1:]
    flat = points.reshape(-1, 3).numpy()
    pos = np.zeros((len(radii), len(landmarks), B * n), dtype=bool)
    cand = np.zeros_like(pos)
    for a, la in enumerate(landmarks.tolist()):
        X = flat[la]
        seen = []
        for b in range(B):
            cam = np.linalg.inv(T[b].numpy()) @ np.append(X, 1.0)
            u, v = (K[b].numpy() @ cam[:3])[:2] / cam[2]
            col, row = np.round(u), np.round(v)
            ok = cam[2] > 0 and 0 <= col <= W - 1 and 0 <= row <= H - 1
            d = depth[b, int(row), int(col)].item() if ok else math.nan
            seen.append(b == la // n or (ok and math.isfinite(d) and d > 0 and cam[2] <= d + tol))
        for j in range(B * n):
            if j == la or not np.isfinite(flat[j]).all():
                continue
            dist = np.linalg.norm(flat[j] - X)
            for s, rho in enumerate(radii):
                if dist < rho:
                    pos[s, a, j] = cand[s, a, j] = seen[j // n]
                elif dist < kappa:
                    cand[s, a, j] = True
    return pos, cand


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_masks_match_the_definition_on_random_scenes(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    B, H, W, stride = 3, 12, 12, 2  # pixels 5 cm apart on a wall 2 m away, cameras ~15 cm apart
    depth = 2.0 + 0.03 * torch.rand(B, H, W, generator=g, dtype=torch.float64)
    r, c = torch.randint(0, 8, (2,), generator=g).tolist()
    depth[:, r : r + 5, c : c + 5] -= 0.5  # a box in front of the wall: occlusions
    depth[torch.rand(B, H, W, generator=g) < 0.1] = float("nan")
    depth[torch.rand(B, H, W, generator=g) < 0.05] = 0.0
    K = torch.tensor([[40.0, 0, 5.5], [0, 40.0, 5.5], [0, 0, 1]], dtype=torch.float64).expand(B, 3, 3)
    T = torch.eye(4, dtype=torch.float64).repeat(B, 1, 1)
    T[:, :3, 3] = 0.15 * torch.randn(B, 3, generator=g, dtype=torch.float64)
    points = geometry.lift_patches(depth, K, T, stride)
    valid = torch.isfinite(points.reshape(-1, 3)).all(1).nonzero().squeeze(1)
    landmarks = valid[torch.randperm(valid.numel(), generator=g)[:6]]
    radii, kappa = (0.2, 0.5), 1.0
    pos, cand = landmark_masks(points, depth, K, T, landmarks, radii, kappa, visibility_tolerance=0.05)
    want_pos, want_cand = _reference_masks(points, depth, K, T, landmarks, radii, kappa, 0.05)
    assert np.array_equal(pos.numpy(), want_pos) and np.array_equal(cand.numpy(), want_cand)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), sep=st.floats(0.05, 0.6))
def test_sample_landmarks_stops_short_only_when_no_point_fits(seed: int, sep: float) -> None:
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(150, 3, generator=g, dtype=torch.float64)
    points[::5] = float("nan")
    index = sample_landmarks(points, 1000, sep, torch.Generator().manual_seed(seed))
    # Fewer than asked: every valid patch is within min_separation of a landmark (greedy is maximal).
    valid = torch.isfinite(points).all(1)
    assert (torch.cdist(points[valid], points[index]).min(dim=1).values < sep).all()


def test_subsample_keeps_fraction_of_negatives() -> None:
    pos = torch.zeros(1, 2, 10000, dtype=torch.bool)
    pos[0, 0, :10] = True
    cand = torch.ones_like(pos)
    cols = subsample_patches(pos, cand, 0.25, torch.Generator().manual_seed(0))
    assert set(range(10)) <= set(cols.tolist())
    assert math.isclose(cols.numel() / 10000, 0.25, abs_tol=0.03)
