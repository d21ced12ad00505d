from __future__ import annotations

import json
from pathlib import Path

import pytest

from locus_core.cli.main import main
from locus_core.data.synthetic import generate_scene

KEYS = {"name", "p50_ms", "p95_ms", "baseline", "baseline_p50_ms", "speedup"}
TINY = ["--model", "backbone:test", "--size", "64", "80", "--warmup", "0", "--repeats", "2"]


def rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_bench_infer_json_has_the_contract_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path))
    assert main(["bench", "infer", "--json", *TINY]) == 0
    (row,) = rows(capsys.readouterr().out)
    assert row["name"] == "backbone:test onnxruntime" and KEYS <= set(row)
    assert row["baseline"] == "pytorch eager cpu"
    assert row["speedup"] == pytest.approx(row["baseline_p50_ms"] / row["p50_ms"])
    assert row["extra"]["parity"] >= 0.999 and row["extra"]["baseline_peak_mb"] > 0


def test_reduced_precision_is_scored_on_retrieval_ap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path / "cache"))
    scene = generate_scene(tmp_path / "scene", frames=6, rooms=1, size=(96, 128))
    assert main(["bench", "infer", "--json", *TINY, "--int8", "--runtime", "onnxruntime",
                 "--ap-data", str(scene), "--ap-queries", "50"]) == 0
    onnx, int8 = rows(capsys.readouterr().out)
    assert int8["name"] == "backbone:test onnxruntime-int8"
    for row in (onnx, int8):
        extra = row["extra"]
        assert 0 <= extra["ap"] <= 1 and extra["ap_drop"] == pytest.approx(extra["baseline_ap"] - extra["ap"])
    assert abs(onnx["extra"]["ap_drop"]) < 1e-3  # same features, same AP


def test_bench_infer_rejects_bad_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "infer", "--model", "backbone:test", "--repeats", "0"]) == 2
    assert "need --warmup >= 0 and --repeats >= 1" in capsys.readouterr().err


def test_unavailable_runtime_is_reported_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: nothing to skip")
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path))
    assert main(["bench", "infer", "--json", *TINY, "--runtime", "cuda"]) == 0
    (row,) = rows(capsys.readouterr().out)
    assert row["name"] == "backbone:test cuda"
    assert row["extra"]["skipped"].startswith("cuda: CUDA is not available")


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--size", "-1", "64"], "--size: expected an integer >= 1, got -1"),
     (["--ap-queries", "0"], "--ap-queries: expected an integer >= 1, got 0"),
     (["--ap-queries", "-5"], "--ap-queries: expected an integer >= 1, got -5")],
)
def test_impossible_sizes_and_query_counts_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # --size -1 64 was a torch RuntimeError traceback; --ap-queries 0 scored no query (a NaN AP and
    # ap_drop) and -5 silently scored all patches but five.
    with pytest.raises(SystemExit) as exc:
        main(["bench", "infer", "--model", "backbone:test", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err
