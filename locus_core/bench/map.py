"""Landmark map search: the map's approximate index per query frame at 10^6 landmarks vs exact search
(recall of the exact neighbours, bytes per landmark with the map's landmark table)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from locus_core.bench import BenchResult
from locus_core.bench.errors import BenchError
from locus_core.cli import integer_at_least, integers_at_least

if TYPE_CHECKING:
    import numpy as np

    from locus_core.mapping.landmarks import LandmarkTable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--landmarks", type=integer_at_least(1), default=1_000_000, help="map size N")
    parser.add_argument("--dim", type=integer_at_least(1), default=64, help="descriptor dimension")
    parser.add_argument("--clusters", type=integer_at_least(1), default=20_000,
                        help="appearance clusters of the synthetic descriptors (repeated textures)")
    parser.add_argument("--spread", type=float, default=0.6, help="within-cluster noise (relative to the centre)")
    parser.add_argument("--query-noise", type=float, default=0.5, help="noise of a re-observed landmark's descriptor")
    parser.add_argument("--patches", type=integer_at_least(1), default=600, help="query descriptors per frame")
    parser.add_argument("--frames", type=integer_at_least(1), default=20, help="timed query frames")
    parser.add_argument("--recall-frames", type=integer_at_least(1), default=5, help="query frames scored against exact search")
    parser.add_argument("--baseline-frames", type=integer_at_least(1), default=2, help="timed frames of the (slow) exact baseline")
    parser.add_argument("--k", type=integer_at_least(1), default=3, help="neighbours per query descriptor (the localizer's knn)")
    parser.add_argument("--nprobe", type=integers_at_least(1), default="8,12,16", help="comma-separated IVF cells visited per query")
    parser.add_argument("--nlist", type=integer_at_least(0), default=0, help="IVF cells (0: about 4 sqrt(N))")
    parser.add_argument("--kind", default="ivf_pq", choices=["ivf_pq", "ivf_sq8"], help="approximate index kind")
    parser.add_argument("--extra-observations", type=float, default=3.0,
                        help="observations per landmark beyond the first (memory figure; redkitchen maps: "
                             "2.0 with raw xfeat, 3.1 with the trained model)")
    parser.add_argument("--warmup", type=integer_at_least(0), default=2)
    parser.add_argument("--seed", type=int, default=0)


def synthetic_landmarks(n: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    """Unit descriptors in clusters (real landmark descriptors repeat: walls, floors, textures)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((clusters, dim), dtype=np.float32))
    x = centres[rng.integers(0, clusters, n)]
    x += spread / np.sqrt(dim) * rng.standard_normal((n, dim), dtype=np.float32)
    return _unit(x)


def query_frames(landmarks: np.ndarray, frames: int, patches: int, noise: float, seed: int) -> list[np.ndarray]:
    """Per frame: re-observations of random landmarks (their descriptor plus noise)."""
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    dim = landmarks.shape[1]
    out = []
    for _ in range(frames):
        q = landmarks[rng.integers(0, len(landmarks), patches)].copy()
        q += noise / np.sqrt(dim) * rng.standard_normal(q.shape, dtype=np.float32)
        out.append(_unit(q))
    return out


