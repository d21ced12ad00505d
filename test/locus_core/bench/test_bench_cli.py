from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
import torch

from locus_core.cli import bench


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="locus")
    bench.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


TINY = ["--landmarks", "4", "--patches", "256", "--large-landmarks", "0", "--warmup", "0", "--repeats", "1"]


def test_bench_loss_json_prints_one_object_per_result(capsys: pytest.CaptureFixture[str]) -> None:
    # The current count: --threads sets torch's process-wide setting, which other tests share.
    args = parse(["bench", "loss", "--json", "--threads", str(torch.get_num_threads()), *TINY])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert {"name", "p50_ms", "p95_ms", "baseline", "baseline_p50_ms", "speedup"} <= set(obj)


def test_bench_loss_table(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["bench", "loss", *TINY])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "benchmark" in out and "loss fwd+bwd 4x256" in out and "memory_ratio=" in out


def test_unknown_benchmark_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(["bench", "nosuch"])
    assert exc.value.code == 2
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err


def test_building_the_parser_does_not_import_torch() -> None:
    code = ("import sys, argparse; from locus_core.cli import bench; "
            "bench.add_parser(argparse.ArgumentParser().add_subparsers()); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("threads", ["0", "-2", "two"])
def test_threads_below_one_is_a_usage_error(threads: str, capsys: pytest.CaptureFixture[str]) -> None:
    # torch.set_num_threads(0) raised a RuntimeError traceback, after the parser had accepted it.
    with pytest.raises(SystemExit) as exc:
        parse(["bench", "loss", "--threads", threads, *TINY])
    assert exc.value.code == 2
    assert "--threads: expected an integer >= 1" in capsys.readouterr().err


def test_a_report_folder_that_cannot_be_made_is_refused_before_the_benchmark(tmp_path) -> None:  # noqa: ANN001
    # `--report results.txt` (an existing file) ran the whole benchmark, printed it and then ended
    # in a FileExistsError traceback with no report written.
    from locus_core.bench.errors import BenchError

    taken = tmp_path / "results.txt"
    taken.write_text("an earlier table\n")
    args = parse(["bench", "loss", *TINY, "--report", str(taken)])
    args.bench_run = lambda args: pytest.fail("the benchmark ran")
    with pytest.raises(BenchError, match=r"--report .*results.txt: cannot write a report folder there"):
        args.func(args)
    assert taken.read_text() == "an earlier table\n"
