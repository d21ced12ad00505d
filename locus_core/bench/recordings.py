"""The recording and map the end-to-end benchmarks (node, bag) run on, built once and cached.

Default: the 7-Scenes redkitchen recording next to the checkout (train frames make the map, test
frames are the queries); where it is absent, a synthetic scene at camera size.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REAL_DATA = ROOT.parent / "shared" / "data" / "7scenes-redkitchen"


def recording(data: Path | None, map_frames: str, query_frames: str, cache: Path) -> tuple[Path, str, str]:
    """(data, map frames, query frames): ``data`` as given, else the real recording, else a
    synthetic scene generated into ``cache`` (with its own frame selections)."""
    if data is not None:
        return data, map_frames, query_frames
    if REAL_DATA.is_dir():
        return REAL_DATA, map_frames, query_frames
    from locus_core.data.synthetic import generate_scene

    scene = cache / "synthetic-480x640"
    if not (scene / "scene.json").is_file():
        generate_scene(scene, seed=0, rooms=2, frames=120, size=(480, 640))
    return scene, "0:120:2", "1:120:2"


def cache_key(data: Path, frames: str) -> str:
    from locus_core.data import open_dataset

    # The content too (files' sizes and times, poses): a recording re-recorded or a scene
    # regenerated at the same path would otherwise be served the old one's map and bag.
    digest = open_dataset(data, frames=frames).content_digest()
    return hashlib.sha256(f"{data.resolve()}|{frames}|{digest}".encode()).hexdigest()[:10]


def cached_map(model_spec: str, data: Path, frames: str, cache: Path) -> Path:
    """A map of ``frames`` built with the model (eager PyTorch), cached per model, data, frames and
    map configuration."""
    from locus_core.data import open_dataset
    from locus_core.mapping import MapConfig, build_map
    from locus_core.models import load_model

    model = load_model(model_spec)
    config = MapConfig()
    # The defaults are an input too: a map kept from before they changed is not what they build.
    key = hashlib.sha256(f"{cache_key(data, frames)}|{config!r}".encode()).hexdigest()[:10]
    path = cache / f"map-{model.hash}-{key}"
    if not (path / "manifest.json").is_file():
        build_map(model, open_dataset(data, frames=frames), config).save(path)
    return path
