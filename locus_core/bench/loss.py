"""Vectorised Smooth-AP forward+backward: ours (chunked, exact) against the naive form."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from locus_core.bench import BenchResult
from locus_core.bench.errors import BenchError

if TYPE_CHECKING:
    import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--landmarks", type=int, default=32, help="n, compared with the naive form")
    parser.add_argument("--patches", type=int, default=4096, help="m, compared with the naive form")
    parser.add_argument("--large-landmarks", type=int, default=64, help="n of the ours-only run (0: skip)")
    parser.add_argument("--large-patches", type=int, default=16384, help="m of the ours-only run")
    parser.add_argument("--dim", type=int, default=64, help="descriptor dimension d")
    parser.add_argument("--positives", type=float, default=0.02, help="fraction of pairs that are positive")
    parser.add_argument("--candidates", type=float, default=0.8, help="fraction of pairs ranked (⊇ positives)")
    parser.add_argument("--temperature", type=float, default=0.01)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)


def naive_smooth_ap(
    landmarks: torch.Tensor,
    patches: torch.Tensor,
    positive: torch.Tensor,
    candidates: torch.Tensor,
    temperature: float = 0.01,
) -> torch.Tensor:
    """The baseline: every positive pair against its landmark's whole row, one (|P|, m) matrix.

    Same definition as :func:`locus_core.losses.vectorized_smooth_ap` (per-row ranking), written
    the obvious vectorised way, so autograd keeps several (|P|, m) tensors for the backward pass.
    """
    import torch

    s = landmarks @ patches.T
    rows, cols = positive.nonzero(as_tuple=True)
    sig = torch.sigmoid((s[rows] - s[rows, cols][:, None]) / temperature)
    # The j == i term is sigmoid(0) = 1/2: 1 + sum over j != i = 1/2 + sum over all j.
    r_all = 0.5 + (sig * candidates[rows]).sum(1)
    r_pos = 0.5 + (sig * positive[rows]).sum(1)
    return (r_pos / r_all).mean()


def random_problem(
    n: int, m: int, dim: int, positives: float, candidates: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """L2-normalised random descriptors and masks with the requested positive/candidate fractions."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    landmarks = torch.nn.functional.normalize(torch.randn(n, dim, generator=gen), dim=1)
    patches = torch.nn.functional.normalize(torch.randn(m, dim, generator=gen), dim=1)
    cand = torch.rand(n, m, generator=gen) < candidates
    pos = cand & (torch.rand(n, m, generator=gen) < positives / candidates)
    return landmarks.requires_grad_(), patches.requires_grad_(), pos, cand


def run(args: argparse.Namespace) -> list[BenchResult]:
    import torch

    from locus_core.bench.memory import peak_tensor_bytes
    from locus_core.bench.timing import measure, measure_pair
    from locus_core.losses import vectorized_smooth_ap

    _check(args)

    def step(fn, problem, keep_grads=False):  # noqa: ANN001, ANN202 - a closure over one problem
        landmarks, patches, positive, candidates = problem

        def call() -> tuple[torch.Tensor, torch.Tensor | None]:
            value = fn(landmarks, patches, positive, candidates, args.temperature)
            value.backward()
            grads = torch.cat([landmarks.grad.flatten(), patches.grad.flatten()]) if keep_grads else None
            # Freed inside the measured call, so that every call starts from the same memory.
            landmarks.grad = patches.grad = None
            return value.detach(), grads

        return call

    results = []
    problem = random_problem(args.landmarks, args.patches, args.dim, args.positives, args.candidates, args.seed)
    ours_step, naive_step = step(vectorized_smooth_ap, problem), step(naive_smooth_ap, problem)
    value_ours, grads_ours = step(vectorized_smooth_ap, problem, keep_grads=True)()
    value_naive, grads_naive = step(naive_smooth_ap, problem, keep_grads=True)()
    ours_mem, naive_mem = peak_tensor_bytes(ours_step), peak_tensor_bytes(naive_step)
    ours_time, naive_time = measure_pair(ours_step, naive_step, warmup=args.warmup, repeats=args.repeats)
    cosine = float(torch.nn.functional.cosine_similarity(grads_ours.double(), grads_naive.double(), dim=0))
    results.append(BenchResult.from_timings(
        f"loss fwd+bwd {args.landmarks}x{args.patches}",
        ours_time,
        baseline="naive (|P| x m autograd)",
        baseline_timing=naive_time,
        extra={
            "positive_pairs": int(problem[2].sum()),
            "threads": torch.get_num_threads(),
            "peak_mb": ours_mem / 2**20,
            "baseline_peak_mb": naive_mem / 2**20,
            "memory_ratio": naive_mem / max(ours_mem, 1),
            "value_abs_diff": abs(float(value_ours) - float(value_naive)),
            "grad_cosine": cosine,
        },
    ))
    if args.large_landmarks > 0:
        problem = random_problem(args.large_landmarks, args.large_patches, args.dim, args.positives,
                                 args.candidates, args.seed)
        large_step = step(vectorized_smooth_ap, problem)
        large_mem = peak_tensor_bytes(large_step)
        large_time = measure(large_step, warmup=min(args.warmup, 1), repeats=max(1, math.ceil(args.repeats / 2)))
        results.append(BenchResult.from_timings(
            f"loss fwd+bwd {args.large_landmarks}x{args.large_patches}",
            large_time,
            extra={"positive_pairs": int(problem[2].sum()), "threads": torch.get_num_threads(),
                   "peak_mb": large_mem / 2**20,
                   "baseline": "not run (its |P| x m tensors grow quadratically)"},
        ))
    return results


def _check(args: argparse.Namespace) -> None:
    for name in ("landmarks", "patches", "dim", "repeats"):
        if getattr(args, name) < 1:
            raise BenchError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.large_landmarks > 0 and args.large_patches < 1:
        raise BenchError(f"--large-patches must be >= 1, got {args.large_patches}")
    if not 0 < args.positives <= args.candidates <= 1:
        raise BenchError(f"need 0 < --positives <= --candidates <= 1, got {args.positives} and {args.candidates}")
    if args.temperature <= 0 or args.warmup < 0:
        raise BenchError(f"need --temperature > 0 and --warmup >= 0, got {args.temperature} and {args.warmup}")
