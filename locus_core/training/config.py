"""The training run's configuration: one frozen dataclass per part, nested in :class:`TrainConfig`.

Loaded with :func:`locus_core.config.load_config` (defaults ← ``config/train_*.yaml`` ← ``--set``),
checked by :func:`validate_config` before any data is read, and saved beside every checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from locus_core.models import ModelConfig
from locus_core.training.errors import TrainingError


@dataclass(frozen=True)
class SourceConfig:
    """One posed RGB-D sequence.

    Attributes:
        path: dataset folder or bag (anything ``open_dataset`` reads); relative to the working dir.
        frames: ``"START:STOP[:STEP]"`` selection on source frame indices, or None for all.
        weight: relative probability that a batch is drawn from this source.
    """

    path: str = ""
    frames: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class SyntheticConfig:
    """Procedural scenes (``locus_core.data.synthetic.generate_scene``) generated into the cache.

    Scene ``k`` uses seed ``seed + k``; ``scenes = 0`` trains on real data only. ``weight`` is each
    scene's, as a source's: 2 scenes at 0.1 beside one source at 1.0 are 0.2 / 1.2 of the batches.
    """

    scenes: int = 0
    seed: int = 0
    rooms: int = 3
    frames: int = 120
    size: tuple[int, int] = (240, 320)
    weight: float = 1.0


@dataclass(frozen=True)
class DataConfig:
    """What to train and validate on, and how batches of overlapping frames are drawn.

    Attributes:
        train: real sequences to train on.
        synthetic: procedural scenes added to ``train``.
        val: held-out sequence for the per-epoch patch-retrieval AP (None: no validation).
        batch_frames: frames per batch (the global batch under DDP), all from one sequence.
        min_overlap / max_overlap: co-visibility range between the seed frame and the others.
        covisibility_stride: pixel stride of the co-visibility sample points.

    Backbone features, co-visibility matrices and synthetic scenes are cached under
    ``$LOCUS_CACHE`` (default ``~/.cache/locus``).
    """

    train: tuple[SourceConfig, ...] = ()
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    val: SourceConfig | None = None
    batch_frames: int = 6
    min_overlap: float = 0.15
    max_overlap: float = 0.9
    covisibility_stride: int = 8


@dataclass(frozen=True)
class LandmarkConfig:
    """Landmark sampling and the positive / negative / don't-care masks (radii come from the model).

    Attributes:
        landmarks: landmarks sampled per batch.
        min_separation: metres between any two landmarks (spreads them over the scene).
        kappa: candidates (negatives) lie within this many metres of the landmark.
        visibility_tolerance: depth test tolerance (metres) of the occlusion check.
        patch_keep: fraction of non-positive patches kept per batch (every positive is kept).
    """

    landmarks: int = 64
    min_separation: float = 0.3
    kappa: float = 10.0
    visibility_tolerance: float = 0.05
    patch_keep: float = 0.3


@dataclass(frozen=True)
class OptimConfig:
    """Adam; ``schedule="cosine"``: linear warm-up over ``warmup_steps``, then cosine decay towards
    ``lr * min_lr_ratio`` (a function of the step, so resuming is exact). The decay reaches it one
    step after the last; ending it at the last step would change every learning rate after the
    warm-up, hence the weights that existing configs train."""

    lr: float = 5e-4
    schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    temperature: float = 0.01
    grad_clip: float = 0.0


@dataclass(frozen=True)
class ValidationConfig:
    """Patch retrieval AP on ``data.val``: queries are random valid patches, the database the
    patches of the other frames; positives within ``radius``, candidates within ``landmarks.kappa``.
    ``radius`` is one of ``model.radii`` and picks the scale that is scored (default: the first)."""

    queries: int = 300
    radius: float | None = None
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """A full training run: ``locus train --config config/train_xfeat.yaml``.

    Attributes:
        run_dir: logs, checkpoints (``checkpoints/step-NNNNNN/``) and the final ``model.pt``.
        steps: optimiser steps in total (a resumed run continues up to this many).
        steps_per_epoch: validation and a checkpoint after every epoch.
        checkpoint_every: extra checkpoints between epochs (0: only at epoch ends).
        keep_checkpoints: how many of the newest checkpoints to keep.
        seed: model initialisation, batch drawing and landmark sampling all derive from it.
        threads: torch intra-op threads per process.
        ship_to: also save the final model here (the shipped default model), or None.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    run_dir: str = "runs/train"
    steps: int = 1000
    steps_per_epoch: int = 100
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    seed: int = 0
    threads: int = 2
    ship_to: str | None = None


