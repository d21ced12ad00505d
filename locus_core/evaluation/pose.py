"""Task 3: relative pose between frame pairs with depth, binned by co-visibility.

Dense features → mutual nearest neighbours between the valid-depth patches of two frames →
3D–3D RANSAC (rigid alignment) or PnP RANSAC (2D–3D) from ``locus_core.mapping.ransac``. 3D–3D
pose goes in two stages: mutual nearest neighbours of a multiscale model's coarse scale (robust to
viewpoint; a one-scale model's only scale) give a first pose, then each patch is matched to its k
most similar patches of the pose scale among those the first pose brings near it
(``guided_top_k``). Errors are against the ground-truth relative pose; a failed estimate counts as
an infinite error, so medians and success rates include failures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation
import torch

from locus_core.geometry import pairwise_distances

# The paper's hard setting is < 40 % overlap; pairs below 10 % rarely share enough surface to solve.
DEFAULT_BINS = (0.1, 0.4, 0.7, 1.0)


def pose_error(T_est: np.ndarray | None, T_gt: np.ndarray) -> tuple[float, float]:
    """(translation error m, rotation error deg) of a relative pose; (inf, inf) when ``T_est`` is None."""
    if T_est is None:
        return float("inf"), float("inf")
    T_est = np.asarray(T_est, dtype=np.float64)
    T_gt = np.asarray(T_gt, dtype=np.float64)
    if T_est.shape != (4, 4) or T_gt.shape != (4, 4):
        raise ValueError(f"4x4 poses expected, got {T_est.shape}, {T_gt.shape}")
    trans = float(np.linalg.norm(T_est[:3, 3] - T_gt[:3, 3]))
    # Angle of the nearest rotation: 7-Scenes poses are ~3e-4 off orthonormal, which the trace
    # formula turns into a 1.6 deg error between a pose and itself.
    rot = float(np.degrees(Rotation.from_matrix(T_est[:3, :3].T @ T_gt[:3, :3]).magnitude()))
    return trans, rot


def summarize(errors: np.ndarray, max_trans_m: float = 0.1, max_rot_deg: float = 5.0) -> dict[str, float]:
    """Median errors and success rate of (N, 2) [translation m, rotation deg] errors (inf = failed);
    a success is within both thresholds (``<=``)."""
    errors = np.asarray(errors, dtype=np.float64).reshape(-1, 2)
    if len(errors) == 0:
        nan = float("nan")
        return {"median_trans_m": nan, "median_rot_deg": nan, "success_rate": nan, "pairs": 0}
    ok = (errors[:, 0] <= max_trans_m) & (errors[:, 1] <= max_rot_deg)
    return {
        "median_trans_m": float(np.median(errors[:, 0])),
        "median_rot_deg": float(np.median(errors[:, 1])),
        "success_rate": float(ok.mean()),
        "pairs": int(len(errors)),
    }


def match_quality(errors: list[np.ndarray], inlier_m: float, rho: float) -> dict[str, float]:
    """How good the matches fed to RANSAC are, from the 3D distance between the ground-truth world
    points of each match's two ends (pairs pooled).

    Args:
        errors: one (M_k,) array of match errors (m) per pair.
        inlier_m: the RANSAC inlier threshold; rho: the model's positive radius.
    Returns:
        matches_per_pair (mean M_k), match_median_error_m, match_within_inlier_m and match_within_rho
        (shares of matches); NaN when there are no pairs or no matches.
    """
    pooled = np.concatenate([np.asarray(e, dtype=np.float64).reshape(-1) for e in errors]) if errors else np.zeros(0)
    nan = float("nan")
    return {
        "matches_per_pair": float(np.mean([len(e) for e in errors])) if errors else nan,
        "match_median_error_m": float(np.median(pooled)) if len(pooled) else nan,
        "match_within_inlier_m": float(np.mean(pooled < inlier_m)) if len(pooled) else nan,
        "match_within_rho": float(np.mean(pooled < rho)) if len(pooled) else nan,
    }


@dataclass(frozen=True)
class PosePair:
    i: int  # positions in the evaluated selection
    j: int
    covisibility: float  # min of the two directions
    bin: int  # the bin it was drawn in: bins[bin] <= covisibility < bins[bin + 1]


def select_pairs(
    covisibility: np.ndarray, bins: tuple[float, ...] = DEFAULT_BINS, per_bin: int = 40, seed: int = 0
) -> list[PosePair]:
    """Up to ``per_bin`` random pairs (i < j) per co-visibility bin [bins[k], bins[k+1]).

    Args:
        covisibility: (N, N) [i, j] = fraction of frame i visible in frame j.
    """
    cov = np.minimum(covisibility, covisibility.T)
    i, j = np.triu_indices(len(cov), k=1)
    rng = np.random.default_rng(seed)
    pairs: list[PosePair] = []
    for k, (lo, hi) in enumerate(zip(bins[:-1], bins[1:])):
        inside = (cov[i, j] >= lo) & ((cov[i, j] < hi) | ((hi >= 1.0) & (cov[i, j] <= hi)))
        pick = np.flatnonzero(inside)
        pick = rng.choice(pick, size=min(per_bin, len(pick)), replace=False) if len(pick) else pick
        pairs += [PosePair(int(i[p]), int(j[p]), float(cov[i[p], j[p]]), k) for p in np.sort(pick)]
    return pairs


def bin_label(lo: float, hi: float) -> str:
    return f"{int(round(lo * 100))}-{int(round(hi * 100))}%"


def mutual_nearest(features_a: torch.Tensor, features_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mutual nearest neighbours by cosine similarity.

    Args:
        features_a: (Na, D), features_b: (Nb, D), L2-normalised.
    Returns:
        (idx_a (M,), idx_b (M,)) long indices of the mutual pairs.
    """
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"(Na,D) and (Nb,D) expected, got {tuple(features_a.shape)}, {tuple(features_b.shape)}")
    if len(features_a) == 0 or len(features_b) == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    sim = features_a.float() @ features_b.float().T
    ab = sim.argmax(1)
    ba = sim.argmax(0)
    idx_a = torch.arange(len(features_a))
    keep = ba[ab] == idx_a
    return idx_a[keep], ab[keep]


