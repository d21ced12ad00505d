"""The scene's texture atlas: procedural textures plus how many metres one repeat covers."""

from __future__ import annotations

import numpy as np

from locus_core.data.synthetic import textures


class MaterialLibrary:
    """Textures (uint8, one size) and materials (texture, metres per repeat along u and v).

    Several materials may share a texture at different scales. Object textures come from a bounded
    pool (new ones while the pool fills, reused after) so memory stays flat for many rooms.
    """

    def __init__(self, rng: np.random.Generator, size: int, kinds: tuple[str, ...], pool: int) -> None:
        self.rng, self.size, self.kinds, self.pool = rng, size, kinds, pool
        self._textures: list[np.ndarray] = []
        self._object_textures: list[int] = []
        self.rows: list[tuple[int, float, float]] = []

    def add_texture(self, image: np.ndarray) -> int:
        self._textures.append(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8))
        return len(self._textures) - 1

    def material(self, texture: int, scale: tuple[float, float]) -> int:
        self.rows.append((texture, float(scale[0]), float(scale[1])))
        return len(self.rows) - 1

    def tileable(self, kinds: tuple[str, ...] | None = None) -> int:
        """A new texture of one of ``kinds`` (restricted to the configured kinds when possible)."""
        allowed = [k for k in (kinds or self.kinds) if k in self.kinds] or list(self.kinds)
        kind = allowed[int(self.rng.integers(len(allowed)))]
        return self.add_texture(textures.TILEABLE[kind](self.rng, self.size))

    def object_texture(self, kinds: tuple[str, ...] | None = None) -> int:
        if len(self._object_textures) >= self.pool:
            return self._object_textures[int(self.rng.integers(len(self._object_textures)))]
        self._object_textures.append(self.tileable(kinds))
        return self._object_textures[-1]

    def solid(self, colour: tuple[float, float, float], grain: float = 0.15) -> int:
        image = textures.solid(self.rng, self.size, np.asarray(colour, np.float32), grain)
        return self.add_texture(image)

    def atlas(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(M, T, T, 3) uint8 textures, (N,) int64 texture of each material, (N, 2) float32 scales."""
        rows = np.array(self.rows, dtype=np.float64).reshape(-1, 3)
        return (np.stack(self._textures), rows[:, 0].astype(np.int64),
                rows[:, 1:].astype(np.float32))
