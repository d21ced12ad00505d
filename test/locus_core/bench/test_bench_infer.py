from __future__ import annotations

import json
from pathlib import Path

import pytest

from locus_core.cli.main import main


def test_bench_infer_json_has_the_contract_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path))
    assert main(["bench", "infer", "--json", "--model", "backbone:test", "--size", "64", "80",
                 "--warmup", "0", "--repeats", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["name"] for r in rows] == ["backbone:test onnxruntime"]
    row = rows[0]
    assert {"name", "p50_ms", "p95_ms", "baseline", "baseline_p50_ms", "speedup"} <= set(row)
    assert row["baseline"] == "pytorch eager cpu"
    assert row["speedup"] == pytest.approx(row["baseline_p50_ms"] / row["p50_ms"])
    assert row["extra"]["parity"] >= 0.999


def test_bench_infer_rejects_bad_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "infer", "--model", "backbone:test", "--repeats", "0"]) == 2
    assert "need --warmup >= 0 and --repeats >= 1" in capsys.readouterr().err
