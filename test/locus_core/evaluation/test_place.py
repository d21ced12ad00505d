from __future__ import annotations

import numpy as np
import pytest
import torch

from locus_core.evaluation.place import nearest_patch, recall_at_k, vote_ranking


def test_recall_at_k_counts_answerable_queries_only() -> None:
    ranking = np.array([[0, 1], [1, 0], [0, 1]])
    hits = np.array([[True, False], [True, False], [False, False]])
    recall, n = recall_at_k(ranking, hits, ks=(1, 2))
    assert n == 2
    assert recall == {1: 0.5, 2: 1.0}


def test_recall_needs_enough_columns() -> None:
    with pytest.raises(ValueError, match="fewer than k=5"):
        recall_at_k(np.zeros((1, 2), int), np.zeros((1, 3), bool))


def test_vote_ranking_finds_the_frame_with_the_same_patches() -> None:
    gen = torch.Generator().manual_seed(0)
    db = [torch.nn.functional.normalize(torch.randn(30, 16, generator=gen), dim=-1) for _ in range(4)]
    queries = [db[2] + 0.01 * torch.randn(30, 16, generator=gen), db[0]]
    ranking = vote_ranking([torch.nn.functional.normalize(q, dim=-1) for q in queries], db, top=3)
    assert ranking.shape == (2, 3)
    assert ranking[:, 0].tolist() == [2, 0]


def test_nearest_patch_matches_a_full_argmax_across_chunks() -> None:
    gen = torch.Generator().manual_seed(1)
    queries, database = torch.randn(7, 8, generator=gen), torch.randn(50, 8, generator=gen)
    database[33] = database[5]  # a tie: the earlier row wins, as with argmax
    queries[0] = database[5] * 10
    sim, idx = nearest_patch(queries, database, chunk=16)
    full = queries @ database.T
    assert torch.equal(idx, full.argmax(1))
    assert torch.allclose(sim, full.max(1).values)
    assert idx[0] == 5


def test_nearest_patch_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        nearest_patch(torch.zeros(3, 4), torch.zeros(0, 4))
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        nearest_patch(torch.zeros(3, 4), torch.zeros(5, 2))


def test_frames_without_votes_are_not_retrieved() -> None:
    # Every query patch is nearest to frame 3: frames 0-2 get no vote and must not fill the top 3,
    # or frame 0, a hit, would count as found at k=3.
    db = [torch.eye(4)[k : k + 1] for k in range(4)]
    ranking = vote_ranking([torch.eye(4)[3:]], db, top=3)
    assert ranking.tolist() == [[3, -1, -1]]
    recall, _ = recall_at_k(ranking, np.array([[True, False, False, False]]), ks=(1, 3))
    assert recall == {1: 0.0, 3: 0.0}
