"""Per-frame localization in-process: features + map search + pose, the runtime vs eager PyTorch.

What the node's worker does with each synchronised RGB-D frame (``Localizer.localize``), timed
on posed frames against a map built from other frames of the same data set, with the time of
each stage. ``locus bench node`` measures the live node over DDS (message stamp to answer); this
one isolates the core's share and the runtime's effect on it, without ROS.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from locus_core.bench import BenchResult
from locus_core.bench.errors import BenchError
from locus_core.bench.infer import RUNTIMES, default_specs, runtime_engine

if TYPE_CHECKING:
    from pathlib import Path

    from locus_core.data.frame import PosedFrame
    from locus_core.mapping import Localization


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None,
                        help="posed RGB-D data set (any format open_dataset reads); default: a synthetic "
                             "scene generated for the run")
    parser.add_argument("--map-frames", default=None, metavar="START:STOP[:STEP]",
                        help="frames the map is built from (default: every 4th)")
    parser.add_argument("--query-frames", default=None, metavar="START:STOP[:STEP]",
                        help="frames localized (default: --queries frames halfway between keyframes)")
    parser.add_argument("--queries", type=int, default=20, help="query frames used (at most)")
    parser.add_argument("--model", default=None,
                        help="'default', a checkpoint or 'backbone:NAME' (default: the default model, or "
                             "backbone:xfeat where it is absent)")
    parser.add_argument("--runtime", default="onnxruntime", choices=RUNTIMES,
                        help="runtime compared with eager PyTorch on the same device (default: onnxruntime)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="passes over the query frames")


def run(args: argparse.Namespace) -> list[BenchResult]:
    import numpy as np
    import torch

    from locus_core.bench.memory import peak_tensor_bytes
    from locus_core.bench.timing import measure_pair
    from locus_core.mapping import Localizer, LocalizerConfig, MapConfig, build_map
    from locus_core.models import load_model
    from locus_core.runtime.engines import TorchEngine

    if args.warmup < 0 or args.repeats < 1 or args.queries < 1:
        raise BenchError(f"need --warmup >= 0, --repeats >= 1 and --queries >= 1, got "
                         f"{args.warmup}, {args.repeats} and {args.queries}")
    spec = args.model or default_specs()[0]
    model = load_model(spec).eval()
    label = spec if spec.startswith("backbone:") else model.hash
    engine = runtime_engine(model, args.runtime, f"pipeline localize {label} {args.runtime}")
    if isinstance(engine, BenchResult):
        return [engine]
    eager = model if engine.device.type == "cpu" else TorchEngine(model, engine.device.type)
    with _dataset(args.data) as data_path:
        map_frames, queries, names = _frames(data_path, args)
        landmark_map = build_map(eager, map_frames, MapConfig())
    ours, base = Localizer(landmark_map, engine), Localizer(landmark_map, eager)
    stages: dict[str, list[float]] = {}
    outcomes: dict[str, list[Localization]] = {"ours": [], "base": []}

    def runner(localizer: Localizer, key: str):  # noqa: ANN202 - cycles through the query frames
        state = {"i": 0}

        def one() -> None:
            result = localizer.localize(queries[state["i"] % len(queries)])
            if len(outcomes[key]) < len(queries):
                outcomes[key].append(result)
            if key == "ours" and state["i"] >= args.warmup:  # warm-up calls are not timed either
                for stage, ms in result.latency_breakdown.items():
                    stages.setdefault(stage, []).append(ms)
            state["i"] += 1

        return one

    with torch.inference_mode():
        t_ours, t_base = measure_pair(runner(ours, "ours"), runner(base, "base"), warmup=args.warmup,
                                      repeats=args.repeats * len(queries))
        peak = peak_tensor_bytes(lambda: base.localize(queries[0])) if engine.device.type == "cpu" else None
    extra = {
        "data": names["data"], "map_frames": names["map"], "query_frames": names["query"],
        "keyframes": len(landmark_map.keyframes), "landmarks": int(landmark_map.num_landmarks),
        "map_mb": landmark_map.memory_bytes()["total"] / 2**20,
        "localized": _rate(outcomes["ours"]), "baseline_localized": _rate(outcomes["base"]),
        "max_pose_diff_m": _pose_diff(outcomes["ours"], outcomes["base"]),
        **{f"{stage}_p50_ms": float(np.median(ms)) for stage, ms in stages.items()},
        "rss_peak_mb": _rss_peak_mb(), "threads": torch.get_num_threads(),
        "min_inliers": LocalizerConfig().min_inliers,
    }
    if peak is not None:
        extra["baseline_peak_tensor_mb"] = peak / 2**20
    return [BenchResult.from_timings(f"pipeline localize {label} {engine.name}", t_ours,
                                     baseline=f"pytorch eager {engine.device.type}", baseline_timing=t_base,
                                     extra=extra)]


class _dataset:
    """The data set's path, or a synthetic scene generated in a temporary folder for the run."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._tmp = None

    def __enter__(self) -> Path:
        import tempfile
        from pathlib import Path

        from locus_core.data.synthetic import generate_scene

        if self.path is not None:
            return Path(self.path)
        self._tmp = tempfile.TemporaryDirectory(prefix="locus-bench-pipeline-")
        return generate_scene(Path(self._tmp.name) / "scene", frames=60, rooms=1)

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _frames(path: Path, args: argparse.Namespace) -> tuple[list[PosedFrame], list[PosedFrame], dict[str, str]]:
    """Map and query frames, read into memory (the node gets frames in memory, not from disk)."""
    from locus_core.data import open_dataset

    everything = open_dataset(path)
    indices = everything.indices
    # Default: a revisit, as on a robot that mapped the place: keyframes every 4th frame, queries the
    # frames halfway between them (never a keyframe itself).
    first, stop = indices[0], indices[-1] + 1
    map_sel = args.map_frames or f"{first}:{stop}:4"
    step = 4 * max(1, round(len(indices) / (4 * args.queries)))
    query_sel = args.query_frames or f"{first + 2}:{stop}:{step}"
    map_set, query_set = open_dataset(path, frames=map_sel), open_dataset(path, frames=query_sel)
    queries = [query_set[i] for i in range(min(len(query_set), args.queries))]
    return list(map_set), queries, {"data": everything.name, "map": map_sel, "query": query_sel}


def _rate(results: list[Localization]) -> float:
    return sum(r.localized for r in results) / max(len(results), 1)


def _pose_diff(ours: list[Localization], base: list[Localization]) -> float | None:
    """Largest translation between the two runtimes' poses of the same frame (both localized)."""
    import numpy as np

    diffs = [float(np.linalg.norm(a.T_map_cam[:3, 3] - b.T_map_cam[:3, 3]))
             for a, b in zip(ours, base) if a.localized and b.localized]
    return max(diffs) if diffs else None


def _rss_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
