"""Task 2: image-level place recognition by patch voting; recall@k with co-visibility hits.

Each query frame's patches vote for the database frame of their nearest database patch (weighted by
the similarity); database frames are ranked by their votes, and a frame without votes is not
retrieved at all. A database frame is a hit for a query when they share at least
``min_covisibility`` of the query's view.
"""

from __future__ import annotations

import numpy as np
import torch


def recall_at_k(ranking: np.ndarray, hits: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> tuple[dict[int, float], int]:
    """Fraction of queries with a hit among their top k, over queries that have any hit at all.

    Args:
        ranking: (Q, K) database indices per query, best first (K >= max(ks)); -1 = nothing retrieved.
        hits: (Q, N_db) bool, which database entries count as correct for each query.
    Returns:
        ({k: recall}, number of queries counted). Recall is NaN when no query can be answered.
    """
    ranking = np.asarray(ranking)
    hits = np.asarray(hits, dtype=bool)
    if ranking.ndim != 2 or hits.ndim != 2 or ranking.shape[0] != hits.shape[0]:
        raise ValueError(f"ranking (Q,K) and hits (Q,N) expected, got {ranking.shape}, {hits.shape}")
    if ranking.shape[1] < max(ks):
        raise ValueError(f"ranking has {ranking.shape[1]} columns, fewer than k={max(ks)}")
    answerable = hits.any(1)
    found = np.take_along_axis(hits, ranking.clip(min=0), axis=1) & (ranking >= 0)
    out = {}
    for k in ks:
        got = found[:, :k].any(1)[answerable]
        out[k] = float(got.mean()) if len(got) else float("nan")
    return out, int(answerable.sum())


def vote_ranking(
    query_features: list[torch.Tensor], database_features: list[torch.Tensor], top: int = 5
) -> np.ndarray:
    """Rank database frames for every query frame by nearest-patch voting (exact search).

    Args:
        query_features: Q tensors (P_q, D), L2-normalised patch features of each query frame.
        database_features: N tensors (P_n, D), the same for each database frame.
        top: how many frames to return per query.
    Returns:
        (Q, min(top, N)) database positions, best first; -1 past the frames that got a vote, so
        that a query whose votes fall on few frames is not credited with arbitrary ones.
    """
    if not database_features:
        raise ValueError("empty database")
    db = torch.cat(database_features).float()
    owner = np.repeat(np.arange(len(database_features)), [len(f) for f in database_features])
    top = min(top, len(database_features))
    ranking = np.full((len(query_features), top), -1, dtype=np.int64)
    for q, feats in enumerate(query_features):
        sim, nn = nearest_patch(feats.float(), db)
        votes = np.bincount(owner[nn.numpy()], weights=sim.clamp(min=0).double().numpy(),
                            minlength=len(database_features))
        voted = np.argsort(-votes, kind="stable")[: min(top, int(np.count_nonzero(votes)))]
        ranking[q, : len(voted)] = voted
    return ranking


def nearest_patch(
    queries: torch.Tensor, database: torch.Tensor, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact maximum inner product: (similarity (Q,), index (Q,)) of each query's best database row.

    Chunked matmuls stay in cache: measured 5-10x faster than faiss' flat index (a build without
    AVX2) on 320 x 96k x 64 blocks, the size of one redkitchen query frame against the database.

    Args:
        queries: (Q, D); database: (M, D), M > 0.
    """
    if queries.ndim != 2 or database.ndim != 2 or queries.shape[1] != database.shape[1] or len(database) == 0:
        raise ValueError(f"(Q,D) queries and non-empty (M,D) database expected, got {tuple(queries.shape)}, "
                         f"{tuple(database.shape)}")
    best = torch.full((len(queries),), float("-inf"))
    index = torch.zeros(len(queries), dtype=torch.long)
    for start in range(0, len(database), chunk):
        sim, arg = (queries @ database[start : start + chunk].T).max(1)
        better = sim > best  # strict: ties keep the earlier row, as a full argmax would
        best = torch.where(better, sim, best)
        index = torch.where(better, arg + start, index)
    return best, index
