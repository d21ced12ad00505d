"""``locus bench NAME [--json]``: latency (and memory) against a baseline measured in the same run.

One sub-subcommand per module in :mod:`locus_core.bench` that defines ``add_arguments`` and ``run``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from locus_core.cli import integer_at_least, plain


def add_parser(sub: argparse._SubParsersAction) -> None:
    from locus_core.bench import benchmark_modules

    p = sub.add_parser("bench", help="benchmarks: p50/p95 latency and speedup against a baseline")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="one JSON object per result instead of a table")
    # Not --out: benchmarks use that for their own working files.
    common.add_argument("--report", default=None, metavar="DIR",
                        help="also write results.jsonl, results.txt and config.yaml (resolved arguments, machine, "
                             "versions, load) into DIR")
    common.add_argument("--threads", type=integer_at_least(1), default=None, metavar="N",
                        help="torch intra-op threads (default: torch's choice); on a shared, loaded machine "
                             "run with OMP_WAIT_POLICY=PASSIVE or threads spin-wait each other out (100x slower)")
    names = p.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for name, module in benchmark_modules().items():
        doc = summary(module.__doc__ or name)
        q = names.add_parser(name, parents=[common], help=doc, description=doc)
        module.add_arguments(q)
        q.set_defaults(func=run, bench_run=module.run)


def summary(docstring: str) -> str:
    """A module docstring's first paragraph on one line (its lines joined up to the first blank one)."""
    paragraph = re.split(r"\n\s*\n", docstring.strip(), maxsplit=1)[0]
    return plain(" ".join(line.strip() for line in paragraph.splitlines()))


def run(args: argparse.Namespace) -> int:
    from locus_core.bench.report import format_json_lines, format_table

    if args.report:
        from locus_core.bench.errors import BenchError

        # Before the run, not after it: a file in the way (or no permission) lost an hour's suite.
        try:
            Path(args.report).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchError(f"--report {args.report}: cannot write a report folder there ({exc.strerror})") from None
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    results = args.bench_run(args)
    print(format_json_lines(results) if args.json else format_table(results), flush=True)
    if args.report:
        from locus_core.bench.record import save_report, settings

        # A suite records each benchmark's own resolved arguments; a single benchmark, its own.
        settings = getattr(args, "resolved_settings", None) or {args.benchmark: settings(args)}
        print(f"report: {save_report(Path(args.report), results, settings)}", flush=True)
    return 1 if getattr(args, "failed", None) else 0

