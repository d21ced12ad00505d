"""Open the training and validation sequences of a config and turn them into cached tensors.

Everything that can fail on bad input (missing folders, unreadable frames, frames without depth or
pose) fails here, before the first optimisation step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from locus_core.cache import cache_dir
from locus_core.training import distributed
from locus_core.training.config import SourceConfig, TrainConfig
from locus_core.training.errors import TrainingError
from locus_core.training.feature_cache import SceneTensors, load_scene

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scene:
    tensors: SceneTensors
    covisibility: np.ndarray
    weight: float


def synthetic_sources(config: TrainConfig) -> list[SourceConfig]:
    """Generate (once, into the cache) the procedural scenes the config asks for."""
    syn = config.data.synthetic
    if syn.scenes == 0:
        return []
    from locus_core.data.synthetic import generate_scene

    root = cache_dir() / "synthetic"
    sources = []
    for k in range(syn.scenes):
        seed = syn.seed + k
        out = root / f"seed{seed}-rooms{syn.rooms}-frames{syn.frames}-{syn.size[0]}x{syn.size[1]}"
        if distributed.current().is_main and not (out / "scene.json").exists():
            log.info("generating synthetic scene %s", out)
            generate_scene(out, seed=seed, rooms=syn.rooms, frames=syn.frames, size=syn.size)
        sources.append(SourceConfig(path=str(out), weight=syn.weight))
    distributed.barrier()
    return sources


def open_source(source: SourceConfig):  # -> PosedDataset
    from locus_core.data import open_dataset

    path = Path(source.path)
    if not path.exists():
        raise TrainingError(f"data source {source.path!r} not found (resolved to {path.resolve()})")
    return open_dataset(path, frames=source.frames)


def load_source(source: SourceConfig, model: torch.nn.Module, config: TrainConfig) -> SceneTensors:
    """Cached backbone features of ``source``; the main process computes, the others wait and read."""
    from locus_core.data import resize_frame

    dataset = open_source(source)
    if len(dataset) < 2:
        raise TrainingError(f"data source {source.path!r} (frames {source.frames}): needs >= 2 frames")
    kwargs = dict(
        name=f"{Path(source.path).name}[{source.frames or ':'}]",
        dataset_key=str(Path(source.path).resolve()),
        backbone=model.backbone,
        backbone_name=config.model.backbone,
        stride=model.stride,
        input_size=tuple(model.input_size),
        cache_dir=cache_dir(),
        resize=resize_frame,
    )
    world = distributed.current()
    if world.size > 1 and not world.is_main:
        distributed.barrier()
        return load_scene(dataset, **kwargs)
    scene = load_scene(dataset, progress=True, **kwargs)
    if world.size > 1:
        distributed.barrier()
    return scene


def load_training_scenes(model: torch.nn.Module, config: TrainConfig) -> list[Scene]:
    from locus_core.data.covisibility import covisibility_matrix

    scenes = []
    for source in [*config.data.train, *synthetic_sources(config)]:
        tensors = load_source(source, model, config)
        covis = covisibility_matrix(open_source(source), stride=config.data.covisibility_stride)
        if covis.shape != (len(tensors), len(tensors)):
            raise TrainingError(f"{tensors.name}: co-visibility {covis.shape} does not match {len(tensors)} frames")
        scenes.append(Scene(tensors, covis, source.weight))
        log.info("%s: %d frames", tensors.name, len(tensors))
    return scenes
