from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from locus_core.bench import pipeline
from locus_core.bench.errors import BenchError
from locus_core.data.synthetic import generate_scene
from locus_core.errors import LocusError


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_scene(tmp_path_factory.mktemp("pipeline") / "scene", frames=16, rooms=1, size=(96, 128))


def args_for(scene: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    pipeline.add_arguments(parser)
    return parser.parse_args(["--data", str(scene), "--model", "backbone:test", "--queries", "2",
                              "--repeats", "1", "--warmup", "0", *argv])


def test_pipeline_times_the_localizer_with_both_runtimes(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path))
    (result,) = pipeline.run(args_for(scene))
    assert result.name == "pipeline localize backbone:test onnxruntime"
    assert result.baseline == "pytorch eager cpu"
    assert result.speedup == pytest.approx(result.baseline_p50_ms / result.p50_ms)
    extra = result.extra
    assert extra["map_frames"] == "0:16:4" and extra["query_frames"] == "2:16:8"
    assert extra["keyframes"] >= 1 and extra["map_mb"] > 0 and extra["rss_peak_mb"] > 0
    assert 0 <= extra["localized"] <= 1 and 0 <= extra["baseline_localized"] <= 1
    assert extra["baseline_peak_tensor_mb"] > 0 and "features_p50_ms" in extra


def test_stage_times_leave_out_the_warm_up(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stage p50s cover the timed calls only, like the latency they break down."""
    import dataclasses

    from locus_core.mapping import Localizer

    calls: dict[int, int] = {}
    localize = Localizer.localize

    def numbered(self: Localizer, frame: object):  # noqa: ANN202 - a Localization whose stage time is its call number
        calls[id(self)] = calls.get(id(self), 0) + 1
        return dataclasses.replace(localize(self, frame), latency_breakdown={"features": float(calls[id(self)])})

    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path))
    monkeypatch.setattr(Localizer, "localize", numbered)
    (result,) = pipeline.run(args_for(scene, "--warmup", "2"))
    assert result.extra["features_p50_ms"] == 3.5  # calls 1 and 2 warm up, 3 and 4 are timed


def test_empty_selection_is_named(scene: Path) -> None:
    with pytest.raises(LocusError, match=r"frames '500:600' select nothing"):
        pipeline.run(args_for(scene, "--query-frames", "500:600"))


def test_bad_counts_are_rejected(scene: Path) -> None:
    with pytest.raises(BenchError, match="--queries >= 1"):
        pipeline.run(args_for(scene, "--queries", "0"))
