from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from locus_core.bench import bag
from locus_core.bench.errors import BenchError
from locus_core.data.synthetic import generate_scene


def args_for(scene: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bag.add_arguments(parser)
    return parser.parse_args(["--data", str(scene), "--model", "backbone:test", "--device", "cpu",
                              "--map-frames", "0:16:2", "--query-frames", "1:16:2", "--repeats", "1", *argv])


def test_bag_replay_in_workers_against_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path / "cache"))
    scene = generate_scene(tmp_path / "scene", frames=16, rooms=1, size=(96, 128))
    (result,) = bag.run(args_for(scene))
    assert result.name == "bag replay per frame (2 workers)" and result.baseline.startswith("1 process")
    assert result.speedup == pytest.approx(result.baseline_p50_ms / result.p50_ms)
    extra = result.extra
    assert extra["frames"] == 8 and extra["same_results"] and extra["workers"] == 2 and extra["threads_per_worker"] >= 1
    assert extra["realtime_factor"] > 0 and extra["baseline_realtime_factor"] > 0
    assert (Path(extra["bag"]) / "metadata.yaml").is_file()  # kept for the next run


@pytest.mark.parametrize("workers", [1, 2])
def test_bag_replay_tracking_against_every_frame_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path / "cache"))
    scene = generate_scene(tmp_path / "scene", frames=16, rooms=1, size=(96, 128))
    (result,) = bag.run(args_for(scene, "--track-period", "2", "--workers", str(workers)))
    assert result.name == f"bag replay per frame (tracking, full every 2 s, {workers} worker{'s' * (workers > 1)})"
    assert "every frame in full" in result.baseline
    extra = result.extra
    assert extra["frames"] == 8 and extra["track_period_s"] == 2.0 and 0 <= extra["tracked"] <= 8
    assert set(extra["errors"]) >= {"localized"} and set(extra["baseline_errors"]) >= {"localized"}
    assert "same_results" not in extra and extra["workers"] == workers


def test_per_frame_p95_is_a_percentile_of_the_replays() -> None:
    from types import SimpleNamespace

    replays = [SimpleNamespace(wall_s=wall, frames=[None] * 10) for wall in (0.1, 0.2, 1.0)]  # 10, 20, 100 ms/frame
    assert bag._per_frame_ms(replays) == pytest.approx((20.0, 92.0))  # not the worst, 100


@pytest.mark.parametrize(
    "argv", [["--workers", "1"], ["--workers", "0", "--track-period", "2"], ["--repeats", "0"], ["--max-rate", "-1"],
             ["--track-period", "-1"]]
)
def test_bad_settings_are_rejected(tmp_path: Path, argv: list[str]) -> None:
    with pytest.raises(BenchError, match=r"need --workers >= 2 \(>= 1 with --track-period\)"):
        bag.run(args_for(tmp_path, *argv))


def test_both_sides_are_replayed_warmed_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A WorkerPool's workers warm up before the replay's clock starts; a FrameProcessor replayed as it
    # was loaded timed its runtime's first run (0.3-0.7 s) in its first replay, against it.
    from locus_core.bags import replay as replay_module
    from locus_core.pipeline import FrameProcessor

    warmed: set[int] = set()
    seen: list[bool] = []
    real_warm_up, real_replay = FrameProcessor.warm_up, replay_module.replay

    def warm_up(self: FrameProcessor) -> None:
        warmed.add(id(self))
        real_warm_up(self)

    def replay(bag_path, processor, *args, **kwargs):
        seen.append(id(processor) in warmed)
        return real_replay(bag_path, processor, *args, **kwargs)

    monkeypatch.setattr(FrameProcessor, "warm_up", warm_up)
    monkeypatch.setattr(replay_module, "replay", replay)
    monkeypatch.setenv("LOCUS_CACHE", str(tmp_path / "cache"))
    scene = generate_scene(tmp_path / "scene", frames=16, rooms=1, size=(96, 128))
    bag.run(args_for(scene, "--track-period", "2", "--workers", "1"))
    assert seen == [True, True]
