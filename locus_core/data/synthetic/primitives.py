"""The scene flattened into arrays of primitives: what the ray caster and shader index by id."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from locus_core.data.synthetic.furniture import Part

# cos and sin of 0, 90, 180, 270 degrees, exact
QUARTER_COS = np.array([1, 0, -1, 0], np.float32)
QUARTER_SIN = np.array([0, 1, 0, -1], np.float32)


def turn(x: np.ndarray, y: np.ndarray, quarter: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """Rotate (x, y) by ``quarter`` counter-clockwise quarter turns (exactly)."""
    c, s = QUARTER_COS[np.asarray(quarter) % 4], QUARTER_SIN[np.asarray(quarter) % 4]
    return c * x - s * y, s * x + c * y


@dataclass
class PrimitiveBuilder:
    rows: list[tuple] = field(default_factory=list)

    def add(self, part: Part, *, room: int, semantic: int, instance: int,
            origin: tuple[float, float] = (0.0, 0.0), quarter: int = 0, world_uv: bool = False) -> None:
        """Add ``part`` (in its model frame) turned by ``quarter`` and moved to ``origin``.

        ``world_uv``: texture coordinates from the world origin (walls and floors continue across
        pieces) instead of from the part's own corner (every copy of an object looks the same).
        """
        self.rows.append((part, room, semantic, instance, origin, quarter, world_uv))

    def build(self) -> Primitives:
        n = len(self.rows)
        p = Primitives(
            kind=np.empty(n, np.int8), lo=np.empty((n, 3), np.float32), hi=np.empty((n, 3), np.float32),
            room=np.empty(n, np.int32), semantic=np.empty(n, np.int32), instance=np.empty(n, np.int32),
            material=np.empty(n, np.int32), origin=np.zeros((n, 3), np.float32),
            quarter=np.empty(n, np.int32), local_lo=np.empty((n, 3), np.float32),
            local_hi=np.empty((n, 3), np.float32), uv_origin=np.zeros((n, 3), np.float32))
        for i, (part, room, semantic, instance, origin, quarter, world_uv) in enumerate(self.rows):
            lo, hi = np.asarray(part.lo, np.float32), np.asarray(part.hi, np.float32)
            cx, cy = turn(np.array([lo[0], hi[0]]), np.array([lo[1], hi[1]]), quarter)
            p.lo[i] = (min(cx) + origin[0], min(cy) + origin[1], lo[2])
            p.hi[i] = (max(cx) + origin[0], max(cy) + origin[1], hi[2])
            p.kind[i], p.room[i], p.semantic[i], p.instance[i] = part.kind, room, semantic, instance
            p.material[i], p.quarter[i] = part.material, quarter % 4
            p.origin[i, :2] = origin
            p.local_lo[i], p.local_hi[i] = lo, hi
            if not world_uv:
                p.uv_origin[i] = lo
        return p


@dataclass
class Primitives:
    """(P,) / (P, 3) arrays. ``lo``/``hi`` are world-frame bounds (for a cylinder or sphere: of the
    shape inscribed in them); ``local_*`` and ``uv_origin`` are in the model frame, which is the
    world frame turned by ``quarter`` and moved by ``origin``."""

    kind: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    room: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    material: np.ndarray
    origin: np.ndarray
    quarter: np.ndarray
    local_lo: np.ndarray
    local_hi: np.ndarray
    uv_origin: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)

    @property
    def centre(self) -> np.ndarray:
        return (self.lo + self.hi) / 2

    @property
    def radius(self) -> np.ndarray:
        """Radius of cylinders and spheres (half the x extent); meaningless for boxes."""
        return (self.hi[:, 0] - self.lo[:, 0]) / 2
