"""Batches of overlapping frames from one scene, drawn from several scenes (real and synthetic).

A batch needs frames that see the same places from different viewpoints, otherwise it has no
cross-view positives. Each batch picks a scene (by weight), a seed frame, and frames whose
co-visibility with the seed lies in ``[min_overlap, max_overlap]`` (not near-duplicates, not
strangers). A batch is a pure function of (seed, step), so a resumed or distributed run draws
exactly the batches an uninterrupted single-process run draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from locus_core.training.errors import TrainingError


@dataclass(frozen=True)
class Batch:
    """``frames`` are positions in scene ``scene``'s frame list (not source frame indices)."""

    scene: int
    frames: tuple[int, ...]


class OverlapSampler:
    """Draws ``batch_frames`` frames of one scene around a random seed frame.

    Args:
        covisibility: (N, N) [i, j] = fraction of frame i's points visible in frame j.
        batch_frames: frames per batch (<= N).
        min_overlap, max_overlap: overlap range with the seed frame (symmetrised: the smaller of
            [i, j] and [j, i], so both frames see a good part of each other).
        name: the scene (its source and frames), named in errors.
    """

    def __init__(
        self, covisibility: np.ndarray, batch_frames: int, min_overlap: float, max_overlap: float,
        *, name: str,
    ) -> None:
        covisibility = np.asarray(covisibility, dtype=np.float64)
        if covisibility.ndim != 2 or covisibility.shape[0] != covisibility.shape[1]:
            raise TrainingError(f"{name}: co-visibility: expected a square matrix, got {covisibility.shape}")
        n = covisibility.shape[0]
        if batch_frames > n:
            raise TrainingError(f"{name}: data.batch_frames={batch_frames} exceeds the scene's {n} frames")
        self.batch_frames = batch_frames
        overlap = np.minimum(covisibility, covisibility.T)
        np.fill_diagonal(overlap, -1.0)
        self._overlap = overlap
        self._in_range = (overlap >= min_overlap) & (overlap <= max_overlap)
        seeds = np.flatnonzero(self._in_range.sum(axis=1) >= 1)
        self._seeds = seeds if seeds.size else np.arange(n)

    def __len__(self) -> int:
        return self._overlap.shape[0]

    def draw(self, rng: np.random.Generator) -> tuple[int, ...]:
        """Seed frame first, then partners in range (random), then the best-overlapping others."""
        seed = int(rng.choice(self._seeds))
        partners = np.flatnonzero(self._in_range[seed])
        rng.shuffle(partners)
        chosen = [seed, *partners[: self.batch_frames - 1].tolist()]
        if len(chosen) < self.batch_frames:
            taken = set(chosen)
            by_overlap = [int(j) for j in np.argsort(-self._overlap[seed], kind="stable") if j not in taken]
            chosen += by_overlap[: self.batch_frames - len(chosen)]
        return tuple(int(c) for c in chosen)


class MixedSampler:
    """One :class:`OverlapSampler` per scene; batch ``step`` of run ``seed`` is deterministic."""

    def __init__(self, samplers: Sequence[OverlapSampler], weights: Sequence[float]) -> None:
        if not samplers or len(samplers) != len(weights):
            raise TrainingError("need one weight per scene and at least one scene")
        w = np.asarray(weights, dtype=np.float64)
        if (w <= 0).any():
            raise TrainingError(f"scene weights must be > 0, got {list(weights)}")
        self.samplers = list(samplers)
        self._p = w / w.sum()

    def batch(self, seed: int, step: int) -> Batch:
        rng = np.random.default_rng([int(seed), int(step), 0x5A3])
        scene = int(rng.choice(len(self.samplers), p=self._p))
        return Batch(scene, self.samplers[scene].draw(rng))
