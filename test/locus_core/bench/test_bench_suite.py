from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from locus_core.bench.record import environment
from locus_core.cli.main import main

KEYS = {"name", "p50_ms", "p95_ms", "baseline", "baseline_p50_ms", "speedup"}


def test_suite_saves_results_with_each_benchmarks_resolved_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert main(["bench", "suite", "--only", "loss", "--quick", "--json", "--report", str(out)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    saved = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert saved == printed and len(saved) == 1 and KEYS <= set(saved[0])
    assert "speedup" in (out / "results.txt").read_text()
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["benchmarks"]["suite"]["only"] == ["loss"]
    assert config["benchmarks"]["loss"]["repeats"] == 3 and config["benchmarks"]["loss"]["large_landmarks"] == 0
    assert config["environment"]["torch_threads"] >= 1


def test_single_benchmark_report_records_its_arguments(tmp_path: Path) -> None:
    out = tmp_path / "loss"
    assert main(["bench", "loss", "--landmarks", "4", "--patches", "128", "--large-landmarks", "0",
                 "--repeats", "1", "--warmup", "0", "--report", str(out)]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["benchmarks"]["loss"]["patches"] == 128
    assert "func" not in config["benchmarks"]["loss"]


def test_environment_names_the_machine() -> None:
    env = environment()
    assert {"cpu", "cpu_flags", "cores_usable", "load_average", "torch", "onnxruntime", "git_commit"} <= set(env)
    assert len(env["load_average"]) == 3


def test_every_benchmark_accepts_what_the_suite_passes_it() -> None:
    from locus_core.bench import benchmark_modules
    from locus_core.bench.suite import ORDER, _argv

    modules = benchmark_modules()
    suite_args = argparse.Namespace(quick=True, model="backbone:test", runtime="onnxruntime", data="/some/data")
    for name in ORDER:
        parser = argparse.ArgumentParser(prog=name, exit_on_error=False)
        modules[name].add_arguments(parser)
        parser.parse_args(_argv(name, suite_args))  # raises on an unknown option


def test_a_report_that_cannot_be_completed_leaves_the_previous_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # results.jsonl and results.txt were written before the environment was read: when that failed,
    # the new results sat beside the previous run's config.yaml, as if measured under its settings.
    from locus_core.bench import BenchResult, record

    out = tmp_path / "report"
    record.save_report(out, [BenchResult("old", 1.0, 2.0)], {"loss": {"repeats": 10}})
    before = {name: (out / name).read_text() for name in ("results.jsonl", "results.txt", "config.yaml")}

    def broken() -> dict:
        raise RuntimeError("CUDA driver gone")

    monkeypatch.setattr(record, "environment", broken)
    with pytest.raises(RuntimeError, match="CUDA driver gone"):
        record.save_report(out, [BenchResult("new", 5.0, 6.0)], {"loss": {"repeats": 1}})
    assert {name: (out / name).read_text() for name in before} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def test_a_failing_benchmark_is_reported_and_the_others_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # node runs late in the suite: on a machine without ROS it lost every result measured before it
    from locus_core.bench import benchmark_modules, map as bench_map

    assert "map" in benchmark_modules()

    def broken(args):
        raise RuntimeError("faiss is missing")

    monkeypatch.setattr(bench_map, "run", broken)
    out = tmp_path / "report"
    assert main(["bench", "suite", "--only", "map", "--only", "loss", "--quick", "--json", "--report", str(out)]) == 1
    saved = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert saved[0]["name"] == "map: failed" and saved[0]["extra"]["error"] == "RuntimeError: faiss is missing"
    assert len(saved) == 2 and saved[1]["p50_ms"] > 0  # loss still ran
