"""Procedural, tileable colour textures: what makes walls, floors and objects recognisable.

Every texture is a (T, T, 3) float32 image in [0, 1] drawn from a numpy Generator, so a scene's look
is a pure function of its seed. The tileable kinds wrap seamlessly (the renderer repeats them every
``scale`` metres); posters and book spines are single images.
"""

from __future__ import annotations

import colorsys
from typing import Callable

import numpy as np

Texture = np.ndarray  # (T, T, 3) float32 in [0, 1]


def _colour(rng: np.random.Generator, hue: tuple[float, float] = (0.0, 1.0),
            sat: tuple[float, float] = (0.2, 0.7), val: tuple[float, float] = (0.4, 0.9)) -> np.ndarray:
    h, s, v = rng.uniform(*hue) % 1.0, rng.uniform(*sat), rng.uniform(*val)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32)


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) smooth periodic noise in [0, 1] with ``cells`` lattice cells per period."""
    grid = rng.random((cells, cells), dtype=np.float32)
    x = np.arange(size, dtype=np.float32) * cells / size
    i0 = np.floor(x).astype(np.int64)
    f = x - i0
    f = f * f * (3 - 2 * f)
    i1 = (i0 + 1) % cells
    rows = grid[i0] * (1 - f)[:, None] + grid[i1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def _fractal(rng: np.random.Generator, size: int, base: int = 4, octaves: int = 4) -> np.ndarray:
    total = np.zeros((size, size), np.float32)
    weight = 0.0
    for k in range(octaves):
        cells = min(base * 2**k, size)
        total += 0.5**k * _value_noise(rng, size, cells)
        weight += 0.5**k
    total /= weight
    return (total - total.min()) / max(float(total.max() - total.min()), 1e-6)


def _blend(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(v, u) in [0, 1) as (size, size) arrays: row index is v, column index is u."""
    g = np.arange(size, dtype=np.float32) / size
    return np.meshgrid(g, g, indexing="ij")


def noise(rng: np.random.Generator, size: int) -> Texture:
    a, b = _colour(rng), _colour(rng)
    return _blend(a, b, _fractal(rng, size, base=int(rng.choice([2, 4, 8]))))


def tiles(rng: np.random.Generator, size: int) -> Texture:
    n = int(rng.choice([2, 4, 8]))
    v, u = _coords(size)
    iu, iv = (u * n).astype(np.int64), (v * n).astype(np.int64)
    base = _colour(rng, val=(0.5, 0.95))
    jitter = rng.uniform(-0.12, 0.12, (n, n, 3)).astype(np.float32)
    img = np.clip(base + jitter[iv, iu], 0, 1)
    img *= (0.9 + 0.1 * _fractal(rng, size, base=8))[..., None]
    grout = 0.03 + 0.03 * rng.random()
    line = (np.minimum((u * n) % 1, (v * n) % 1) < grout * n / 4) | (
        np.maximum((u * n) % 1, (v * n) % 1) > 1 - grout * n / 4)
    img[line] = _colour(rng, sat=(0.0, 0.15), val=(0.2, 0.6))
    return img


def stripes(rng: np.random.Generator, size: int) -> Texture:
    n = int(rng.integers(3, 10))
    colours = np.stack([_colour(rng) for _ in range(int(rng.integers(2, 4)))])
    widths = rng.uniform(0.5, 2.0, n)
    edges = np.concatenate([[0.0], np.cumsum(widths) / widths.sum()])
    _, u = _coords(size)
    band = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, n - 1)
    img = colours[band % len(colours)]
    return img * (0.88 + 0.12 * _fractal(rng, size, base=4))[..., None]


def wood(rng: np.random.Generator, size: int) -> Texture:
    boards = int(rng.choice([2, 4, 8]))
    v, u = _coords(size)
    board = (v * boards).astype(np.int64)
    offset = rng.random(boards).astype(np.float32)
    grain = _fractal(rng, size, base=4)
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * (6 * (v * boards % 1) + 3 * grain + 4 * offset[board]))
    light = _colour(rng, hue=(0.05, 0.11), sat=(0.35, 0.6), val=(0.6, 0.85))
    dark = light * rng.uniform(0.45, 0.7)
    img = _blend(light, dark, rings**2)
    seam = (v * boards % 1) < 0.02 * boards / 4
    img[seam] *= 0.5
    return img


def brick(rng: np.random.Generator, size: int) -> Texture:
    rows, per_row = int(rng.choice([4, 8])), int(rng.choice([2, 4]))
    v, u = _coords(size)
    row = (v * rows).astype(np.int64)
    shifted = (u + 0.5 / per_row * (row % 2)) % 1
    col = (shifted * per_row).astype(np.int64)
    base = _colour(rng, hue=(0.0, 0.08), sat=(0.4, 0.7), val=(0.45, 0.75))
    jitter = rng.uniform(-0.1, 0.1, (rows, per_row, 3)).astype(np.float32)
    img = np.clip(base + jitter[row, col], 0, 1) * (0.8 + 0.2 * _fractal(rng, size, 16))[..., None]
    mortar = ((v * rows) % 1 < 0.08) | ((shifted * per_row) % 1 < 0.04)
    img[mortar] = _colour(rng, sat=(0.0, 0.1), val=(0.6, 0.85))
    return img


