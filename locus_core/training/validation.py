"""Validation during training: patch-retrieval AP on held-out frames.

The AP itself is the evaluation task's (``locus_core.evaluation.retrieval.average_precision``), so
training logs and evaluation reports measure the same thing; this module only skips the
precision-recall curves the reports draw, which training does not need every epoch.
"""

from __future__ import annotations

import torch


def patch_retrieval_ap(
    feats: torch.Tensor, points: torch.Tensor, *, radius: float, kappa: float = 10.0,
    queries: int = 300, seed: int = 0, chunk: int = 32,
) -> float:
    """Mean AP of ``queries`` random valid patches (drawn with ``seed``: the same for every model)
    retrieving the patches of the other frames.

    Args:
        feats: (F, D, h, w) L2-normalised features of F frames (one scale).
        points: (F, h*w, 3) world points of the same patches (NaN = no valid depth).
        radius: positives within this many metres; kappa: candidates within this many.
    Returns:
        Mean AP over queries with at least one positive (NaN if none has).
    """
    from locus_core.evaluation.retrieval import average_precision, sample_queries
    from locus_core.geometry import pairwise_distances

    F, D, h, w = feats.shape
    if points.shape != (F, h * w, 3):
        raise ValueError(f"points: expected ({F}, {h * w}, 3), got {tuple(points.shape)}")
    desc = feats.permute(0, 2, 3, 1).reshape(F * h * w, D).float()
    pts = points.reshape(F * h * w, 3).float()
    frame = torch.arange(F).repeat_interleave(h * w)
    valid = torch.isfinite(pts).all(dim=1)
    db = valid.nonzero().squeeze(1)
    picked = sample_queries(points, queries, seed)
    aps = []
    for start in range(0, picked.numel(), chunk):
        q = picked[start : start + chunk]
        dist = pairwise_distances(pts[q], pts[db])
        candidates = (dist < kappa) & (frame[db][None, :] != frame[q][:, None])
        aps.append(average_precision(desc[q] @ desc[db].T, candidates & (dist < radius), candidates))
    ap = torch.cat(aps) if aps else torch.zeros(0, dtype=torch.float64)
    ap = ap[~torch.isnan(ap)]
    return float(ap.mean()) if ap.numel() else float("nan")
