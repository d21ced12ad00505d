from __future__ import annotations

import argparse

import pytest
import torch

from locus_core.bench import loss
from locus_core.bench.errors import BenchError
from locus_core.losses import vectorized_smooth_ap


def small_args(**changes: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    loss.add_arguments(parser)
    args = parser.parse_args(["--landmarks", "8", "--patches", "512", "--large-landmarks", "4",
                              "--large-patches", "1024", "--warmup", "0", "--repeats", "2"])
    for key, value in changes.items():
        setattr(args, key, value)
    return args


def test_naive_baseline_agrees_with_ours() -> None:
    problem = loss.random_problem(8, 300, 16, 0.05, 0.8, seed=1)
    problem = tuple(t.detach().double() if t.is_floating_point() else t for t in problem)
    torch.testing.assert_close(loss.naive_smooth_ap(*problem), vectorized_smooth_ap(*problem), rtol=1e-12, atol=0)


def test_random_problem_has_the_requested_fractions() -> None:
    _, _, positive, candidates = loss.random_problem(32, 4096, 8, 0.02, 0.8, seed=0)
    assert not (positive & ~candidates).any()
    assert positive.float().mean() == pytest.approx(0.02, abs=0.002)
    assert candidates.float().mean() == pytest.approx(0.8, abs=0.01)


def test_run_reports_both_forms_with_memory_and_agreement() -> None:
    compared, large = loss.run(small_args())
    assert compared.name == "loss fwd+bwd 8x512" and compared.baseline is not None
    assert compared.speedup == pytest.approx(compared.baseline_p50_ms / compared.p50_ms)
    assert compared.extra["value_abs_diff"] < 1e-5
    assert compared.extra["grad_cosine"] > 0.99999
    assert compared.extra["peak_mb"] < compared.extra["baseline_peak_mb"]
    assert large.name == "loss fwd+bwd 4x1024" and large.baseline is None and large.extra["peak_mb"] > 0


def test_large_run_can_be_skipped() -> None:
    assert len(loss.run(small_args(large_landmarks=0))) == 1


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"patches": 0}, "--patches must be >= 1"), ({"positives": 0.9}, "--positives <= --candidates"),
     ({"temperature": 0.0}, "--temperature > 0")],
)
def test_bad_settings_raise(changes: dict, match: str) -> None:
    with pytest.raises(BenchError, match=match):
        loss.run(small_args(**changes))