def validate_config(config: TrainConfig, *, world_size: int = 1) -> None:
    """Reject values that would fail (or silently misbehave) later, before any data is read.

    Raises:
        TrainingError: naming the key and the value at fault.
    """

    def need(ok: bool, key: str, value: object, why: str) -> None:
        if not ok:
            raise TrainingError(f"train config: {key}={value!r}: {why}")

    d, lm, o = config.data, config.landmarks, config.optim
    need(bool(d.train) or d.synthetic.scenes > 0, "data.train", d.train,
         "no training data: list at least one source or set data.synthetic.scenes > 0")
    for i, source in enumerate(d.train):
        need(bool(source.path), f"data.train[{i}].path", source.path, "empty path")
        need(source.weight > 0, f"data.train[{i}].weight", source.weight, "must be > 0")
    # an empty path is the working directory: refused as "unknown data format" after training's
    # features were computed
    if d.val is not None:
        need(bool(d.val.path), "data.val.path", d.val.path, "empty path")
    need(d.synthetic.scenes >= 0, "data.synthetic.scenes", d.synthetic.scenes, "must be >= 0")
    # numpy seeds (scene generation; batches and landmarks from `seed`) refuse negative integers,
    # which would otherwise fail with a traceback after the features were computed
    need(d.synthetic.seed >= 0, "data.synthetic.seed", d.synthetic.seed, "must be >= 0")
    need(d.synthetic.weight > 0, "data.synthetic.weight", d.synthetic.weight, "must be > 0")
    # else found out only when the batch sampler is built, after every feature was computed
    need(d.synthetic.scenes == 0 or d.synthetic.frames >= d.batch_frames, "data.synthetic.frames",
         d.synthetic.frames, f"fewer than data.batch_frames ({d.batch_frames}): a batch is frames of one scene")
    need(d.batch_frames >= 2, "data.batch_frames", d.batch_frames, "need >= 2 frames per batch")
    need(d.batch_frames % world_size == 0, "data.batch_frames", d.batch_frames,
         f"must be divisible by the number of processes ({world_size})")
    need(0.0 <= d.min_overlap < d.max_overlap <= 1.0, "data.min_overlap/max_overlap",
         (d.min_overlap, d.max_overlap), "need 0 <= min_overlap < max_overlap <= 1")
    need(d.covisibility_stride >= 1, "data.covisibility_stride", d.covisibility_stride, "must be >= 1")
    radii = config.model.radii
    need(len(radii) >= 1 and all(r > 0 for r in radii), "model.radii", radii, "need radii > 0")
    need(lm.kappa > max(radii), "landmarks.kappa", lm.kappa, f"must exceed the largest radius {max(radii)}")
    need(lm.landmarks >= 1, "landmarks.landmarks", lm.landmarks, "must be >= 1")
    need(lm.min_separation >= 0, "landmarks.min_separation", lm.min_separation, "must be >= 0")
    need(lm.visibility_tolerance > 0, "landmarks.visibility_tolerance", lm.visibility_tolerance, "must be > 0")
    need(0.0 < lm.patch_keep <= 1.0, "landmarks.patch_keep", lm.patch_keep, "must be in (0, 1]")
    need(o.lr > 0 and o.lr < 1, "optim.lr", o.lr, "must be in (0, 1)")
    need(o.warmup_steps >= 0, "optim.warmup_steps", o.warmup_steps, "must be >= 0")
    need(0.0 <= o.min_lr_ratio <= 1.0, "optim.min_lr_ratio", o.min_lr_ratio, "must be in [0, 1]")
    need(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "must be >= 0")
    need(o.temperature > 0, "optim.temperature", o.temperature, "must be > 0")
    need(o.grad_clip >= 0, "optim.grad_clip", o.grad_clip, "must be >= 0 (0 = off)")
    need(config.validation.queries >= 1, "validation.queries", config.validation.queries, "must be >= 1")
    vr = config.validation.radius
    need(vr is None or any(math.isclose(vr, r) for r in radii), "validation.radius", vr,
         f"must be one of model.radii {list(radii)} (it picks the scale that is validated)")
    need(config.steps >= 1, "steps", config.steps, "must be >= 1")
    need(config.steps_per_epoch >= 1, "steps_per_epoch", config.steps_per_epoch, "must be >= 1")
    need(config.checkpoint_every >= 0, "checkpoint_every", config.checkpoint_every, "must be >= 0")
    need(config.keep_checkpoints >= 1, "keep_checkpoints", config.keep_checkpoints, "must be >= 1")
    need(config.threads >= 1, "threads", config.threads, "must be >= 1")
    need(config.seed >= 0, "seed", config.seed, "must be >= 0")
    need(bool(config.run_dir), "run_dir", config.run_dir, "empty path")
    # else found out only after the whole run, as an OSError when the model is moved into place
    need(not (config.ship_to and Path(config.ship_to).expanduser().is_dir()), "ship_to", config.ship_to,
         "is a folder: give the model file's path")
    if d.val is not None:
        for i, source in enumerate(d.train):
            shared = _shared_frame(source, d.val)
            need(shared is None, "data.val", (d.val.path, d.val.frames),
                 f"validation frames must not be training frames: data.train[{i}] "
                 f"{(source.path, source.frames)!r} selects frame {shared} of the same sequence too")


def _shared_frame(a: SourceConfig, b: SourceConfig) -> int | None:
    """The first source frame index both selections take from the same sequence, or None."""
    from locus_core.data.selection import parse_frames

    if not a.path or not b.path or Path(a.path).resolve() != Path(b.path).resolve():
        return None
    sa, sb = (parse_frames(s.frames or ":") for s in (a, b))
    start_a, start_b = sa.start or 0, sb.start or 0
    step_a, step_b = sa.step or 1, sb.step or 1
    lo = max(start_a, start_b)
    first = lo + (start_a - lo) % step_a  # a's first index >= lo
    # a's indices modulo step_b repeat after step_b of them: looking further finds nothing new
    stop = min(s for s in (first + step_a * step_b, sa.stop, sb.stop) if s is not None)
    for index in range(first, stop, step_a):
        if (index - start_b) % step_b == 0:
            return index
    return None


def validation_scale(config: TrainConfig) -> int:
    """The model scale validation scores: the one whose radius is ``validation.radius``."""
    radius = config.validation.radius
    if radius is None:
        return 0
    return next(s for s, r in enumerate(config.model.radii) if math.isclose(radius, r))


def learning_rate(config: OptimConfig, step: int, total: int) -> float:
    """The learning rate of 0-based ``step`` of ``total``."""
    if config.schedule == "constant":
        return config.lr
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    span = max(1, total - config.warmup_steps)
    progress = min(1.0, max(0.0, (step - config.warmup_steps) / span))
    cosine = config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * warm * cosine
