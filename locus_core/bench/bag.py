"""Bag replay: ``locus bag eval``'s replay in N worker processes vs one, per frame and against the
bag's clock.

The test frames of a recording (``../shared/data/7scenes-redkitchen`` 600:1000:2, i.e. 15 Hz; a
synthetic scene when absent) are written once as an MCAP bag with a camera driver's topics and
replayed against a map of the train frames, through the node's code path
(``locus_core.bags.replay``). Baseline: one process with every thread, every frame localized in
full, as ``locus bag eval`` runs by default; ours: ``--workers`` processes sharing the threads
(``locus bag eval --workers``: the results must be the same frame by frame), or with
``--track-period S`` tracking frames between full localizations S seconds apart
(``locus bag eval --track-period``; with ``--workers`` N > 1 each worker tracks windows of S s in
turn; its pose errors are reported next to the baseline's). The two alternate, ``--repeats`` times
each; per-frame time is the replay's wall time over the frames it localized.
"""

from __future__ import annotations

import argparse
import statistics
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from locus_core.bench import BenchResult
from locus_core.bench.errors import BenchError
from locus_core.bench.recordings import REAL_DATA, cache_key, cached_map, recording
from locus_core.bench.timing import percentile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="'default', a checkpoint or backbone:NAME")
    parser.add_argument("--data", type=Path, help=f"recording (default: {REAL_DATA}, synthetic when absent)")
    parser.add_argument("--map-frames", default="0:600:2", help="frames the map is built from (train split)")
    parser.add_argument("--query-frames", default="600:1000:2", help="frames written to the bag (test split)")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes of ours (1, with --track-period: this process)")
    parser.add_argument("--max-rate", type=float, default=0.0, metavar="HZ",
                        help="localize at most HZ frames per second of bag time (0: every frame)")
    parser.add_argument("--track-period", type=float, default=0.0, metavar="S",
                        help="ours tracks frames between full localizations S s apart (0: every frame in full)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | onnxruntime | tensorrt")
    parser.add_argument("--repeats", type=int, default=2, help="replays of each (alternating)")


def run(args: argparse.Namespace) -> list[BenchResult]:
    import torch

    from locus_core.bags.replay import ReplayConfig, replay
    from locus_core.bags.workers import WorkerPool
    from locus_core.pipeline import FrameProcessor
    from locus_core.cache import cache_dir

    tracking = args.track_period > 0
    if args.workers < (1 if tracking else 2) or args.repeats < 1 or not args.max_rate >= 0 or not args.track_period >= 0:
        raise BenchError(f"need --workers >= 2 (>= 1 with --track-period), --repeats >= 1, --max-rate >= 0 and "
                         f"--track-period >= 0, got {args.workers}, {args.repeats}, {args.max_rate} and {args.track_period}")
    cache = cache_dir() / "bench-bag"
    cache.mkdir(parents=True, exist_ok=True)
    data, map_frames, query = recording(args.data, args.map_frames, args.query_frames, cache)
    map_dir = cached_map(args.model, data, map_frames, cache)
    bag = _bag(data, query, cache)
    config = ReplayConfig(max_rate_hz=args.max_rate)
    threads = torch.get_num_threads()
    processor = FrameProcessor(args.model, args.device)
    processor.load_map(map_dir)
    processor.warm_up()  # as a WorkerPool's workers: no side times its runtime's first run
    overrides = [f"track_period_s={args.track_period}"] if tracking else []
    ours_context: Any
    if args.workers == 1:
        tracker = FrameProcessor(args.model, args.device, overrides=overrides)
        tracker.load_map(map_dir)
        tracker.warm_up()
        ours_context = nullcontext(tracker)
    else:
        ours_context = WorkerPool(args.workers, args.model, map_dir, device=args.device, overrides=overrides)
    workers = f"{args.workers} worker{'s' if args.workers > 1 else ''}"
    name = (f"bag replay per frame (tracking, full every {args.track_period:g} s, {workers})" if tracking
            else f"bag replay per frame ({workers})")
    runs: dict[str, list[Any]] = {"ours": [], "base": []}
    with ours_context as ours:
        for _ in range(args.repeats):
            runs["ours"].append(replay(bag, ours, config))
            runs["base"].append(replay(bag, processor, config))
    ours_ms, base_ms = (_per_frame_ms(runs[k]) for k in ("ours", "base"))
    first = runs["base"][0]
    extra = {
        "realtime_factor": statistics.median(r.realtime_factor for r in runs["ours"]),
        "baseline_realtime_factor": statistics.median(r.realtime_factor for r in runs["base"]),
        "frames": len(first.frames), "bag_duration_s": first.bag_duration_s, "max_rate_hz": args.max_rate,
        "latency_p50_ms": _latency_p50(runs["ours"]), "baseline_latency_p50_ms": _latency_p50(runs["base"]),
        "runtime": processor.runtime, "model": args.model, "data": str(data), "query_frames": query,
        "map": str(map_dir), "bag": str(bag), "baseline_threads": threads,
    }
    extra.update(workers=args.workers, threads_per_worker=getattr(ours, "threads", threads))
    if tracking:
        extra.update(track_period_s=args.track_period, tracked=_tracked(runs["ours"][0]),
                     errors=_errors(runs["ours"][0]), baseline_errors=_errors(first))
    else:
        extra.update(same_results=all(_same(r, first) for r in runs["ours"] + runs["base"]))
    return [BenchResult(name, p50_ms=ours_ms[0], p95_ms=ours_ms[1], baseline=f"1 process, {threads} threads, every frame in full",
                        baseline_p50_ms=base_ms[0], extra=extra)]


def _tracked(result: Any) -> int:
    return sum(f.localization.method == "tracked" for f in result.frames)


def _errors(result: Any) -> dict[str, float]:
    """Localized share and translation errors (m) of a replay's poses against its ground truth."""
    from locus_core.evaluation.pose import pose_error

    errors = [pose_error(f.localization.T_map_cam, f.T_gt)[0] for f in result.frames
              if f.localization.localized and f.T_gt is not None]
    share = sum(f.localization.localized for f in result.frames) / max(1, len(result.frames))
    if not errors:
        return {"localized": share}
    return {"localized": share, "median_m": statistics.median(errors), "p95_m": percentile(errors, 95), "max_m": max(errors)}


def _bag(data: Path, frames: str, cache: Path) -> Path:
    """The query frames as an MCAP bag, written once per data set and selection."""
    import shutil

    from locus_core.bags.convert import write_bag
    from locus_core.data import open_dataset

    path = cache / f"bag-{cache_key(data, frames)}"
    if not (path / "metadata.yaml").is_file():
        shutil.rmtree(path, ignore_errors=True)  # a run interrupted while writing
        write_bag(open_dataset(data, frames=frames), path, storage="mcap")
    return path


def _per_frame_ms(results: list[Any]) -> tuple[float, float]:
    """(median, 95th percentile) over the replays of wall time per localized frame, ms."""
    per_frame = [r.wall_s * 1e3 / len(r.frames) for r in results]
    return percentile(per_frame, 50), percentile(per_frame, 95)


def _latency_p50(results: list[Any]) -> float:
    return statistics.median(f.localization.latency_ms for r in results for f in r.frames)


def _same(a: Any, b: Any) -> bool:
    """Frame by frame the same stamps, decisions and inlier counts."""
    return _decisions(a) == _decisions(b)


def _decisions(result: Any) -> list[tuple[float, bool, int]]:
    return [(f.stamp, f.localization.localized, f.localization.inliers) for f in result.frames]
