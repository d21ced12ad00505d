"""Landmark sampling and the positive / negative / don't-care masks of one batch (the LoCUS paper, §3).

Every patch of every frame in the batch is lifted to a 3D world point. A few landmark patches are
sampled; for landmark ``a`` at world point X_a and every patch ``j`` (world point P_j, in frame f_j):

- positive (per radius ρ):  |P_j − X_a| < ρ  and X_a is visible in frame f_j (depth-checked, so a
  patch on the far side of a wall never counts);
- negative:                 ρ ≤ |P_j − X_a| < κ;
- don't care:               |P_j − X_a| ≥ κ, no valid depth, the landmark's own patch, and patches
  within ρ of X_a in frames where X_a is occluded (same place in space, but not the same surface).

``candidates`` = positives ∪ negatives, the sets ``vectorized_smooth_ap`` ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from locus_core import geometry


@dataclass(frozen=True)
class BatchMasks:
    """Landmarks and masks of one batch, over a subsample of its patches.

    Attributes:
        landmark_index: (n,) long flat index (frame * patches_per_frame + patch) of each landmark.
        patch_index: (m,) long flat index of the patches kept (every positive of any scale is kept).
        positive: (S, n, m) bool, one mask per radius.
        candidates: (S, n, m) bool, positives ∪ negatives per radius.
    """

    landmark_index: torch.Tensor
    patch_index: torch.Tensor
    positive: torch.Tensor
    candidates: torch.Tensor

    @property
    def num_positives(self) -> int:
        return int(self.positive.sum())


def sample_landmarks(
    points: torch.Tensor, count: int, min_separation: float, generator: torch.Generator
) -> torch.Tensor:
    """Pick up to ``count`` patches with valid 3D points, pairwise at least ``min_separation`` apart.

    Candidates are visited in a random order and kept greedily, which spreads landmarks over the
    scene without the outlier bias of farthest-point sampling.

    Args:
        points: (N, 3) world points of all patches of the batch; NaN = no valid depth.
        count: landmarks wanted (fewer are returned when the scene is too small).
        min_separation: metres.
        generator: drives the random order (deterministic per batch).
    Returns:
        (n,) long flat patch indices, n <= count.
    """
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"points: expected (N, 3), got {tuple(points.shape)}")
    valid = torch.isfinite(points).all(dim=1).nonzero().squeeze(1)
    if valid.numel() == 0 or count <= 0:
        return torch.zeros(0, dtype=torch.long)
    order = valid[torch.randperm(valid.numel(), generator=generator)]
    pts = points[order].double().numpy()
    chosen: list[int] = []
    min_sq = min_separation * min_separation
    for k in range(len(order)):
        if chosen and min_sq > 0:
            if (((pts[chosen] - pts[k]) ** 2).sum(axis=1) < min_sq).any():
                continue
        chosen.append(k)
        if len(chosen) == count:
            break
    return order[torch.as_tensor(chosen, dtype=torch.long)]


def landmark_masks(
    points: torch.Tensor,
    depth: torch.Tensor,
    K: torch.Tensor,
    T_world_cam: torch.Tensor,
    landmark_index: torch.Tensor,
    radii: tuple[float, ...],
    kappa: float,
    *,
    visibility_tolerance: float = 0.05,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and candidate masks of each landmark against every patch of the batch.

    Args:
        points: (B, n, 3) world points of each frame's patches (``geometry.lift_patches``), NaN = invalid.
        depth: (B, H, W) metres, the depth the points were lifted from (for the occlusion check).
        K: (B, 3, 3) intrinsics of ``depth``; T_world_cam: (B, 4, 4) camera-to-world.
        landmark_index: (L,) long flat indices into the B*n patches.
        radii: positive radii ρ (metres), one mask set per radius.
        kappa: candidate radius κ (metres), larger than every ρ.
        visibility_tolerance: metres behind the observed depth that still counts as visible.
    Returns:
        positive, candidates: (S, L, B*n) bool each, S = len(radii); positive ⊆ candidates.
    """
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points: expected (B, n, 3), got {tuple(points.shape)}")
    B, n, _ = points.shape
    if landmark_index.dim() != 1 or (landmark_index.numel() and int(landmark_index.max()) >= B * n):
        raise ValueError(f"landmark_index: expected (L,) indices < {B * n}")
    if not radii or min(radii) <= 0 or kappa <= max(radii):
        raise ValueError(f"radii {radii} and kappa {kappa}: need 0 < radii < kappa")
    flat = points.reshape(B * n, 3)
    L = landmark_index.numel()
    X = flat[landmark_index]  # (L, 3)
    dist = geometry.pairwise_distances(X.double(), flat.double())  # (L, B*n); NaN rows/cols for invalid points
    valid = torch.isfinite(flat).all(dim=1)[None, :] & torch.isfinite(dist)
    seen = geometry.visible(
        X[None].expand(B, L, 3).contiguous(), depth, K, T_world_cam, visibility_tolerance
    )  # (B, L): landmark a visible in frame b
    own_frame = landmark_index // n
    seen[own_frame, torch.arange(L)] = True  # its own view always sees it (median depth ≠ centre pixel)
    seen_by_patch = seen.T.repeat_interleave(n, dim=1)  # (L, B*n)
    not_self = torch.ones(L, B * n, dtype=torch.bool)
    not_self[torch.arange(L), landmark_index] = False
    within_kappa = valid & not_self & (dist < kappa)
    positives, candidates = [], []
    for rho in radii:
        near = dist < rho
        positives.append(within_kappa & near & seen_by_patch)
        candidates.append(within_kappa & ~(near & ~seen_by_patch))
    return torch.stack(positives), torch.stack(candidates)


