"""The localizer node live: RGB-D at 30 Hz over DDS into ``locus_localizer``, measured from the
message stamp to the published answer, with the processed frame rate and the node's memory.

Runs real processes (no rclpy in this module): the node (``python -m locus_ros.localizer_node``)
and a camera driver (``python -m locus_ros.bench_driver``) publishing frames of a real recording
(``../shared/data/7scenes-redkitchen`` test frames; a synthetic 480x640 scene when absent), stamped
with the wall clock. Ours: the node with ``--device`` (default auto: the fastest runtime here) and
``--localizer-config`` (e.g. tracking between full localizations); baseline: the same node on eager
PyTorch (``--baseline-device cpu``; ``none`` skips it) with the default localizer. Latency
is stamp → ``~/place_matches`` of every processed frame (the pose, when there is one, is published
just before); the newest-wins queue drops what the node cannot process, so the processed rate is
reported beside it. Memory: the node's RSS sampled every second; growth = the last sample of the
measurement over the one a tenth into it (a 10-minute run: ``--duration 600``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from locus_core.bench import BenchResult
from locus_core.bench.errors import BenchError
from locus_core.bench.recordings import REAL_DATA, ROOT, cached_map, recording


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="'default', a checkpoint or backbone:NAME")
    parser.add_argument("--data", type=Path, help=f"recording (default: {REAL_DATA}, synthetic when absent)")
    parser.add_argument("--map-frames", default="0:600:5", help="frames the map is built from (train split)")
    parser.add_argument("--query-frames", default="600:1000", help="frames published to the node (test split)")
    parser.add_argument("--device", default="auto", help="the node's device (auto|cpu|cuda|onnxruntime|tensorrt)")
    parser.add_argument("--baseline-device", default="cpu", help="the baseline node's device; 'none' skips it")
    parser.add_argument("--localizer-config", type=Path, default=None,
                        help="YAML of LocalizerConfig overrides for our node (its localizer_config); the baseline's "
                             "localizer keeps the defaults")
    parser.add_argument("--rate", type=float, default=30.0, help="camera frames per second")
    parser.add_argument("--warmup", type=float, default=10.0, help="s of input before measuring")
    parser.add_argument("--duration", type=float, default=60.0, help="s measured per node")
    parser.add_argument("--preload", type=int, default=60, help="query frames the driver keeps in memory (cycled)")
    parser.add_argument("--out", type=Path, help="keep node logs and driver results here (default: a temporary folder)")


def _rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _run_node(args: argparse.Namespace, device: str, data: Path, query: str, map_dir: Path, work: Path,
              localizer_config: Path | None = None) -> dict[str, Any]:
    """One node + driver run; the driver's JSON plus the node's RSS samples (s since start, bytes)."""
    import yaml

    work.mkdir(parents=True, exist_ok=True)
    params = {"locus_localizer": {"ros__parameters": {
        "mode": "localization", "map_path": str(map_dir), "model": args.model, "device": device,
        "publish_tf": True, "tf_timeout": 0.05, "worker_queue_size": 1,
        "localizer_config": str(Path(localizer_config).resolve()) if localizer_config else "",
    }}}
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    from locus_ros.transport import LOCAL_TRANSPORTS  # driver and node share this host

    transports = os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", LOCAL_TRANSPORTS)
    import torch

    # The thread count this process runs under (`locus bench --threads N`, recorded in the report),
    # for the node too: it is a process of its own, which would otherwise take every core.
    env = dict(os.environ, PYTHONUNBUFFERED="1", FASTDDS_BUILTIN_TRANSPORTS=transports,
               OMP_NUM_THREADS=str(torch.get_num_threads()))
    env.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    with (work / "node.log").open("w") as node_log, (work / "driver.log").open("w") as driver_log:
        node = subprocess.Popen([sys.executable, "-m", "locus_ros.localizer_node", "--ros-args", "--params-file", str(work / "params.yaml")],
                                cwd=ROOT, env=env, stdout=node_log, stderr=subprocess.STDOUT)
        driver = subprocess.Popen(
            [sys.executable, "-m", "locus_ros.bench_driver", str(data), "--frames", query, "--rate", str(args.rate),
             "--warmup", str(args.warmup), "--duration", str(args.duration), "--preload", str(args.preload),
             "--out", str(work / "driver.json")],
            cwd=ROOT, env=env, stdout=driver_log, stderr=subprocess.STDOUT,
        )
        rss: list[tuple[float, int]] = []  # (wall time, bytes): the driver's stamps are wall times too
        try:
            while driver.poll() is None:
                if node.poll() is not None:
                    raise BenchError(f"the node exited ({node.returncode}): see {work / 'node.log'}")
                value = _rss_bytes(node.pid)
                if value is not None:
                    rss.append((time.time(), value))
                time.sleep(1.0)
        finally:
            for proc in (driver, node):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            for proc in (driver, node):
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    if driver.returncode != 0 or not (work / "driver.json").is_file():
        raise BenchError(f"the driver failed ({driver.returncode}): {(work / 'driver.log').read_text()[-2000:]}")
    result = json.loads((work / "driver.json").read_text())
    result["rss"] = rss
    result["runtime_line"] = next((line for line in (work / "node.log").read_text().splitlines() if "(hash " in line), "")
    return result


def _summary(name: str, run: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(Timing of stamp → place_matches, extra figures) of one run."""
    import numpy as np

    from locus_core.bench.timing import Timing

    matches = np.asarray(run["latency_s"]["place_matches"]) * 1e3
    poses = np.asarray(run["latency_s"]["pose"]) * 1e3
    if matches.size == 0:
        raise BenchError(f"{name}: the node answered no frame in {run['duration_s']} s")
    timing = Timing(float(np.percentile(matches, 50)), float(np.percentile(matches, 95)), matches.tolist())
    # Growth from a tenth into the measurement to its end: by then the model, the map, the runtime's
    # arenas and the DDS buffers have reached their working size; what grows after that is a leak.
    settle = run["start_time"] + run["warmup_s"] + 0.1 * run["duration_s"]
    end = run["start_time"] + run["warmup_s"] + run["duration_s"]
    settled = [value for t, value in run["rss"] if settle <= t <= end]
    extra = {
        "input": f"{run['size'][1]}x{run['size'][0]} RGB-D at {run['rate_hz']:g} Hz",
        "published": run["published"],
        "processed": int(matches.size),
        "processed_fps": matches.size / run["duration_s"],
        "localized": int(poses.size),
        "pose_latency_p50_ms": float(np.percentile(poses, 50)) if poses.size else None,
        "pose_latency_p95_ms": float(np.percentile(poses, 95)) if poses.size else None,
        "driver_late": run["late"],
        "node": run["runtime_line"].split("] ")[-1],
        "rss_mb_start": settled[0] / 2**20 if settled else None,
        "rss_mb_end": settled[-1] / 2**20 if settled else None,
        "rss_growth": (settled[-1] / settled[0] - 1.0) if settled else None,
    }
    return timing, extra