def guided_top_k(
    features_a: torch.Tensor, features_b: torch.Tensor, points_a: torch.Tensor, points_b: torch.Tensor,
    radius: float, k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each patch of a paired with its ``k`` most similar patches of b among those within ``radius``.

    With a first pose limiting where a match can be, a patch's best partner is often a neighbour of
    the right one (3D-consistent features are alike over their ρ): keeping the k best for RANSAC
    keeps the right one too, where mutual nearest neighbours often drop the patch.

    Args:
        features_a: (Na, D), features_b: (Nb, D), L2-normalised.
        points_a: (Na, 3), points_b: (Nb, 3) in one frame (b's moved there by a pose estimate).
        radius: metres; k: candidates per patch of a (>= 1).
    Returns:
        (idx_a (M,), idx_b (M,)) long indices, grouped by idx_a in increasing order (a patch with no
        partner in range has none; one with fewer than k has those it has).
    """
    if points_a.shape != (len(features_a), 3) or points_b.shape != (len(features_b), 3):
        raise ValueError(f"points (Na,3), (Nb,3) expected, got {tuple(points_a.shape)}, {tuple(points_b.shape)}")
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"(Na,D) and (Nb,D) expected, got {tuple(features_a.shape)}, {tuple(features_b.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    empty = torch.zeros(0, dtype=torch.long)
    if len(features_a) == 0 or len(features_b) == 0:
        return empty, empty
    near = pairwise_distances(points_a.double(), points_b.double()) < radius
    sim = (features_a.float() @ features_b.float().T).masked_fill(~near, float("-inf"))
    best = sim.topk(min(k, len(features_b)), dim=1)
    keep = torch.isfinite(best.values)
    rows = torch.arange(len(features_a))[:, None].expand_as(keep)
    return rows[keep], best.indices[keep]
