"""Where objects stand: rejection sampling of footprints that keep clear of each other, of the
walls and doorways, and of the camera path (so the camera never walks through furniture).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from locus_core.data.synthetic.furniture import Model
from locus_core.data.synthetic.layout import Door, Room

CLEARANCE = 0.45  # metres between any footprint and the camera path
GAP = 0.05  # metres between footprints
ATTEMPTS = 60
# quarter turns that make a model's front (+y) face into the room from each wall
_WALL_TURNS = {"south": 0, "east": 1, "north": 2, "west": 3}


@dataclass(frozen=True)
class Placement:
    model: int  # index into the scene's model list
    room: int
    x: float
    y: float
    quarter: int  # turns of 90 degrees about z, counter-clockwise

    def footprint(self, model: Model) -> tuple[np.ndarray, np.ndarray]:
        hx, hy = model.half_extent
        if self.quarter % 2:
            hx, hy = hy, hx
        c = np.array([self.x, self.y])
        return c - (hx, hy), c + (hx, hy)


class Placer:
    def __init__(self, rooms: list[Room], doors: list[Door], path: np.ndarray,
                 rng: np.random.Generator) -> None:
        self.rooms, self.doors, self.path, self.rng = rooms, doors, path, rng
        self.taken: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {r.index: [] for r in rooms}
        self.posters: dict[tuple[int, str], list[tuple[float, float]]] = {}

    def place(self, model_index: int, model: Model, room: Room) -> Placement | None:
        """A free spot for ``model`` in ``room``, or None after ``ATTEMPTS`` misses."""
        for _ in range(ATTEMPTS):
            candidate = self._sample(model_index, model, room)
            lo, hi = candidate.footprint(model)
            if model.name == "poster":
                if self._poster_fits(candidate, model, room, lo, hi):
                    return candidate
                continue
            if self._free(room, lo, hi):
                self.taken[room.index].append((lo, hi))
                return candidate
        return None

    def _sample(self, model_index: int, model: Model, room: Room) -> Placement:
        hx, hy = model.half_extent
        (x0, y0), (x1, y1) = room.lo, room.hi
        if not model.against_wall:
            quarter = int(self.rng.integers(4))
            ex, ey = (hy, hx) if quarter % 2 else (hx, hy)
            x = self.rng.uniform(x0 + ex + GAP, max(x0 + ex + GAP, x1 - ex - GAP))
            y = self.rng.uniform(y0 + ey + GAP, max(y0 + ey + GAP, y1 - ey - GAP))
            return Placement(model_index, room.index, float(x), float(y), quarter)
        wall = ("south", "east", "north", "west")[int(self.rng.integers(4))]
        quarter = _WALL_TURNS[wall]
        along_lo, along_hi = (x0, x1) if wall in ("south", "north") else (y0, y1)
        s = self.rng.uniform(along_lo + hx + 0.1, max(along_lo + hx + 0.1, along_hi - hx - 0.1))
        depth = {"south": y0 + hy, "north": y1 - hy, "west": x0 + hy, "east": x1 - hy}[wall]
        x, y = (s, depth) if wall in ("south", "north") else (depth, s)
        return Placement(model_index, room.index, float(x), float(y), quarter)

    def _free(self, room: Room, lo: np.ndarray, hi: np.ndarray) -> bool:
        if np.any(lo < np.asarray(room.lo) - 1e-6) or np.any(hi > np.asarray(room.hi) + 1e-6):
            return False
        for olo, ohi in self.taken[room.index]:
            if np.all(lo < ohi + GAP) and np.all(hi > olo - GAP):
                return False
        nearest = np.clip(self.path, lo, hi)
        if np.min(np.linalg.norm(self.path - nearest, axis=1)) < CLEARANCE:
            return False
        for door in self.doors:  # keep doorways and the space just inside them open
            dlo, dhi = door.box()
            if np.all(lo < dhi[:2] + 0.6) and np.all(hi > dlo[:2] - 0.6):
                return False
        return True

    def _poster_fits(self, p: Placement, model: Model, room: Room, lo: np.ndarray,
                     hi: np.ndarray) -> bool:
        wall = {0: "south", 1: "east", 2: "north", 3: "west"}[p.quarter]
        along = 0 if wall in ("south", "north") else 1
        a, b = float(lo[along]), float(hi[along])
        if a < room.lo[along] + 0.1 or b > room.hi[along] - 0.1:
            return False
        for door in self.doors:
            dlo, dhi = door.box()
            if np.all(lo < dhi[:2] + 0.05) and np.all(hi > dlo[:2] - 0.05):
                return False
        hung = self.posters.setdefault((room.index, wall), [])
        if any(a < hb + 0.1 and b > ha - 0.1 for ha, hb in hung):
            return False
        hung.append((a, b))
        return True
