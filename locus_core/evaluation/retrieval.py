"""Task 1: patch retrieval AP, the paper's place-recognition metric (exact, not smoothed).

Queries are landmark patches sampled from the frames; each query ranks every patch of the *other*
frames. Positives lie within ``rho`` metres of the query's 3D point, candidates within ``kappa``;
patches beyond ``kappa`` (or without depth) are ignored, as in the training loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

RECALL_GRID = np.linspace(0.0, 1.0, 21)


def average_precision(scores: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Exact AP per query, the indicator form of the paper's smooth AP.

    For a positive i: precision_i = (1 + #positives scoring > s_i) / (1 + #candidates scoring > s_i);
    AP = mean of precision_i over the positives. Ties count in the query's favour, as in the paper's
    formula with a step function. Positives outside ``candidates`` are ignored.

    Args:
        scores: (n, m) finite similarities of n queries to m database items.
        positive: (n, m) bool.
        candidates: (n, m) bool, the items that take part in the ranking (positives included).
    Returns:
        (n,) float64 AP; NaN for a query without any positive.
    """
    if scores.ndim != 2 or positive.shape != scores.shape or candidates.shape != scores.shape:
        raise ValueError(
            f"scores, positive, candidates must share an (n, m) shape, got {tuple(scores.shape)}, "
            f"{tuple(positive.shape)}, {tuple(candidates.shape)}"
        )
    if not torch.isfinite(scores).all():
        raise ValueError("scores must be finite")
    precision, positive = _precision_at_positives(scores, positive, candidates)
    num_pos = positive.sum(1)
    ap = (precision * positive).sum(1).double() / num_pos.clamp(min=1).double()
    return torch.where(num_pos > 0, ap, torch.full_like(ap, float("nan")))


def _precision_at_positives(
    scores: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, m) precision at each positive's rank (0 elsewhere; the paper's formula, ties in the query's
    favour) and the positives restricted to candidates."""
    positive = positive & candidates
    m = scores.shape[1]
    neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
    sorted_cand = torch.where(candidates, scores, neg_inf).sort(dim=1).values
    sorted_pos = torch.where(positive, scores, neg_inf).sort(dim=1).values
    above_cand = m - torch.searchsorted(sorted_cand, scores.contiguous(), right=True)
    rank_pos = 1 + m - torch.searchsorted(sorted_pos, scores.contiguous(), right=True)
    precision = rank_pos.float() / (1 + above_cand).float()
    return torch.where(positive, precision, torch.zeros_like(precision)), positive


def interpolated_pr(scores: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor) -> np.ndarray:
    """(n, len(RECALL_GRID)) interpolated precision (max precision at recall >= r) per query; NaN rows
    for queries without positives. Thresholds at each positive's score (ties ranked together).
    Averaged over queries it gives the PR curve of the figures."""
    positive = positive & candidates
    m = scores.shape[1]
    neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype)
    sorted_cand = torch.where(candidates, scores, neg_inf).sort(dim=1).values
    sorted_pos = torch.where(positive, scores, neg_inf).sort(dim=1).values
    at_least_cand = m - torch.searchsorted(sorted_cand, scores.contiguous(), right=False)
    at_least_pos = m - torch.searchsorted(sorted_pos, scores.contiguous(), right=False)
    out = np.full((scores.shape[0], len(RECALL_GRID)), np.nan)
    for q in range(scores.shape[0]):
        mask = positive[q]
        if not mask.any():
            continue
        hits = at_least_pos[q][mask].numpy()
        prec = hits / at_least_cand[q][mask].numpy()
        recall = hits / mask.sum().item()
        reached = recall[None, :] >= RECALL_GRID[:, None] - 1e-12
        out[q] = np.where(reached, prec[None, :], 0.0).max(axis=1)
    return out


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
        queries: (Q,) indices into the flattened N*P patches (see ``sample_queries``).
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
        dist = torch.cdist(pts_filled[q], pts_filled)
        cand = (dist < kappa) & valid[None] & (frame[None] != frame[q][:, None])
        pos = cand & (dist < rho)
        aps.append(average_precision(scores, pos, cand))
        curves.append(interpolated_pr(scores, pos, cand))
    per_query = torch.cat(aps).numpy() if aps else np.zeros(0)
    curve = np.concatenate(curves) if curves else np.zeros((0, len(RECALL_GRID)))
    ok = ~np.isnan(per_query)
    return RetrievalResult(
        ap=float(per_query[ok].mean()) if ok.any() else float("nan"),
        per_query=per_query,
        num_queries=int(ok.sum()),
        pr_curve=np.nanmean(curve, axis=0) if ok.any() else np.full(len(RECALL_GRID), np.nan),
    )
