from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest
import torch

from locus_core.bench import node as bench_node


class Started(Exception):
    pass


def test_the_node_runs_with_the_benchmarks_thread_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `locus bench node --threads 2` set torch's threads in the benchmark process only (and recorded
    # them in the report), while the node, a process of its own, took every core.
    seen = {}

    def popen(argv: list[str], **kwargs: object) -> None:
        seen["env"] = kwargs["env"]
        raise Started

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    parser = argparse.ArgumentParser()
    bench_node.add_arguments(parser)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with pytest.raises(Started):
            bench_node._run_node(parser.parse_args([]), "cpu", tmp_path, "0:2", tmp_path / "map", tmp_path / "work")
    finally:
        torch.set_num_threads(before)
    assert seen["env"]["OMP_NUM_THREADS"] == "1"


def test_our_node_gets_the_localizer_config_as_a_parameter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kwargs: (_ for _ in ()).throw(Started()))
    parser = argparse.ArgumentParser()
    bench_node.add_arguments(parser)
    (tmp_path / "track.yaml").write_text("track_period_s: 2.0\n")
    args = parser.parse_args(["--localizer-config", str(tmp_path / "track.yaml")])
    with pytest.raises(Started):
        bench_node._run_node(args, "cpu", tmp_path, "0:2", tmp_path / "map", tmp_path / "ours", args.localizer_config)
    params = yaml.safe_load((tmp_path / "ours" / "params.yaml").read_text())["locus_localizer"]["ros__parameters"]
    assert params["localizer_config"] == str((tmp_path / "track.yaml").resolve())
    with pytest.raises(Started):
        bench_node._run_node(args, "cpu", tmp_path, "0:2", tmp_path / "map", tmp_path / "base")
    assert yaml.safe_load((tmp_path / "base" / "params.yaml").read_text())["locus_localizer"]["ros__parameters"]["localizer_config"] == ""
    with pytest.raises(bench_node.BenchError, match="--localizer-config .*missing.yaml: no such file"):
        bench_node.run(parser.parse_args(["--localizer-config", str(tmp_path / "missing.yaml"), "--data", str(tmp_path)]))


def fake_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: dict[str, str]) -> list[Path]:
    """bench_node.run without processes: each _run_node call answers at once, logging lines[device]."""
    works: list[Path] = []

    def run_node(args, device, data, query, map_dir, work, localizer_config=None):  # noqa: ANN001, ANN202
        works.append(work)
        return {"latency_s": {"place_matches": [0.01, 0.02], "pose": [0.01]}, "duration_s": 1.0, "start_time": 0.0,
                "warmup_s": 0.0, "rss": [], "size": [480, 640], "rate_hz": 30.0, "published": 30, "late": 0,
                "runtime_line": lines.get(device, "")}

    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bench_node, "recording", lambda data, m, q, cache: (tmp_path, m, q))
    monkeypatch.setattr(bench_node, "cached_map", lambda model, data, frames, cache: tmp_path / "map")
    monkeypatch.setattr(bench_node, "_run_node", run_node)
    return works


def parse_node(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_node.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_ours_and_the_baseline_on_the_same_device_keep_their_own_work_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both went to WORK/device-cpu with --device cpu --baseline-device cpu (the way to measure a
    # --localizer-config alone): the baseline's node.log and driver.json replaced ours.
    works = fake_runs(tmp_path, monkeypatch, {})
    (tmp_path / "track.yaml").write_text("track_period_s: 2.0\n")
    bench_node.run(parse_node("--device", "cpu", "--baseline-device", "cpu", "--out", str(tmp_path / "work"),
                              "--localizer-config", str(tmp_path / "track.yaml")))
    assert len(works) == 2 and works[0] != works[1]


def test_the_runtime_the_baseline_node_ran_on_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A baseline device the node could not use falls back (logged in its node.log only): the row
    # said "node on device=cuda" for a baseline that ran on the CPU.
    line = "[INFO] [1.0] [locus_localizer]: model default (hash a) on "
    fake_runs(tmp_path, monkeypatch, {"onnxruntime": line + "onnxruntime", "cuda": line + "cpu"})
    (result,) = bench_node.run(parse_node("--device", "onnxruntime", "--baseline-device", "cuda"))
    assert result.extra["node"].endswith("model default (hash a) on onnxruntime")
    assert result.extra["baseline_node"].endswith("model default (hash a) on cpu")


@pytest.mark.parametrize(("argv", "flag"), [(["--rate", "0"], "--rate"), (["--duration", "-1"], "--duration"),
                                             (["--warmup", "-1"], "--warmup"), (["--preload", "0"], "--preload")])
def test_impossible_settings_are_refused_before_the_map_and_node(
    argv: list[str], flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the camera driver checked them: after the map was built and the node had loaded the
    # model, as "the driver failed (2)" with its usage text.
    def started(*args: object) -> None:
        raise Started

    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path))
    monkeypatch.setattr(bench_node, "recording", started)
    parser = argparse.ArgumentParser()
    bench_node.add_arguments(parser)
    with pytest.raises(bench_node.BenchError, match=f"{flag} "):
        bench_node.run(parser.parse_args(argv))
