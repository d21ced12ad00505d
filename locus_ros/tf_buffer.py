"""A transform buffer for when tf2_ros is not importable (the PyPI ROS wheels lack it).

Same semantics as tf2 where the node relies on them: a tree of frames (each child has one parent),
static edges valid at every time, dynamic edges interpolated in time (linear translation, slerp
rotation) within a cache window, lookups through the common ancestor, ``time=None`` meaning the
latest time at which the whole chain is known, and an error (never a guess) outside the buffered
interval of any dynamic edge.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from locus_ros.errors import ExtrapolationError, LookupTransformError, TransformError


@dataclass
class _Edge:
    parent: str
    static: bool
    stamps: list[float] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    rotations: list[np.ndarray] = field(default_factory=list)  # quaternions x, y, z, w

    def insert(self, stamp: float, T: np.ndarray) -> None:
        quat = Rotation.from_matrix(T[:3, :3]).as_quat()
        if self.static:
            self.stamps, self.translations, self.rotations = [stamp], [T[:3, 3].copy()], [quat]
            return
        i = bisect.bisect_left(self.stamps, stamp)
        if i < len(self.stamps) and self.stamps[i] == stamp:  # a duplicate replaces its predecessor
            self.translations[i], self.rotations[i] = T[:3, 3].copy(), quat
            return
        self.stamps.insert(i, stamp)
        self.translations.insert(i, T[:3, 3].copy())
        self.rotations.insert(i, quat)

    def prune(self, older_than: float) -> None:
        if self.static:
            return
        # Keep the newest sample even if it is old: a slow publisher must not empty the edge.
        keep = min(bisect.bisect_left(self.stamps, older_than), len(self.stamps) - 1)
        if keep > 0:
            del self.stamps[:keep], self.translations[:keep], self.rotations[:keep]

    def at(self, time: float, child: str) -> np.ndarray:
        T = np.eye(4)
        if self.static:
            T[:3, :3] = Rotation.from_quat(self.rotations[0]).as_matrix()
            T[:3, 3] = self.translations[0]
            return T
        first, last = self.stamps[0], self.stamps[-1]
        if not first <= time <= last:
            kind = "past" if time < first else "future"
            raise ExtrapolationError(
                f"lookup of {self.parent} -> {child} at t={time:.6f} would extrapolate into the {kind}: "
                f"buffered from {first:.6f} to {last:.6f}"
            )
        i = bisect.bisect_left(self.stamps, time)
        if self.stamps[i] == time:
            T[:3, :3] = Rotation.from_quat(self.rotations[i]).as_matrix()
            T[:3, 3] = self.translations[i]
            return T
        t0, t1 = self.stamps[i - 1], self.stamps[i]
        alpha = (time - t0) / (t1 - t0)
        slerp = Slerp([0.0, 1.0], Rotation.from_quat([self.rotations[i - 1], self.rotations[i]]))
        T[:3, :3] = slerp([alpha]).as_matrix()[0]
        T[:3, 3] = (1 - alpha) * self.translations[i - 1] + alpha * self.translations[i]
        return T


class TransformBuffer:
    """Thread-safe store of a transform tree; ``lookup`` returns 4x4 float64 matrices.

    Args:
        cache_time: seconds of dynamic history kept per edge (tf2's default is 10 s).
    """

    def __init__(self, cache_time: float = 10.0) -> None:
        if cache_time <= 0:
            raise ValueError(f"cache_time must be positive, got {cache_time}")
        self.cache_time = cache_time
        self._edges: dict[str, _Edge] = {}
        self._lock = threading.Lock()
        self.time_jumps = 0  # dynamic edges reset because their time went backwards

    def set_transform(self, parent: str, child: str, T_parent_child: np.ndarray, stamp: float, *, static: bool = False) -> None:
        """Add the pose of ``child`` in ``parent`` at ``stamp`` (seconds).

        Raises:
            TransformError: empty or equal frame names, a non-finite matrix, or a child that would
                get a second parent (tf2 rejects this too: the tree would become ambiguous).
        """
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child or parent == child:
            raise TransformError(f"invalid transform {parent!r} -> {child!r}: frame names must be non-empty and differ")
        T = np.asarray(T_parent_child, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise TransformError(f"transform {parent} -> {child} at t={stamp}: not a finite 4x4 matrix")
        with self._lock:
            edge = self._edges.get(child)
            if edge is None or edge.static != static:
                edge = self._edges[child] = _Edge(parent=parent, static=static)
            elif edge.parent != parent:
                edge = self._edges[child] = _Edge(parent=parent, static=static)  # re-parented: old history is void
            elif not static and stamp < edge.stamps[-1] - self.cache_time:
                # Time went backwards (a looped bag, a restarted simulator): the old history would
                # make every new stamp look stale, so this edge starts over.
                edge = self._edges[child] = _Edge(parent=parent, static=static)
                self.time_jumps += 1
            edge.insert(float(stamp), T)
            if not static:
                edge.prune(edge.stamps[-1] - self.cache_time)

    def clear(self) -> None:
        """Drop the dynamic transforms (time jumped backwards: a looped bag); static ones stay."""
        with self._lock:
            self._edges = {child: edge for child, edge in self._edges.items() if edge.static}

    @property
    def frames(self) -> set[str]:
        with self._lock:
            return set(self._edges) | {edge.parent for edge in self._edges.values()}

    def _path_to_root(self, frame: str) -> list[str]:
        path = [frame]
        while path[-1] in self._edges:
            path.append(self._edges[path[-1]].parent)
            if len(path) > len(self._edges) + 1:
                raise LookupTransformError(f"transform tree has a cycle through {frame!r}")
        return path

    def _chain(self, target: str, source: str) -> tuple[list[str], list[str]]:
        """Frames from source up to the common ancestor, and from target up to it (both exclusive)."""
        known = set(self._edges) | {edge.parent for edge in self._edges.values()}
        for frame in (target, source):
            if frame not in known:
                raise LookupTransformError(f"frame {frame!r} does not exist (known: {', '.join(sorted(known)) or 'none'})")
        up_source, up_target = self._path_to_root(source), self._path_to_root(target)
        common = next((f for f in up_source if f in set(up_target)), None)
        if common is None:
            raise LookupTransformError(
                f"{target!r} and {source!r} are not connected: their trees end in {up_target[-1]!r} and {up_source[-1]!r}"
            )
        return up_source[: up_source.index(common)], up_target[: up_target.index(common)]

    def lookup(self, target: str, source: str, time: float | None = None) -> np.ndarray:
        """T_target_source (maps points in ``source`` to ``target``) at ``time`` (s; None = latest).

        Raises:
            LookupTransformError: unknown or unconnected frames.
            ExtrapolationError: ``time`` outside the buffered interval of an edge on the chain.
        """
        target, source = target.lstrip("/"), source.lstrip("/")
        with self._lock:
            if target == source:
                return np.eye(4)
            from_source, from_target = self._chain(target, source)
            edges = [(child, self._edges[child]) for child in from_source + from_target]
            if time is None:
                dynamic = [edge.stamps[-1] for _, edge in edges if not edge.static]
                time = min(dynamic) if dynamic else 0.0
            T_common_source = np.eye(4)
            for child in reversed(from_source):
                T_common_source = T_common_source @ self._edges[child].at(time, child)
            T_common_target = np.eye(4)
            for child in reversed(from_target):
                T_common_target = T_common_target @ self._edges[child].at(time, child)
        return np.linalg.inv(T_common_target) @ T_common_source

    def can_transform(self, target: str, source: str, time: float | None = None) -> bool:
        try:
            self.lookup(target, source, time)
        except TransformError:
            return False
        return True
