"""Rooms joined by doorways into a chain, and the walls, floors and ceilings around them.

Each new room is attached east (+x) or north (+y) of the previous one, only on a side where the
previous room reaches furthest: the plan is a staircase, so rooms never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from locus_core.data.synthetic.config import SceneConfig
from locus_core.data.synthetic.furniture import BOX, Part

WALL = 0.1  # wall thickness (metres); rooms are separated by two walls back to back
DOOR_WIDTH = (1.0, 1.4)
DOOR_HEIGHT = 2.1


@dataclass(frozen=True)
class Room:
    index: int
    lo: tuple[float, float]  # interior corner (x0, y0), metres
    hi: tuple[float, float]  # interior corner (x1, y1)
    height: float

    @property
    def centre(self) -> np.ndarray:
        return (np.asarray(self.lo) + np.asarray(self.hi)) / 2

    def contains(self, point: np.ndarray, margin: float = 0.0) -> bool:
        x, y, z = point
        return bool(self.lo[0] - margin <= x <= self.hi[0] + margin
                    and self.lo[1] - margin <= y <= self.hi[1] + margin
                    and -margin <= z <= self.height + margin)


@dataclass(frozen=True)
class Door:
    """An opening through the double wall between ``rooms[0]`` and ``rooms[1]``.

    ``axis`` is the world axis crossed going through (0: x, room 1 is east; 1: y, room 1 is north).
    """

    rooms: tuple[int, int]
    axis: int
    centre: tuple[float, float]  # on the middle plane of the double wall
    width: float
    height: float

    @property
    def normal(self) -> np.ndarray:
        n = np.zeros(2)
        n[self.axis] = 1.0
        return n

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """The opening as a 3D box through both walls (what a ray into the next room crosses)."""
        half = np.array([WALL, WALL])
        half[1 - self.axis] = self.width / 2
        c = np.asarray(self.centre)
        return np.array([*(c - half), 0.0]), np.array([*(c + half), self.height])


def plan_rooms(config: SceneConfig, rng: np.random.Generator) -> tuple[list[Room], list[Door]]:
    rooms: list[Room] = []
    doors: list[Door] = []
    for i in range(config.rooms):
        size = rng.uniform(*config.room_size, 2)
        height = float(rng.uniform(*config.room_height))
        if i == 0:
            rooms.append(Room(0, (0.0, 0.0), (float(size[0]), float(size[1])), height))
            continue
        prev = rooms[-1]
        reach = [max(r.hi[a] for r in rooms) for a in (0, 1)]
        sides = [a for a in (0, 1) if prev.hi[a] >= reach[a] - 1e-9]
        axis = sides[int(rng.integers(len(sides)))]
        other = 1 - axis
        width = float(rng.uniform(*DOOR_WIDTH))
        overlap = width + 1.0  # door plus 0.5 m of wall either side
        lo = np.zeros(2)
        lo[axis] = prev.hi[axis] + 2 * WALL
        lo[other] = rng.uniform(prev.lo[other] - size[other] + overlap, prev.hi[other] - overlap)
        hi = lo + size
        rooms.append(Room(i, (float(lo[0]), float(lo[1])), (float(hi[0]), float(hi[1])), height))
        shared = (max(prev.lo[other], lo[other]) + 0.5 + width / 2,
                  min(prev.hi[other], hi[other]) - 0.5 - width / 2)
        centre = np.zeros(2)
        centre[axis] = prev.hi[axis] + WALL
        centre[other] = rng.uniform(*shared)
        doors.append(Door((i - 1, i), axis, (float(centre[0]), float(centre[1])), width, DOOR_HEIGHT))
    return rooms, doors


def shell(room: Room, doors: list[Door], walls: int, floor: int, ceiling: int) -> list[tuple[Part, int]]:
    """Boxes (world frame) of a room's four walls (cut by its doors), floor and ceiling.

    ``walls``, ``floor``, ``ceiling`` are material ids. Returns (part, class name index) pairs with
    1 = wall, 2 = floor, 3 = ceiling.
    """
    (x0, y0), (x1, y1), h, t = room.lo, room.hi, room.height, WALL
    out: list[tuple[Part, int]] = [
        (Part(BOX, (x0 - t, y0 - t, -t), (x1 + t, y1 + t, 0.0), floor), 2),
        (Part(BOX, (x0 - t, y0 - t, h), (x1 + t, y1 + t, h + t), ceiling), 3),
    ]
    # (box lo, box hi, axis the wall runs along, which side: the door axis and end it sits on)
    sides = [((x0 - t, y0 - t, 0.0), (x1 + t, y0, h), 0, (1, 0)),
             ((x0 - t, y1, 0.0), (x1 + t, y1 + t, h), 0, (1, 1)),
             ((x0 - t, y0, 0.0), (x0, y1, h), 1, (0, 0)),
             ((x1, y0, 0.0), (x1 + t, y1, h), 1, (0, 1))]
    for lo, hi, along, (door_axis, end) in sides:
        openings = []
        for door in doors:
            # a door on this side: crossed along door_axis, leading out of this room's ``end`` side
            if door.axis == door_axis and door.rooms[1 - end] == room.index:
                c = door.centre[along]
                openings.append((c - door.width / 2, c + door.width / 2, door.height))
        out.extend((part, 1) for part in _cut(lo, hi, along, sorted(openings), walls))
    return out


def _cut(lo: tuple[float, float, float], hi: tuple[float, float, float], along: int,
         openings: list[tuple[float, float, float]], material: int) -> list[Part]:
    parts = []
    cursor = lo[along]

    def piece(a: float, b: float, z0: float, z1: float) -> Part:
        plo, phi = list(lo), list(hi)
        plo[along], phi[along], plo[2], phi[2] = a, b, z0, z1
        return Part(BOX, tuple(plo), tuple(phi), material)  # type: ignore[arg-type]

    for a, b, top in openings:
        if a > cursor:
            parts.append(piece(cursor, a, lo[2], hi[2]))
        parts.append(piece(a, b, top, hi[2]))
        cursor = b
    if cursor < hi[along]:
        parts.append(piece(cursor, hi[along], lo[2], hi[2]))
    return parts
