from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from locus_core.mapping.errors import MapError
from locus_core.mapping.index import LandmarkIndex, choose_kind, default_nlist, top_k_rows


def unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "ivf_pq", "ivf_sq8"])
def test_search_remove_reconstruct_round_trip(kind: str) -> None:
    rng = np.random.default_rng(0)
    x = unit(rng, 2000)
    ids = np.arange(2000, dtype=np.int64) * 3
    index = LandmarkIndex.build(x, ids, kind=kind, nlist=32, nprobe=32)
    sims, found = index.search(x[:50], 2)
    np.testing.assert_array_equal(found[:, 0], ids[:50])
    assert index.remove(ids[:10]) == 10 and index.ntotal == 1990
    _, found = index.search(x[:10], 1)
    assert not np.isin(found, ids[:10]).any()
    vecs, got = index.reconstruct_all()
    order = np.argsort(got)
    np.testing.assert_array_equal(got[order], ids[10:])
    cosine = (vecs[order] * x[10:]).sum(1)
    assert np.median(cosine) > 0.98 and cosine.min() > 0.7, (np.median(cosine), cosine.min())  # codes are lossy
    again = LandmarkIndex.from_bytes(index.to_bytes(), nprobe=32)
    assert again.kind == kind and again.ntotal == 1990
    np.testing.assert_array_equal(again.search(x[10:20], 1)[1][:, 0], ids[10:20])
    # a loaded index decodes the same vectors (merging saved maps reads them; a loaded fast-scan
    # index crashed the process)
    loaded_vecs, loaded_ids = again.reconstruct_all()
    np.testing.assert_array_equal(loaded_ids, got)
    np.testing.assert_array_equal(loaded_vecs, vecs)
    np.testing.assert_array_equal(again.reconstruct(got[[7, 0, 7]]), vecs[[7, 0, 7]])  # by id (mapping on in a loaded map)
    assert again.reconstruct(np.zeros(0, np.int64)).shape == (0, 16)


def test_kind_and_errors() -> None:
    assert choose_kind(10, 100) == "flat" and choose_kind(101, 100) == "ivf_pq"
    assert default_nlist(10**6) == 4096
    assert default_nlist(7772) == 128 and default_nlist(100) == 16  # >= 39 training points per cell
    rng = np.random.default_rng(1)
    with pytest.raises(MapError, match="cannot train"):
        LandmarkIndex.build(unit(rng, 10), np.arange(10), kind="ivf_sq8", nlist=64)
    with pytest.raises(MapError, match="not a readable faiss index"):
        LandmarkIndex.from_bytes(b"garbage", source="x/index.faiss")
    index = LandmarkIndex.build(unit(rng, 10), np.arange(10), kind="flat")
    with pytest.raises(MapError, match="dimension 8"):
        index.add(unit(rng, 2, 8), np.array([20, 21]))


@pytest.mark.parametrize("seed", range(5))
def test_top_k_rows_equals_torch_topk(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 50)), int(rng.integers(1, 3000))
    k = int(rng.integers(1, min(m, 40) + 1))
    scores = torch.from_numpy(rng.normal(size=(n, m)).astype(np.float32))
    if seed % 2:
        scores = scores.round(decimals=1)  # ties
    values, cols = top_k_rows(scores, k)
    expected = scores.topk(k, dim=1).values
    torch.testing.assert_close(values, expected)
    torch.testing.assert_close(scores.gather(1, cols), expected)  # the columns hold those values


def test_top_k_rows_rejects_bad_k() -> None:
    with pytest.raises(MapError, match="k must be in"):
        top_k_rows(torch.zeros(2, 5), 6)


@pytest.mark.parametrize("kind", ["ivf_pq", "ivf_sq8"])
def test_ivf_search_equals_faiss_own_quantizer(kind: str) -> None:
    rng = np.random.default_rng(2)
    x = unit(rng, 5000)
    index = LandmarkIndex.build(x, np.arange(5000), kind=kind, nlist=100, nprobe=7)
    queries = unit(rng, 300)
    sims, ids = index.search(queries, 3)
    own = faiss.extract_index_ivf(index._index)
    own_sims, own_ids = own.search(queries, 3)
    np.testing.assert_array_equal(ids, own_ids)
    np.testing.assert_allclose(sims, own_sims, rtol=1e-5)


def test_nprobe_above_nlist_visits_every_cell() -> None:
    rng = np.random.default_rng(3)
    x = unit(rng, 1000)
    index = LandmarkIndex.build(x, np.arange(1000), kind="ivf_sq8", nlist=16, nprobe=64)
    assert faiss.extract_index_ivf(index._index).nprobe == 16
    np.testing.assert_array_equal(index.search(x[:100], 1)[1][:, 0], np.arange(100))  # exhaustive: exact
