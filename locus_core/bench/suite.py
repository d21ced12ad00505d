"""Every benchmark in one run (infer, loss, map, pipeline, node, bag), each with its own defaults.

``locus bench suite --report DIR`` is the command behind the README's performance table: one report
with every result, the resolved arguments of each benchmark and the machine they ran on. A benchmark
that fails is reported as such (its error in the row) and the others still run; the command then
exits with status 1.
"""

from __future__ import annotations

import argparse
import logging

from locus_core.bench import BenchResult
from locus_core.bench.errors import BenchError

log = logging.getLogger(__name__)

ORDER = ("infer", "loss", "map", "pipeline", "node", "bag")
# --quick: a smoke run of the whole suite in a few minutes (figures not for the README).
QUICK: dict[str, list[str]] = {
    "infer": ["--warmup", "1", "--repeats", "5"],
    "loss": ["--warmup", "1", "--repeats", "3", "--large-landmarks", "0"],
    "map": ["--landmarks", "100000", "--clusters", "2000", "--frames", "5", "--recall-frames", "2",
            "--baseline-frames", "1", "--nprobe", "16"],
    "pipeline": ["--queries", "5", "--repeats", "1", "--warmup", "1"],
    "node": ["--warmup", "5", "--duration", "15"],
    "bag": ["--repeats", "1"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", action="append", choices=ORDER, default=None, metavar="NAME",
                        help=f"run only these benchmarks (repeatable; default: {', '.join(ORDER)})")
    parser.add_argument("--quick", action="store_true", help="few repeats and small sizes: a smoke run")
    parser.add_argument("--model", default=None, help="model for infer, pipeline, node and bag (their default otherwise)")
    parser.add_argument("--data", default=None, help="posed RGB-D data set for pipeline, node and bag")
    parser.add_argument("--runtime", default=None, choices=("onnxruntime", "cuda", "tensorrt", "cpu-bf16", "cuda-bf16"),
                        help="runtime for infer and pipeline, device of node and bag (their default otherwise)")


def run(args: argparse.Namespace) -> list[BenchResult]:
    from locus_core.bench import benchmark_modules
    from locus_core.bench.record import settings

    modules = benchmark_modules()
    results: list[BenchResult] = []
    failed: list[str] = []
    resolved: dict[str, dict] = {"suite": settings(args)}
    for name in args.only or ORDER:
        if name not in modules:
            raise BenchError(f"benchmark {name!r} is not in this checkout (found: {', '.join(modules)})")
        parser = argparse.ArgumentParser(prog=f"locus bench {name}", add_help=False)
        modules[name].add_arguments(parser)
        sub_args = parser.parse_args(_argv(name, args))
        resolved[name] = settings(sub_args)
        try:
            results.extend(modules[name].run(sub_args))
        except Exception as exc:  # noqa: BLE001  one benchmark that cannot run (no ROS here) must not lose the others'
            log.error("bench %s failed: %s: %s", name, type(exc).__name__, exc)
            nan = float("nan")
            results.append(BenchResult(f"{name}: failed", nan, nan, extra={"error": f"{type(exc).__name__}: {exc}"}))
            failed.append(name)
    args.resolved_settings = resolved
    args.failed = failed
    return results


def _argv(name: str, args: argparse.Namespace) -> list[str]:
    argv = list(QUICK[name]) if args.quick else []
    if args.model and name in ("infer", "pipeline", "node", "bag"):
        argv += ["--model", args.model]
    if args.runtime and name in ("infer", "pipeline"):
        argv += ["--runtime", args.runtime]
    if args.runtime and name in ("node", "bag") and not args.runtime.endswith("-bf16"):  # the node runs fp32
        argv += ["--device", args.runtime]
    if args.data and name in ("pipeline", "node", "bag"):
        argv += ["--data", args.data]
    return argv