def checker(rng: np.random.Generator, size: int) -> Texture:
    n = int(rng.choice([2, 4, 8]))
    v, u = _coords(size)
    odd = ((u * n).astype(np.int64) + (v * n).astype(np.int64)) % 2
    img = _blend(_colour(rng, val=(0.7, 0.95)), _colour(rng, val=(0.15, 0.5)), odd.astype(np.float32))
    return img * (0.9 + 0.1 * _fractal(rng, size, 8))[..., None]


def fabric(rng: np.random.Generator, size: int) -> Texture:
    threads = int(rng.choice([32, 48, 64]))
    v, u = _coords(size)
    weave = 0.5 + 0.25 * (np.sin(2 * np.pi * threads * u) + np.sin(2 * np.pi * threads * v))
    a = _colour(rng, sat=(0.3, 0.8))
    img = _blend(a, a * 0.6, weave.astype(np.float32))
    return img * (0.75 + 0.25 * _fractal(rng, size, 4))[..., None]


def marble(rng: np.random.Generator, size: int) -> Texture:
    v, u = _coords(size)
    turbulence = _fractal(rng, size, base=4, octaves=5)
    veins = np.abs(np.sin(2 * np.pi * (2 * u + 1 * v + 2.5 * turbulence))) ** 0.3
    base = _colour(rng, sat=(0.0, 0.2), val=(0.75, 0.95))
    return _blend(base * 0.5, base, veins.astype(np.float32))


def solid(rng: np.random.Generator, size: int, colour: np.ndarray, grain: float = 0.15) -> Texture:
    """A plain colour with faint noise (painted metal, terracotta, leaves)."""
    shade = 1 - grain + grain * _fractal(rng, size, base=8)
    return colour[None, None, :] * shade[..., None]


def books(rng: np.random.Generator, size: int) -> Texture:
    """A row of book spines: vertical bands of saturated colours with a label band."""
    img = np.empty((size, size, 3), np.float32)
    x = 0
    while x < size:
        width = int(rng.integers(size // 24 + 1, size // 8 + 2))
        spine = _colour(rng, sat=(0.4, 0.9), val=(0.25, 0.85))
        img[:, x:x + width] = spine
        top = int(rng.integers(0, size // 5))
        img[:top, x:x + width] = 0.08  # shelf gap above a shorter book
        label = int(rng.integers(size // 4, size // 2))
        img[label:label + size // 12, x + 1:x + width - 1] = _colour(rng, sat=(0, 0.2), val=(0.8, 1))
        img[:, x:x + 1] *= 0.4
        x += width
    return img


def poster(rng: np.random.Generator, size: int) -> Texture:
    """A unique picture: a gradient, random shapes and lines of 'text' (rich, distinct texture)."""
    v, u = _coords(size)
    img = _blend(_colour(rng), _colour(rng), (v * rng.uniform(0.5, 1.0)).astype(np.float32))
    for _ in range(int(rng.integers(4, 10))):
        colour = _colour(rng, sat=(0.5, 1.0), val=(0.3, 1.0))
        cu, cv, r = rng.random(), rng.random(), rng.uniform(0.05, 0.3)
        shape = rng.integers(3)
        if shape == 0:
            mask = (u - cu) ** 2 + (v - cv) ** 2 < r * r
        elif shape == 1:
            mask = (np.abs(u - cu) < r) & (np.abs(v - cv) < r * rng.uniform(0.3, 1.5))
        else:
            mask = np.abs((u - cu) * np.cos(3 * r) + (v - cv) * np.sin(7 * r)) < r / 5
        img[mask] = colour
    for line in range(int(rng.integers(2, 6))):
        row = 0.72 + 0.05 * line
        words = rng.random(16) < 0.7
        mask = (np.abs(v - row) < 0.012) & (u > 0.1) & (u < 0.9) & words[(u * 16).astype(np.int64)]
        img[mask] = 0.1
    border = (u < 0.03) | (u > 0.97) | (v < 0.03) | (v > 0.97)
    img[border] = _colour(rng, sat=(0, 0.3), val=(0.05, 0.95))
    return img


TILEABLE: dict[str, Callable[[np.random.Generator, int], Texture]] = {
    "noise": noise, "tiles": tiles, "stripes": stripes, "wood": wood, "brick": brick,
    "checker": checker, "fabric": fabric, "marble": marble,
}
