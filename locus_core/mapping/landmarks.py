"""Landmarks: the compact table that stores them, the distinctiveness score that selects them and the
matching that merges repeated observations of one physical point.

Storage per landmark (memory goal: <= 100 bytes at 10^6 landmarks, descriptors in the index):
position as a float16 offset from the camera centre of its first (anchor) keyframe (6 bytes, mm-level
for offsets under 4 m), anchor keyframe id (uint32), anchor pixel (2 x uint16); each further
observation is one row of (landmark uint32, keyframe uint32, pixel 2 x uint16) = 12 bytes.
A removed landmark keeps its row (ids are rows and never change) with anchor = ``REMOVED``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

REMOVED = np.iinfo(np.uint32).max


@dataclass
class LandmarkTable:
    offset: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float16))
    anchor: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    anchor_uv: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.uint16))
    extra_landmark: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    extra_keyframe: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    extra_uv: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.uint16))
    # ids sorted by anchor keyframe and where each keyframe's run starts; built on first use
    _by_anchor: tuple[int, np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.anchor)

    @property
    def num_active(self) -> int:
        return int((self.anchor != REMOVED).sum())

    @property
    def num_observations(self) -> int:
        return self.num_active + len(self.extra_landmark)

    def nbytes(self) -> int:
        """Bytes held, the ``anchored_at`` index included once built."""
        index = self._by_anchor[1].nbytes + self._by_anchor[2].nbytes if self._by_anchor is not None else 0
        return sum(a.nbytes for a in self.arrays().values()) + index

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LandmarkTable:
        return cls(**{name: np.asarray(arrays[name], dtype=dtype) for name, dtype in _FIELDS.items()})

    def positions(self, ids: np.ndarray, centres: np.ndarray) -> np.ndarray:
        """(n, 3) float64 map-frame positions of landmark ``ids`` given keyframe ``centres`` (K, 3)."""
        # np.take: a third of the time of fancy indexing on rows (tracking asks for ~10k each frame)
        return np.take(centres, np.take(self.anchor, ids), axis=0) + np.take(self.offset, ids, axis=0).astype(np.float64)

    def append(self, positions: np.ndarray, keyframe: int, uv: np.ndarray, centres: np.ndarray) -> np.ndarray:
        """New landmarks first seen by ``keyframe`` at pixels ``uv`` (n, 2); returns their ids."""
        start = len(self)
        self.offset = np.concatenate([self.offset, _offsets(positions - centres[keyframe])])
        self.anchor = np.concatenate([self.anchor, np.full(len(positions), keyframe, np.uint32)])
        self.anchor_uv = np.concatenate([self.anchor_uv, _pixels(uv)])
        return np.arange(start, len(self), dtype=np.int64)

    def observe(self, ids: np.ndarray, positions: np.ndarray, keyframe: int, uv: np.ndarray, centres: np.ndarray) -> None:
        """Record that ``keyframe`` sees landmarks ``ids`` at ``positions`` (their running mean moves)."""
        if len(ids) == 0:
            return
        count = 1 + self.observation_counts(ids)
        current = self.positions(ids, centres)
        mean = current + (positions - current) / (count + 1)[:, None]
        self.offset[ids] = _offsets(mean - centres[self.anchor[ids]])
        order = np.argsort(np.concatenate([self.extra_landmark, ids.astype(np.uint32)]), kind="stable")
        self.extra_landmark = np.concatenate([self.extra_landmark, ids.astype(np.uint32)])[order]
        self.extra_keyframe = np.concatenate([self.extra_keyframe, np.full(len(ids), keyframe, np.uint32)])[order]
        self.extra_uv = np.concatenate([self.extra_uv, _pixels(uv)])[order]

    def observation_counts(self, ids: np.ndarray) -> np.ndarray:
        """Number of extra (non-anchor) observations of each id."""
        lo = np.searchsorted(self.extra_landmark, ids, "left")
        hi = np.searchsorted(self.extra_landmark, ids, "right")
        return hi - lo

    def keyframes_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All (position in ``ids``, keyframe) pairs: which keyframes observe each landmark."""
        ids = np.asarray(ids, np.int64)
        rows = [np.arange(len(ids))]
        kfs = [self.anchor[ids].astype(np.int64)]
        lo = np.searchsorted(self.extra_landmark, ids, "left")
        hi = np.searchsorted(self.extra_landmark, ids, "right")
        counts = hi - lo
        if counts.sum():
            rows.append(np.repeat(np.arange(len(ids)), counts))
            kfs.append(self.extra_keyframe[_runs(lo, counts)].astype(np.int64))
        return np.concatenate(rows), np.concatenate(kfs)

    def anchored_at(self, keyframes: np.ndarray) -> np.ndarray:
        """Ids of the active landmarks whose anchor is one of ``keyframes`` (ascending per keyframe).

        The sort behind it (4 bytes per landmark) is kept until landmarks are appended."""
        if self._by_anchor is None or self._by_anchor[0] != len(self):
            order = np.argsort(self.anchor, kind="stable").astype(np.uint32)
            active = self.anchor[self.anchor != REMOVED]
            starts = np.concatenate([[0], np.cumsum(np.bincount(active))]) if len(active) else np.zeros(1, np.int64)
            self._by_anchor = (len(self), order, starts)
        _, order, starts = self._by_anchor
        keyframes = np.asarray(keyframes, np.int64)
        keyframes = keyframes[(keyframes >= 0) & (keyframes < len(starts) - 1)]
        ids = order[_runs(starts[keyframes], starts[keyframes + 1] - starts[keyframes])].astype(np.int64)
        return ids[self.anchor[ids] != REMOVED]

    def remove(self, ids: np.ndarray) -> None:
        self.anchor[ids] = REMOVED
        keep = ~np.isin(self.extra_landmark, ids)
        self.extra_landmark, self.extra_keyframe, self.extra_uv = (
            self.extra_landmark[keep], self.extra_keyframe[keep], self.extra_uv[keep]
        )

    def extend(self, other: LandmarkTable, keyframe_offset: int) -> None:
        """Append another map's landmarks whose keyframes were appended after ``keyframe_offset`` rows."""
        shift = np.uint32(len(self))
        other_anchor = np.where(other.anchor == REMOVED, REMOVED, other.anchor + np.uint32(keyframe_offset))
        self.offset = np.concatenate([self.offset, other.offset])
        self.anchor = np.concatenate([self.anchor, other_anchor.astype(np.uint32)])
        self.anchor_uv = np.concatenate([self.anchor_uv, other.anchor_uv])
        self.extra_landmark = np.concatenate([self.extra_landmark, other.extra_landmark + shift])
        self.extra_keyframe = np.concatenate([self.extra_keyframe, other.extra_keyframe + np.uint32(keyframe_offset)])
        self.extra_uv = np.concatenate([self.extra_uv, other.extra_uv])