def subsample_patches(
    positive: torch.Tensor, candidates: torch.Tensor, keep: float, generator: torch.Generator
) -> torch.Tensor:
    """Columns to keep: every patch positive for some landmark at some scale, plus a random
    ``keep`` fraction of the other candidate patches (memory and time scale with the columns).

    Args:
        positive, candidates: (S, L, M) bool.
    Returns:
        (m,) long sorted column indices.
    """
    any_pos = positive.any(dim=0).any(dim=0)
    any_cand = candidates.any(dim=0).any(dim=0)
    lucky = torch.rand(any_pos.shape, generator=generator) < keep
    return (any_pos | (any_cand & lucky)).nonzero().squeeze(1)


def batch_masks(
    points: torch.Tensor,
    depth: torch.Tensor,
    K: torch.Tensor,
    T_world_cam: torch.Tensor,
    *,
    radii: tuple[float, ...],
    kappa: float,
    landmarks: int,
    min_separation: float,
    patch_keep: float,
    visibility_tolerance: float,
    seed: int,
) -> BatchMasks:
    """Sample landmarks, build their masks and subsample the patches: everything a step needs.

    Deterministic in ``seed``. Landmarks without any positive at any scale are dropped (they carry
    no signal); the result may have zero landmarks, which the trainer skips.
    """
    generator = torch.Generator().manual_seed(int(seed) % (2**63))
    B, n, _ = points.shape
    index = sample_landmarks(points.reshape(B * n, 3), landmarks, min_separation, generator)
    positive, candidates = landmark_masks(
        points, depth, K, T_world_cam, index, radii, kappa, visibility_tolerance=visibility_tolerance
    )
    useful = positive.any(dim=2).any(dim=0)
    index, positive, candidates = index[useful], positive[:, useful], candidates[:, useful]
    columns = subsample_patches(positive, candidates, patch_keep, generator)
    return BatchMasks(index, columns, positive[:, :, columns], candidates[:, :, columns])


def seed_for(*parts: int) -> int:
    """A 63-bit seed from integers (run seed, step, ...), stable across processes and runs."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)
