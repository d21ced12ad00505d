"""The one config of the synthetic scene generator (``locus data synth`` and ``generate_scene``)."""

from __future__ import annotations

from dataclasses import dataclass

from locus_core.data.synthetic.errors import SyntheticError

TEXTURE_KINDS = ("noise", "tiles", "stripes", "wood", "brick", "checker", "fabric", "marble")


@dataclass(frozen=True)
class SceneConfig:
    """How a procedural indoor scene is laid out; everything random is drawn from ``seed``.

    Attributes:
        seed: the scene (layout, textures, objects) and trajectory are a pure function of it.
        rooms: number of rooms, joined by doorways into a chain.
        room_size: (min, max) interior side length of a room in metres.
        room_height: (min, max) floor-to-ceiling height in metres.
        objects_per_room: (min, max) number of unique objects placed in each room.
        repeated_models: number of object models of which identical copies (same shape and
            texture) stand in several rooms: the look-alike places LoCUS must not confuse.
        copies: how many copies of each repeated model (one per room while rooms last).
        posters_per_room: (min, max) pictures hung on the walls of each room.
        textures: the procedural texture kinds walls, floors and objects draw from.
        texture_size: side in texels of every procedural texture (a power of two).
    """

    seed: int = 0
    rooms: int = 3
    room_size: tuple[float, float] = (4.0, 6.5)
    room_height: tuple[float, float] = (2.5, 3.0)
    objects_per_room: tuple[int, int] = (5, 8)
    repeated_models: int = 3
    copies: int = 3
    posters_per_room: tuple[int, int] = (2, 4)
    textures: tuple[str, ...] = TEXTURE_KINDS
    texture_size: int = 256

    def __post_init__(self) -> None:
        def bad(name: str, value: object, why: str) -> SyntheticError:
            return SyntheticError(f"SceneConfig.{name}={value!r}: {why}")

        if self.seed < 0:  # numpy's generators take no negative seed (a traceback from deep inside)
            raise bad("seed", self.seed, "must be >= 0")
        if self.rooms < 1:
            raise bad("rooms", self.rooms, "a scene needs at least 1 room")
        if self.rooms > 64:
            raise bad("rooms", self.rooms, "at most 64 rooms")
        lo, hi = self.room_size
        if not 3.5 <= lo <= hi <= 30.0:
            raise bad("room_size", self.room_size, "need 3.5 <= min <= max <= 30 metres")
        lo, hi = self.room_height
        if not 2.3 <= lo <= hi <= 6.0:
            raise bad("room_height", self.room_height, "need 2.3 <= min <= max <= 6 metres")
        for name in ("objects_per_room", "posters_per_room"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi <= 40:
                raise bad(name, (lo, hi), "need 0 <= min <= max <= 40")
        if self.repeated_models < 0 or self.copies < 1:
            raise bad("repeated_models/copies", (self.repeated_models, self.copies),
                      "need repeated_models >= 0 and copies >= 1")
        unknown = sorted(set(self.textures) - set(TEXTURE_KINDS))
        if unknown or not self.textures:
            raise bad("textures", self.textures, f"choose from {', '.join(TEXTURE_KINDS)}")
        size = self.texture_size
        if size < 16 or size > 2048 or size & (size - 1):
            raise bad("texture_size", size, "need a power of two in [16, 2048]")
