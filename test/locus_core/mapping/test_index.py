from __future__ import annotations

import numpy as np
import pytest

from locus_core.mapping.errors import MapError
from locus_core.mapping.index import LandmarkIndex, choose_kind, default_nlist


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
