"""Benchmark reports on disk: the results, the table, and the resolved settings and machine they came from.

Latency figures mean nothing without the machine, thread count, library versions and load they
were measured under, so ``locus bench ... --out DIR`` writes them next to the numbers.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from locus_core.bench import BenchResult
from locus_core.durable import atomic_write_text, written_last

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def environment() -> dict[str, Any]:
    """The machine and software a run measured: CPU (model, cores, SIMD flags), load, threads, versions."""
    import torch

    from locus_core.runtime.engines import cpu_flags

    env: dict[str, Any] = {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_flags": [flag for flag in CPU_FLAGS if flag in cpu_flags()],
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "onnxruntime": _version("onnxruntime"),
        "faiss": _version("faiss"),
        "tensorrt": _version("tensorrt"),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": _git_commit(),
    }
    return env


def settings(args: object) -> dict[str, Any]:
    """A benchmark's resolved arguments (argparse namespace), without the CLI's callables."""
    return {k: v for k, v in vars(args).items() if not callable(v) and k != "resolved_settings"}


def save_report(out: Path, results: Sequence[BenchResult], settings: dict[str, Any]) -> Path:
    """Write ``results.jsonl`` (one object per result), ``results.txt`` (the table) and ``config.yaml``
    (``settings``, the resolved benchmark arguments, plus :func:`environment`) into ``out``."""
    import yaml

    from locus_core.bench.report import format_json_lines, format_table

    out = Path(out)
    # JSON first: tuples become lists and paths strings, which yaml.safe_dump then accepts.
    plain = json.loads(json.dumps({"benchmarks": settings, "environment": environment()}, default=str))
    # All rendered before any is written, each renamed into place whole, and results.jsonl (what
    # tools read) removed first and written last: a failure part-way left new results beside a
    # previous run's config.yaml (or a file cut short) in a reused folder.
    config, table = yaml.safe_dump(plain, sort_keys=False), format_table(results) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    with written_last(out / "results.jsonl", format_json_lines(results) + "\n"):
        atomic_write_text(out / "config.yaml", config)
        atomic_write_text(out / "results.txt", table)
    return out


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    from importlib import import_module

    try:
        return str(import_module(module).__version__)
    except (ImportError, AttributeError):
        return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None
