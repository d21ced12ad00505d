"""`locus bench node` end to end over real DDS, tiny: a node on the test backbone, a camera driver
at 10 Hz for a few seconds; checks what is reported, never how fast (timings are the benchmark's)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("locus.msg")
pytest.importorskip("faiss")

from locus_core.bench import node as bench_node  # noqa: E402
from locus_core.bench.errors import BenchError  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _args(tmp: Path, scene: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_node.add_arguments(parser)
    return parser.parse_args(["--model", "backbone:test", "--data", str(scene), "--map-frames", "0:24:3",
                              "--query-frames", "1:24:2", "--rate", "10", "--warmup", "1", "--duration", "3",
                              "--preload", "6", "--baseline-device", "none", "--out", str(tmp / "work"), *argv])


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from locus_core.data.synthetic import generate_scene

    return generate_scene(tmp_path_factory.mktemp("bench") / "scene", seed=1, rooms=1, frames=24, size=(120, 160))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One LOCUS_CACHE for the module: the benchmark's map is built once."""
    return tmp_path_factory.mktemp("cache")


def test_live_node_benchmark_reports_latency_rate_and_memory(
    tmp_path: Path, scene: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCUS_CACHE", str(cache))
    (result,) = bench_node.run(_args(tmp_path, scene, "--device", "cpu"))
    extra = result.extra
    assert result.name == "node stamp→answer (device=cpu)" and result.baseline is None and result.speedup is None
    assert 0 < result.p50_ms <= result.p95_ms
    assert extra["input"] == "160x120 RGB-D at 10 Hz" and extra["published"] >= 25
    assert 0 < extra["processed"] <= extra["published"] and extra["processed_fps"] > 0
    assert "on cpu" in extra["node"] and extra["rss_mb_end"] > 50 and extra["rss_growth"] is not None
    for name in ("node.log", "driver.log", "driver.json", "params.yaml"):
        assert (tmp_path / "work" / "device-cpu" / name).is_file()


def test_a_node_that_cannot_start_is_reported(tmp_path: Path, scene: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCUS_CACHE", str(cache))
    with pytest.raises(BenchError, match="the node exited"):
        bench_node.run(_args(tmp_path, scene, "--device", "tpu"))
