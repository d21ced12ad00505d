from __future__ import annotations

import argparse

import numpy as np
import pytest

from locus_core.bench import map as bench_map


def small_args(**changes: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_map.add_arguments(parser)
    args = parser.parse_args(["--landmarks", "5000", "--clusters", "200", "--patches", "50", "--frames", "2",
                              "--recall-frames", "2", "--baseline-frames", "1", "--warmup", "0", "--nprobe", "4,64"])
    for key, value in changes.items():
        setattr(args, key, value)
    return args


def test_exact_knn_matches_brute_force() -> None:
    x = bench_map.synthetic_landmarks(3000, 16, 50, 0.6, seed=0)
    q = bench_map.query_frames(x, 1, 40, 0.5, seed=0)[0]
    ids = bench_map.exact_knn(x, q, 3, chunk=700)  # several chunks: the merge across chunks is exercised
    np.testing.assert_array_equal(ids, np.argsort(-(q @ x.T), axis=1)[:, :3])


@pytest.mark.parametrize("kind", ["ivf_pq", "ivf_sq8"])
def test_run_reports_recall_memory_and_speedup(kind: str) -> None:
    coarse, fine = bench_map.run(small_args(kind=kind))
    assert kind in coarse.name and coarse.extra["nprobe"] == 4 and fine.extra["nprobe"] == 64
    assert coarse.speedup == pytest.approx(coarse.baseline_p50_ms / coarse.p50_ms)
    # visiting every cell leaves only the codes' loss
    assert fine.extra["recall_at_1"] >= max(coarse.extra["recall_at_1"], 0.9)
    code_bytes = 32 if kind == "ivf_pq" else 64
    assert fine.extra["index_bytes_per_landmark"] > code_bytes + 8  # + cells and codebooks, amortised at 10^6
    # 14 bytes per landmark + 12 per extra observation (3 by default) + 4 for the anchor index
    assert fine.extra["table_bytes_per_landmark"] == pytest.approx(14 + 12 * 3 + 4, abs=0.5)
    assert fine.extra["bytes_per_landmark"] == pytest.approx(
        fine.extra["index_bytes_per_landmark"] + fine.extra["table_bytes_per_landmark"], abs=0.2)


def test_exact_baseline_gets_the_same_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold baseline against a warm index would inflate the speedup."""
    from locus_core.bench import timing

    warmups = []
    measure = timing.measure

    def recording_measure(fn, *, warmup: int, repeats: int) -> timing.Timing:  # noqa: ANN001
        warmups.append(warmup)
        return measure(fn, warmup=warmup, repeats=repeats)

    monkeypatch.setattr(timing, "measure", recording_measure)
    bench_map.run(small_args(warmup=1, nprobe=[4]))
    assert warmups == [1, 1]  # the exact baseline, then the index


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--frames", "0", "--frames: expected an integer >= 1, got 0"),
        ("--baseline-frames", "0", "--baseline-frames: expected an integer >= 1, got 0"),
        ("--recall-frames", "0", "--recall-frames: expected an integer >= 1, got 0"),
        ("--warmup", "-1", "--warmup: expected an integer >= 0, got -1"),
        ("--nprobe", "8,x", "--nprobe: comma-separated: expected an integer >= 1, got 'x'"),
        ("--nprobe", "0", "--nprobe: comma-separated: expected an integer >= 1, got 0"),
        ("--nlist", "-5", "--nlist: expected an integer >= 0, got -5"),
    ],
)
def test_impossible_settings_are_refused_when_parsed(flag: str, value: str, message: str, capsys) -> None:
    # They were a ValueError traceback (or a NaN recall) after building the synthetic map.
    parser = argparse.ArgumentParser()
    bench_map.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args([flag, value])
    assert message in capsys.readouterr().err


def test_negative_extra_observations_are_refused_before_the_map_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    # A numpy "negative dimensions" traceback once the exact baseline had been timed and the index built.
    monkeypatch.setattr(bench_map, "synthetic_landmarks", lambda *args: pytest.fail("built the map"))
    with pytest.raises(bench_map.BenchError, match="--extra-observations must be >= 0, got -1.0"):
        bench_map.run(small_args(extra_observations=-1.0))
