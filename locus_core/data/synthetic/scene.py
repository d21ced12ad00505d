"""A procedural indoor scene: rooms, textured walls and floors, furniture (some of it repeated
identically across rooms), a camera path that revisits places, and a renderer for any pose."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from locus_core.data.frame import PosedFrame
from locus_core.data.synthetic import furniture
from locus_core.data.synthetic.config import SceneConfig
from locus_core.data.synthetic.errors import SyntheticError
from locus_core.data.synthetic.layout import plan_rooms, shell
from locus_core.data.synthetic.materials import MaterialLibrary
from locus_core.data.synthetic.placement import Placement, Placer
from locus_core.data.synthetic.primitives import PrimitiveBuilder
from locus_core.data.synthetic.render import Renderer, Rendering
from locus_core.data.synthetic.trajectory import CameraPath, waypoints

GENERATOR = "locus-synthetic"
VERSION = 1
MIN_SIZE = (32, 32)


class SyntheticScene:
    """Everything about the scene is a pure function of ``config`` (``seed`` and ``rooms`` given
    here override the config's).

    Attributes:
        config: the resolved SceneConfig.
        models: object models; copies of one model look identical.
        placements: where each object instance stands (instance id = position in this list + 1).
    """

    def __init__(self, seed: int = 0, rooms: int = 3, config: SceneConfig | None = None) -> None:
        if isinstance(rooms, bool) or not isinstance(rooms, (int, np.integer)):
            raise SyntheticError(f"rooms must be an integer, got {rooms!r}")
        self.config = dataclasses.replace(config or SceneConfig(), seed=int(seed), rooms=int(rooms))
        rng = np.random.default_rng(self.config.seed)
        self.rooms, self.doors = plan_rooms(self.config, rng)
        self.path = CameraPath(waypoints(self.rooms, self.doors, rng), rng)
        lib = MaterialLibrary(rng, self.config.texture_size, self.config.textures,
                              pool=8 + 3 * self.config.rooms)
        self.models: list[furniture.Model] = []
        self.placements: list[Placement] = []
        self._furnish(rng, lib)
        self._renderer = self._build(rng, lib)

    @classmethod
    def from_config(cls, config: SceneConfig) -> SyntheticScene:
        return cls(config.seed, config.rooms, config)

    def _furnish(self, rng: np.random.Generator, lib: MaterialLibrary) -> None:
        cfg = self.config
        placer = Placer(self.rooms, self.doors, self.path.dense, rng)
        kinds = sorted(furniture.FURNITURE) + ["poster"]
        makers = {**furniture.FURNITURE, "poster": furniture.poster}
        # repeated models first, while rooms are empty: copies in different rooms where possible
        for k in range(cfg.repeated_models):
            model_index = self._add_model(makers[kinds[int(rng.integers(len(kinds)))]](rng, lib))
            first = int(rng.integers(cfg.rooms))
            placed = 0
            for offset in range(cfg.rooms * 2):
                if placed == cfg.copies:
                    break
                room = self.rooms[(first + offset) % cfg.rooms]
                if offset >= cfg.rooms or cfg.copies > cfg.rooms or not self._has(model_index, room.index):
                    placed += self._put(placer, model_index, room.index)
        for room in self.rooms:
            for _ in range(int(rng.integers(cfg.objects_per_room[0], cfg.objects_per_room[1] + 1))):
                maker = furniture.FURNITURE[sorted(furniture.FURNITURE)[int(rng.integers(len(furniture.FURNITURE)))]]
                self._put(placer, self._add_model(maker(rng, lib)), room.index)
            for _ in range(int(rng.integers(cfg.posters_per_room[0], cfg.posters_per_room[1] + 1))):
                self._put(placer, self._add_model(furniture.poster(rng, lib)), room.index)

    def _add_model(self, model: furniture.Model) -> int:
        self.models.append(model)
        return len(self.models) - 1

    def _has(self, model_index: int, room: int) -> bool:
        return any(p.model == model_index and p.room == room for p in self.placements)

    def _put(self, placer: Placer, model_index: int, room: int) -> int:
        spot = placer.place(model_index, self.models[model_index], self.rooms[room])
        if spot is not None:
            self.placements.append(spot)
        return int(spot is not None)

    def _build(self, rng: np.random.Generator, lib: MaterialLibrary) -> Renderer:
        builder = PrimitiveBuilder()
        ceiling_tex = lib.solid((0.92, 0.92, 0.9), 0.06)
        for room in self.rooms:
            walls = lib.material(lib.tileable(("noise", "tiles", "stripes", "brick", "marble", "checker")),
                                 (rng.uniform(1.2, 2.5),) * 2)
            floor = lib.material(lib.tileable(("wood", "tiles", "checker", "noise", "marble", "fabric")),
                                 (rng.uniform(1.0, 2.5),) * 2)
            ceiling = lib.material(ceiling_tex, (2.0, 2.0))
            for part, semantic in shell(room, self.doors, walls, floor, ceiling):
                builder.add(part, room=room.index, semantic=semantic, instance=0, world_uv=True)
        for instance, spot in enumerate(self.placements, start=1):
            model = self.models[spot.model]
            for part in model.parts:
                builder.add(part, room=spot.room, semantic=model.semantic, instance=instance,
                            origin=(spot.x, spot.y), quarter=spot.quarter)
        atlas, mat_tex, mat_scale = lib.atlas()
        return Renderer(builder.build(), atlas, mat_tex, mat_scale, self.rooms, self.doors)

    # -- public API -------------------------------------------------------------------------------

    def render(self, T_world_cam: np.ndarray, K: np.ndarray, size: tuple[int, int], *,
               lit: bool = True) -> Rendering:
        """(rgb (H,W,3) uint8, depth (H,W) float32 m NaN=none, semantic (H,W) int32, instance (H,W)
        int32) seen from camera-to-world pose ``T_world_cam`` (OpenCV axes) with intrinsics K.
        ``lit=False`` gives the bare texture colours (the same on every copy of a model)."""
        check_size(size)
        return self._renderer.render(T_world_cam, K, size, lit)

    def trajectory(self, frames: int) -> np.ndarray:
        """(frames, 4, 4) float64 camera-to-world poses evenly spaced along the closed loop."""
        if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
            raise SyntheticError(f"frames must be a positive integer, got {frames!r}")
        return self.path.poses(int(frames))

    @staticmethod
    def intrinsics(size: tuple[int, int]) -> np.ndarray:
        """(3, 3) float64 K of the default camera (about 7-Scenes' field of view) for (H, W)."""
        H, W = check_size(size)
        f = 0.9 * W
        return np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]], np.float64)

    def frames(self, count: int, size: tuple[int, int] = (240, 320)) -> list[PosedFrame]:
        """Render the trajectory in memory (for tests and demos that need no files)."""
        K = self.intrinsics(size)
        out = []
        for i, T in enumerate(self.trajectory(count)):
            rgb, depth, semantic, instance = self.render(T, K, size)
            out.append(PosedFrame(rgb=rgb, depth=depth, K=K, T_world_cam=T, frame_id=f"frame-{i:06d}",
                                  index=i, stamp=i / 30.0, semantic=semantic, instance=instance))
        return out

    @property
    def classes(self) -> dict[int, str]:
        return dict(furniture.CLASSES)

    @property
    def instances(self) -> dict[int, int]:
        """Instance id -> class id."""
        return {i: self.models[p.model].semantic for i, p in enumerate(self.placements, start=1)}

    def repeated(self) -> list[list[int]]:
        """Groups of instance ids that are identical copies of one model."""
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(self.placements, start=1):
            groups.setdefault(p.model, []).append(i)
        return [ids for ids in groups.values() if len(ids) > 1]

    def describe(self) -> dict[str, Any]:
        """What scene.json records (generator, seed, classes, instances, rooms, ...)."""
        return {
            "generator": GENERATOR,
            "version": VERSION,
            "seed": self.config.seed,
            "rooms": self.config.rooms,
            "classes": {str(k): v for k, v in self.classes.items()},
            "instances": {str(k): v for k, v in self.instances.items()},
            "instance_rooms": {str(i): p.room for i, p in enumerate(self.placements, start=1)},
            "instance_models": {str(i): p.model for i, p in enumerate(self.placements, start=1)},
            "repeated": self.repeated(),
            "config": dataclasses.asdict(self.config),
        }


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        H, W = (int(s) for s in size)
    except (TypeError, ValueError):
        raise SyntheticError(f"size must be (H, W), got {size!r}") from None
    if H < MIN_SIZE[0] or W < MIN_SIZE[1] or H > 4096 or W > 4096:
        raise SyntheticError(f"size (H, W)={size!r} must be between {MIN_SIZE} and (4096, 4096)")
    return H, W