_FIELDS = {
    "offset": np.float16,
    "anchor": np.uint32,
    "anchor_uv": np.uint16,
    "extra_landmark": np.uint32,
    "extra_keyframe": np.uint32,
    "extra_uv": np.uint16,
}


def _runs(first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indices first[i], ..., first[i] + counts[i] - 1 for every i, concatenated."""
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(first, counts) + within


def _offsets(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64).astype(np.float16).reshape(-1, 3)


def _pixels(uv: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(uv, np.float64)), 0, 65535).astype(np.uint16).reshape(-1, 2)


def distinctiveness(
    features: np.ndarray,
    points: np.ndarray,
    neighbour_features: np.ndarray,
    neighbour_points: np.ndarray,
    *,
    positive_radius: float,
    negative_radius: float,
) -> np.ndarray:
    """How well each patch's feature retrieves its own 3D neighbourhood (the AP criterion, cheap form).

    score = (best similarity to a neighbour-keyframe patch within ``positive_radius``)
          - (best similarity to any patch, own keyframe or neighbours, farther than ``negative_radius``).
    A positive score means the patch's nearest neighbour is a correct one. Patches with no positive
    in the neighbours (a region no neighbour saw) get the keyframe's median positive similarity,
    1 when no patch has one (the first keyframe): they are ranked by uniqueness alone.

    Args:
        features: (n, D) unit descriptors of the keyframe's valid-depth patches; points: (n, 3) map frame.
        neighbour_features: (m, D); neighbour_points: (m, 3) of the neighbour keyframes' patches.
    Returns:
        (n,) float32 scores.
    """
    if len(features) != len(points) or len(neighbour_features) != len(neighbour_points):
        raise ValueError("distinctiveness: features and points must have the same length")
    own_sim = features @ features.T
    own_far = _sq_dist(points, points) > negative_radius**2
    neg = np.where(own_far, own_sim, -np.inf).max(1, initial=-np.inf)
    pos = np.full(len(features), -np.inf, np.float32)
    if len(neighbour_features):
        sim = features @ neighbour_features.T
        d2 = _sq_dist(points, neighbour_points)
        pos = np.where(d2 < positive_radius**2, sim, -np.inf).max(1, initial=-np.inf)
        neg = np.maximum(neg, np.where(d2 > negative_radius**2, sim, -np.inf).max(1, initial=-np.inf))
    found = np.isfinite(pos)
    pos = np.where(found, pos, np.median(pos[found]) if found.any() else 1.0)
    neg = np.where(np.isfinite(neg), neg, -1.0)
    return (pos - neg).astype(np.float32)


def match_for_merge(
    features: np.ndarray,
    points: np.ndarray,
    landmark_features: np.ndarray,
    landmark_points: np.ndarray,
    *,
    radius: float,
    min_similarity: float,
) -> np.ndarray:
    """For each candidate (n,), the index of the existing landmark (m,) it re-observes, or -1.

    A match is within ``radius`` metres and at least ``min_similarity`` similar; each landmark takes
    at most one candidate (the most similar), so a keyframe never observes a landmark twice.
    """
    out = np.full(len(features), -1, np.int64)
    if len(features) == 0 or len(landmark_features) == 0:
        return out
    sim = features @ landmark_features.T
    ok = (_sq_dist(points, landmark_points) < radius**2) & (sim >= min_similarity)
    sim = np.where(ok, sim, -np.inf)
    for i in np.argsort(-sim.max(1)):
        j = int(np.argmax(sim[i]))
        if np.isfinite(sim[i, j]):
            out[i] = j
            sim[:, j] = -np.inf
    return out


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2.0 * a @ b.T, 0.0)