def run(args: argparse.Namespace) -> list[BenchResult]:
    import faiss
    import numpy as np

    from locus_core.bench.timing import measure
    from locus_core.mapping.index import LandmarkIndex

    if not args.extra_observations >= 0:  # before the map and the baseline, not in the table after them
        raise BenchError(f"--extra-observations must be >= 0, got {args.extra_observations}")
    n = args.landmarks
    x = synthetic_landmarks(n, args.dim, args.clusters, args.spread, args.seed)
    ids = np.arange(n, dtype=np.int64)
    queries = query_frames(x, max(args.frames + args.warmup, args.recall_frames), args.patches, args.query_noise, args.seed)
    scored = queries[: args.recall_frames]
    truth = [exact_knn(x, q, args.k) for q in scored]
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(x)
    base_timing = measure(_frame_runner(lambda q: exact.search(q, args.k), queries), warmup=args.warmup,
                          repeats=args.baseline_frames)
    del exact

    index = LandmarkIndex.build(x, ids, kind=args.kind, nlist=args.nlist, seed=args.seed)
    table = _synthetic_table(n, args.extra_observations, args.seed)
    table.anchored_at(np.zeros(1, np.int64))  # the localizer's pose refinement builds this index
    index_bytes = index.memory_bytes()
    per_landmark = (index_bytes + table.nbytes()) / n
    del x
    results = []
    for nprobe in args.nprobe:
        index.set_nprobe(nprobe)
        found = [index.search(q, args.k)[1] for q in scored]
        recall1 = float(np.mean([(f[:, 0] == t[:, 0]).mean() for f, t in zip(found, truth)]))
        recallk = float(np.mean([
            np.mean([len(set(a) & set(b)) / args.k for a, b in zip(f, t)]) for f, t in zip(found, truth)
        ]))
        timing = measure(_frame_runner(lambda q: index.search(q, args.k), queries), warmup=args.warmup, repeats=args.frames)
        results.append(BenchResult.from_timings(
            f"map search {n:.0e} {args.kind} nprobe={nprobe} ({args.patches} queries/frame)",
            timing,
            baseline=f"exact IndexFlatIP float32 ({4 * args.dim} B/vector)",
            baseline_timing=base_timing,
            extra={
                "landmarks": n,
                "nlist": int(faiss.extract_index_ivf(index._index).nlist),
                "nprobe": nprobe,
                "recall_at_1": round(recall1, 4),
                f"recall_at_{args.k}": round(recallk, 4),
                "bytes_per_landmark": round(per_landmark, 1),
                "index_bytes_per_landmark": round(index_bytes / n, 1),
                "table_bytes_per_landmark": round(table.nbytes() / n, 1),
                "threads": faiss.omp_get_max_threads(),
            },
        ))
    return results


def exact_knn(x: np.ndarray, queries: np.ndarray, k: int, chunk: int = 200_000) -> np.ndarray:
    """Ids of the exact top-k inner products (torch matmul in chunks: the reference for recall)."""
    import numpy as np
    import torch

    q = torch.from_numpy(queries)
    best_s = torch.full((len(q), k), -float("inf"))
    best_i = torch.zeros((len(q), k), dtype=torch.long)
    for start in range(0, len(x), chunk):
        s = q @ torch.from_numpy(x[start : start + chunk]).T
        top_s, top_i = s.topk(min(k, s.shape[1]), dim=1)
        merged_s = torch.cat([best_s, top_s], 1)
        merged_i = torch.cat([best_i, top_i + start], 1)
        order = merged_s.topk(k, dim=1).indices
        best_s, best_i = merged_s.gather(1, order), merged_i.gather(1, order)
    return best_i.numpy().astype(np.int64)


def _frame_runner(search, queries: list[np.ndarray]):
    state = {"i": 0}

    def one() -> None:
        search(queries[state["i"] % len(queries)])
        state["i"] += 1

    return one


def _synthetic_table(n: int, extra: float, seed: int) -> LandmarkTable:
    """A landmark table of the map's real layout, with ``extra`` observations per landmark."""
    import numpy as np

    from locus_core.mapping.landmarks import LandmarkTable

    rng = np.random.default_rng(seed)
    m = int(round(extra * n))
    return LandmarkTable(
        offset=rng.normal(size=(n, 3)).astype(np.float16),
        anchor=rng.integers(0, n // 400 + 1, n).astype(np.uint32),
        anchor_uv=rng.integers(0, 320, (n, 2)).astype(np.uint16),
        extra_landmark=np.sort(rng.integers(0, n, m)).astype(np.uint32),
        extra_keyframe=rng.integers(0, n // 400 + 1, m).astype(np.uint32),
        extra_uv=rng.integers(0, 320, (m, 2)).astype(np.uint16),
    )


def _unit(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return x / np.linalg.norm(x, axis=1, keepdims=True)
