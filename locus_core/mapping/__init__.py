"""Landmark map and localizer (ROS-free): build, persist, search, relocalize.

``build_map(model, dataset, MapConfig())`` → ``LandmarkMap`` (``.save(dir)``, ``LandmarkMap.load(dir)``,
``LandmarkMap.merge(a, b)``); ``Localizer(map, model, LocalizerConfig()).localize(frame)`` →
``Localization``. Light to import: faiss, OpenCV and torch load inside the functions that use them.
"""

from locus_core.mapping.config import LocalizerConfig, MapConfig
from locus_core.mapping.errors import MapError

__all__ = ["LocalizerConfig", "MapConfig", "MapError", "LandmarkMap", "Localizer", "Localization", "PlaceMatch", "build_map"]


def __getattr__(name: str):  # lazy: keeps `import locus_core.mapping` free of torch/faiss
    if name == "LandmarkMap":
        from locus_core.mapping.landmark_map import LandmarkMap

        return LandmarkMap
    if name in ("Localizer", "Localization", "PlaceMatch"):
        from locus_core.mapping import localizer

        return getattr(localizer, name)
    if name == "build_map":
        from locus_core.mapping.build import build_map

        return build_map
    raise AttributeError(f"module 'locus_core.mapping' has no attribute {name!r}")
