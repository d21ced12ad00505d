"""Object models built from boxes, vertical cylinders and spheres, in a model frame.

Model frame: origin at the centre of the footprint on the floor, z up, the front facing +y. Every
copy of a model (placed anywhere, turned by quarter turns) has the same parts and materials, hence
the same appearance: the repeated objects of a scene are copies of one model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from locus_core.data.synthetic import textures
from locus_core.data.synthetic.materials import MaterialLibrary

BOX, CYLINDER, SPHERE = 0, 1, 2

CLASSES: dict[int, str] = {
    0: "none", 1: "wall", 2: "floor", 3: "ceiling", 4: "chair", 5: "table", 6: "shelf",
    7: "cabinet", 8: "crate", 9: "lamp", 10: "plant", 11: "sofa", 12: "poster",
}
CLASS_IDS = {name: i for i, name in CLASSES.items()}


@dataclass(frozen=True)
class Part:
    """One primitive: a box (lo, hi corners), or a vertical cylinder / sphere inscribed in lo..hi."""

    kind: int
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    material: int


@dataclass(frozen=True)
class Model:
    name: str
    semantic: int
    parts: tuple[Part, ...]
    against_wall: bool

    @property
    def half_extent(self) -> tuple[float, float]:
        """Half size of the footprint along model x and y (the model is centred on its origin)."""
        lo = np.min([p.lo for p in self.parts], axis=0)
        hi = np.max([p.hi for p in self.parts], axis=0)
        return float(max(-lo[0], hi[0])), float(max(-lo[1], hi[1]))


def _box(lo: tuple[float, float, float], hi: tuple[float, float, float], material: int) -> Part:
    return Part(BOX, tuple(map(float, lo)), tuple(map(float, hi)), material)  # type: ignore[arg-type]


def _cylinder(x: float, y: float, r: float, z0: float, z1: float, material: int) -> Part:
    return Part(CYLINDER, (x - r, y - r, z0), (x + r, y + r, z1), material)


def _sphere(x: float, y: float, z: float, r: float, material: int) -> Part:
    return Part(SPHERE, (x - r, y - r, z - r), (x + r, y + r, z + r), material)


def _round_scale(radius: float, wanted: float) -> float:
    """A repeat length that divides the circumference, so wrapped textures have no seam."""
    circumference = 2 * math.pi * radius
    return circumference / max(1, round(circumference / wanted))


def _legs(w: float, d: float, h: float, leg: float, material: int) -> list[Part]:
    return [_box((sx * (w / 2) - (leg if sx > 0 else 0), sy * (d / 2) - (leg if sy > 0 else 0), 0),
                 (sx * (w / 2) + (0 if sx > 0 else leg), sy * (d / 2) + (0 if sy > 0 else leg), h),
                 material) for sx in (-1, 1) for sy in (-1, 1)]


def chair(rng: np.random.Generator, lib: MaterialLibrary) -> Model:
    w, d = rng.uniform(0.42, 0.52), rng.uniform(0.42, 0.5)
    seat, back = rng.uniform(0.43, 0.48), rng.uniform(0.8, 1.0)
    frame = lib.material(lib.object_texture(("wood", "noise", "marble")), (0.6, 0.6))
    cushion = lib.material(lib.object_texture(("fabric", "checker", "stripes")), (0.45, 0.45))
    parts = _legs(w, d, seat - 0.05, 0.04, frame)
    parts.append(_box((-w / 2, -d / 2, seat - 0.05), (w / 2, d / 2, seat), cushion))
    parts.append(_box((-w / 2, -d / 2, seat), (w / 2, -d / 2 + 0.05, back), frame))
    return Model("chair", CLASS_IDS["chair"], tuple(parts), against_wall=False)


def table(rng: np.random.Generator, lib: MaterialLibrary) -> Model:
    h = rng.uniform(0.7, 0.77)
    top = lib.material(lib.object_texture(("wood", "marble", "noise")), (1.2, 1.2))
    if rng.random() < 0.35:
        r = rng.uniform(0.35, 0.55)
        leg = lib.material(lib.solid((0.15, 0.15, 0.17)), (0.5, 0.5))
        parts = [_cylinder(0, 0, r, h - 0.04, h, top), _cylinder(0, 0, 0.04, 0.03, h - 0.04, leg),
                 _cylinder(0, 0, 0.25, 0.0, 0.03, leg)]
        return Model("round table", CLASS_IDS["table"], tuple(parts), against_wall=False)
    w, d = rng.uniform(0.8, 1.6), rng.uniform(0.6, 0.9)
    parts = _legs(w, d, h - 0.04, 0.06, top)
    parts.append(_box((-w / 2, -d / 2, h - 0.04), (w / 2, d / 2, h), top))
    return Model("table", CLASS_IDS["table"], tuple(parts), against_wall=False)


def shelf(rng: np.random.Generator, lib: MaterialLibrary) -> Model:
    w, d, h = rng.uniform(0.8, 1.3), rng.uniform(0.3, 0.4), rng.uniform(1.5, 2.0)
    wood = lib.material(lib.object_texture(("wood", "noise")), (0.8, 0.8))
    t = 0.03
    parts = [_box((-w / 2, -d / 2, 0), (-w / 2 + t, d / 2, h), wood),
             _box((w / 2 - t, -d / 2, 0), (w / 2, d / 2, h), wood),
             _box((-w / 2, -d / 2, 0), (w / 2, -d / 2 + t, h), wood)]
    boards = int(rng.integers(3, 6))
    for i in range(boards + 1):
        z = i * (h - t) / boards
        parts.append(_box((-w / 2 + t, -d / 2 + t, z), (w / 2 - t, d / 2, z + t), wood))
        if i < boards and rng.random() < 0.85:
            gap = (h - t) / boards - t
            span = (w - 2 * t) * rng.uniform(0.5, 1.0)
            x0 = -w / 2 + t + rng.uniform(0, w - 2 * t - span)
            bh = gap * rng.uniform(0.6, 0.9)
            spines = lib.material(lib.add_texture(textures.books(lib.rng, lib.size)), (span, bh))
            parts.append(_box((x0, -d / 2 + t, z + t), (x0 + span, d / 2 - 0.03, z + t + bh), spines))
    return Model("shelf", CLASS_IDS["shelf"], tuple(parts), against_wall=True)


def cabinet(rng: np.random.Generator, lib: MaterialLibrary) -> Model:
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.4, 0.6), rng.uniform(0.7, 1.2)
    body = lib.material(lib.object_texture(("wood", "noise", "marble")), (0.9, 0.9))
    front = lib.material(lib.object_texture(("wood", "checker", "stripes", "noise")), (0.7, 0.7))
    metal = lib.material(lib.solid((0.75, 0.75, 0.78), 0.05), (0.3, 0.3))
    parts = [_box((-w / 2, -d / 2, 0.05), (w / 2, d / 2 - 0.02, h), body)]
    for side in (-1, 1):
        x0, x1 = (-w / 2 + 0.02, -0.01) if side < 0 else (0.01, w / 2 - 0.02)
        parts.append(_box((x0, d / 2 - 0.02, 0.08), (x1, d / 2, h - 0.03), front))
        hx = -0.05 if side < 0 else 0.03
        parts.append(_box((hx, d / 2, h * 0.6), (hx + 0.02, d / 2 + 0.025, h * 0.6 + 0.12), metal))
    return Model("cabinet", CLASS_IDS["cabinet"], tuple(parts), against_wall=True)


def crate(rng: np.random.Generator, lib: MaterialLibrary) -> Model:
    s = rng.uniform(0.3, 0.7, 3)
    skin = lib.material(lib.object_texture(("wood", "noise", "checker", "stripes")), (s[0], s[2]))
    parts = [_box((-s[0] / 2, -s[1] / 2, 0), (s[0] / 2, s[1] / 2, s[2]), skin)]
    if rng.random() < 0.5:
        top = s * rng.uniform(0.5, 0.9, 3)
        lid = lib.material(lib.object_texture(("noise", "checker", "fabric")), (top[0], top[2]))
        parts.append(_box((-top[0] / 2, -top[1] / 2, s[2]), (top[0] / 2, top[1] / 2, s[2] + top[2]), lid))
    return Model("crate", CLASS_IDS["crate"], tuple(parts), against_wall=False)


def lamp(rng: np.random.Generator, lib: MaterialLibrary) -> Model:
    h, r = rng.uniform(1.4, 1.8), rng.uniform(0.16, 0.25)
    metal = lib.material(lib.solid(tuple(rng.uniform(0.1, 0.8, 3)), 0.08), (0.5, 0.5))
    shade_tex = lib.object_texture(("fabric", "stripes", "noise"))
    shade = lib.material(shade_tex, (_round_scale(r, 0.4), 0.4))
    parts = [_cylinder(0, 0, 0.17, 0.0, 0.03, metal), _cylinder(0, 0, 0.015, 0.03, h - 0.25, metal),
             _cylinder(0, 0, r, h - 0.3, h, shade)]
    return Model("lamp", CLASS_IDS["lamp"], tuple(parts), against_wall=False)


def plant(rng: np.random.Generator, lib: MaterialLibrary) -> Model:
    r, h = rng.uniform(0.14, 0.24), rng.uniform(0.25, 0.45)
    pot_tex = lib.solid(tuple(np.array([0.7, 0.35, 0.2]) * rng.uniform(0.7, 1.1)), 0.2)
    pot = lib.material(pot_tex, (_round_scale(r, 0.3), 0.3))
    leaves_tex = lib.object_texture(("noise", "fabric"))
    parts = [_cylinder(0, 0, r, 0, h, pot)]
    for _ in range(int(rng.integers(2, 5))):
        lr = rng.uniform(0.15, 0.28)
        leaves = lib.material(leaves_tex, (_round_scale(lr, 0.35), 0.35))
        x, y = rng.uniform(-r, r, 2) * 0.6
        parts.append(_sphere(x, y, h + lr * rng.uniform(0.5, 1.6), lr, leaves))
    return Model("plant", CLASS_IDS["plant"], tuple(parts), against_wall=False)


def sofa(rng: np.random.Generator, lib: MaterialLibrary) -> Model:
    w, d = rng.uniform(1.4, 2.2), rng.uniform(0.8, 0.95)
    cloth = lib.material(lib.object_texture(("fabric", "checker", "noise", "stripes")), (0.6, 0.6))
    cushion = lib.material(lib.object_texture(("fabric", "noise")), (0.5, 0.5))
    arm, seat = 0.18, 0.42
    parts = [_box((-w / 2 + arm, -d / 2, 0.05), (w / 2 - arm, d / 2, seat - 0.1), cloth),
             _box((-w / 2, -d / 2, 0.0), (w / 2, -d / 2 + 0.2, 0.85), cloth),
             _box((-w / 2, -d / 2 + 0.2, 0.0), (-w / 2 + arm, d / 2, 0.62), cloth),
             _box((w / 2 - arm, -d / 2 + 0.2, 0.0), (w / 2, d / 2, 0.62), cloth)]
    n = int(rng.integers(2, 4))
    step = (w - 2 * arm) / n
    for i in range(n):
        x0 = -w / 2 + arm + i * step
        parts.append(_box((x0 + 0.01, -d / 2 + 0.2, seat - 0.1), (x0 + step - 0.01, d / 2, seat), cushion))
    return Model("sofa", CLASS_IDS["sofa"], tuple(parts), against_wall=True)


def poster(rng: np.random.Generator, lib: MaterialLibrary) -> Model:
    """A picture 1.2..1.8 m up a wall; its image covers the front exactly once."""
    w, h = rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0)
    zc = rng.uniform(1.3, 1.7)
    image = lib.material(lib.add_texture(textures.poster(rng, lib.size)), (w, h))
    part = _box((-w / 2, -0.01, zc - h / 2), (w / 2, 0.01, zc + h / 2), image)
    return Model("poster", CLASS_IDS["poster"], (part,), against_wall=True)


FURNITURE: dict[str, Callable[[np.random.Generator, MaterialLibrary], Model]] = {
    "chair": chair, "table": table, "shelf": shelf, "cabinet": cabinet, "crate": crate,
    "lamp": lamp, "plant": plant, "sofa": sofa,
}