def run(args: argparse.Namespace) -> list[BenchResult]:
    import tempfile

    from locus_core.cache import cache_dir

    # Here, not only in the camera driver: it refuses them after the map is built and the node is up.
    if not (args.rate > 0 and args.duration > 0 and args.warmup >= 0) or args.preload < 1:
        raise BenchError(f"need --rate > 0, --duration > 0, --warmup >= 0 and --preload >= 1, got {args.rate}, "
                         f"{args.duration}, {args.warmup} and {args.preload}")
    if args.localizer_config is not None and not args.localizer_config.is_file():
        raise BenchError(f"--localizer-config {args.localizer_config}: no such file")
    cache = cache_dir() / "bench-node"
    cache.mkdir(parents=True, exist_ok=True)
    data, map_frames, query = recording(args.data, args.map_frames, args.query_frames, cache)
    map_dir = cached_map(args.model, data, map_frames, cache)
    work = args.out or Path(tempfile.mkdtemp(prefix="locus-bench-node-"))
    ours_run = _run_node(args, args.device, data, query, map_dir, work / f"device-{args.device}", args.localizer_config)
    ours, extra = _summary("ours", ours_run)
    baseline_timing, baseline_name = None, None
    if args.baseline_device != "none":
        # A folder of its own even on our device (--localizer-config measured alone): the same one
        # had its node.log and driver.json replace ours.
        base_run = _run_node(args, args.baseline_device, data, query, map_dir,
                             work / f"baseline-device-{args.baseline_device}")
        baseline_timing, base_extra = _summary("baseline", base_run)
        eager = " (eager PyTorch)" if args.baseline_device == "cpu" else ""
        default = ", default localizer" if args.localizer_config else ""
        baseline_name = f"node on device={args.baseline_device}{eager}{default}"
        # The runtime it ran on: a device the node cannot use falls back, said only in its log.
        extra["baseline_node"] = base_extra["node"]
        extra["baseline_processed_fps"] = base_extra["processed_fps"]
        extra["baseline_rss_growth"] = base_extra["rss_growth"]
    extra.update(model=args.model, data=str(data), query_frames=query, map=str(map_dir), work=str(work),
                 localizer_config=str(args.localizer_config or ""))
    return [BenchResult.from_timings(f"node stamp→answer (device={args.device})", ours, baseline=baseline_name,
                                     baseline_timing=baseline_timing, extra=extra)]
