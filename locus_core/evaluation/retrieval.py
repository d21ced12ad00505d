"""Task 1: patch retrieval AP, the paper's place-recognition metric (exact, not smoothed).

Queries are landmark patches sampled from the frames; each query ranks every patch of the *other*
frames. Positives lie within ``rho`` metres of the query's 3D point, candidates within ``kappa``;
patches beyond ``kappa`` (or without depth) are ignored, as in the training loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from locus_core.geometry import pairwise_distances

RECALL_GRID = np.linspace(0.0, 1.0, 21)


def average_precision(scores: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Exact AP per query, the indicator form of the paper's smooth AP.

    For a positive i: precision_i = #positives scoring >= s_i / #candidates scoring >= s_i;
    AP = mean of precision_i over the positives: the paper's formula with a step function that is 1
    at 0, i.e. tied items rank together (as the PR curve's thresholds count them). Counting ties in
    the query's favour gave collapsed, constant features an AP of 1. Positives outside
    ``candidates`` are ignored.

    Args:
        scores: (n, m) finite similarities of n queries to m database items.
        positive: (n, m) bool.
        candidates: (n, m) bool, the items that take part in the ranking (positives included).
    Returns:
        (n,) float64 AP; NaN for a query without any positive.
    """
    return ranking_metrics(scores, positive, candidates)[0]


def interpolated_pr(scores: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor) -> np.ndarray:
    """(n, len(RECALL_GRID)) interpolated precision (max precision at recall >= r) per query, with a
    threshold at each positive's score (ties ranked together); NaN rows for queries without positives.
    Averaged over queries it gives the PR curve of the figures."""
    return ranking_metrics(scores, positive, candidates)[1]


def ranking_metrics(
    scores: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor
) -> tuple[torch.Tensor, np.ndarray]:
    """``average_precision`` and ``interpolated_pr`` from one sort per query (O(m log m))."""
    if scores.ndim != 2 or positive.shape != scores.shape or candidates.shape != scores.shape:
        raise ValueError(
            f"scores, positive, candidates must share an (n, m) shape, got {tuple(scores.shape)}, "
            f"{tuple(positive.shape)}, {tuple(candidates.shape)}"
        )
    if not torch.isfinite(scores).all():
        raise ValueError("scores must be finite")
    n, m = scores.shape
    positive = positive & candidates
    num_pos = positive.sum(1)
    kmax = max(int(num_pos.max()) if n else 0, 1)
    neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype)
    # Positive scores of each query, descending, padded with -inf (only the first num_pos are real).
    pos = torch.where(positive, scores, neg_inf).topk(kmax, dim=1).values
    real = torch.arange(kmax)[None] < num_pos[:, None]
    pos_asc = pos.flip(1).contiguous()
    cand_asc = torch.where(candidates, scores, neg_inf).sort(dim=1).values
    # Thresholds at each positive's score, ties included: positives and candidates at or above it.
    hits = (kmax - torch.searchsorted(pos_asc, pos, right=False)).double()
    retrieved = (m - torch.searchsorted(cand_asc, pos, right=False)).double()
    precision = hits / retrieved.clamp(min=1)
    ap = torch.where(real, precision, 0.0).sum(1) / num_pos.clamp(min=1).double()
    ap = torch.where(num_pos > 0, ap, torch.full_like(ap, float("nan")))
    recall = (hits / num_pos.clamp(min=1)[:, None]).numpy()
    prec = precision.numpy()
    reached = (recall[:, :, None] >= RECALL_GRID[None, None] - 1e-12) & real.numpy()[:, :, None]
    curve = np.where(reached, prec[:, :, None], 0.0).max(axis=1)
    curve[num_pos.numpy() == 0] = np.nan
    return ap, curve


@dataclass(frozen=True)
class RetrievalResult:
    """Mean AP over queries with at least one positive, per-query APs and the mean PR curve."""

    ap: float
    per_query: np.ndarray
    num_queries: int
    pr_curve: np.ndarray  # (len(RECALL_GRID),) mean interpolated precision


def sample_queries(points: torch.Tensor, num: int, seed: int) -> torch.Tensor:
    """Indices into the flattened (N*P) patches of ``num`` random patches with a 3D point.

    Args:
        points: (N, P, 3) world points, NaN = no depth.
    """
    valid = torch.isfinite(points).all(-1).flatten().nonzero().squeeze(1)
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(valid), generator=gen)[: min(num, len(valid))]
    return valid[pick.sort().values]


def patch_retrieval(
    features: torch.Tensor,
    points: torch.Tensor,
    queries: torch.Tensor,
    *,
    rho: float = 0.2,
    kappa: float = 10.0,
    chunk: int = 16,
) -> RetrievalResult:
    """Patch retrieval AP of ``queries`` against every patch of the other frames.

    Args:
        features: (N, P, D) L2-normalised patch features of N frames.
        points: (N, P, 3) world points of the patches, NaN = no depth (never a candidate).
        queries: (Q,) indices into the flattened N*P patches (see ``sample_queries``); a query
            without a 3D point has no positives: NaN in ``per_query``, not counted.
        rho: positive radius (m). kappa: candidate radius (m).
    """
    if features.ndim != 3 or points.shape != (*features.shape[:2], 3):
        raise ValueError(f"features (N,P,D) and points (N,P,3) expected, got {tuple(features.shape)}, "
                         f"{tuple(points.shape)}")
    n, p, d = features.shape
    feats = features.reshape(n * p, d).float()
    pts = points.reshape(n * p, 3).float()
    frame = torch.arange(n).repeat_interleave(p)
    valid = torch.isfinite(pts).all(-1)
    pts_filled = torch.where(valid[:, None], pts, torch.zeros_like(pts))
    aps, curves = [], []
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        scores = feats[q] @ feats.T
        dist = pairwise_distances(pts_filled[q], pts_filled)
        # the zero-filled point of a query without depth would measure its positives from the origin
        cand = (dist < kappa) & valid[None] & valid[q][:, None] & (frame[None] != frame[q][:, None])
        pos = cand & (dist < rho)
        ap, curve = ranking_metrics(scores, pos, cand)
        aps.append(ap)
        curves.append(curve)
    per_query = torch.cat(aps).numpy() if aps else np.zeros(0)
    curve = np.concatenate(curves) if curves else np.zeros((0, len(RECALL_GRID)))
    ok = ~np.isnan(per_query)
    return RetrievalResult(
        ap=float(per_query[ok].mean()) if ok.any() else float("nan"),
        per_query=per_query,
        num_queries=int(ok.sum()),
        pr_curve=np.nanmean(curve, axis=0) if ok.any() else np.full(len(RECALL_GRID), np.nan),
    )
