"""Procedural synthetic indoor scenes: rooms, textured surfaces, repeated identical objects, a
looping camera path, and exact RGB, depth, semantic and instance renderings.

``generate_scene(out_dir, seed=, rooms=, frames=, size=)`` writes the 7-Scenes-style layout that
``locus_core.data.open_dataset`` reads; ``SyntheticScene(seed, rooms)`` renders in memory.
"""

from __future__ import annotations

from locus_core.data.synthetic.config import SceneConfig
from locus_core.data.synthetic.errors import SyntheticError
from locus_core.data.synthetic.scene import SyntheticScene
from locus_core.data.synthetic.writer import generate_scene

__all__ = ["SceneConfig", "SyntheticError", "SyntheticScene", "generate_scene"]
