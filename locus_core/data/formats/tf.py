"""A TF tree read from ``/tf`` and ``/tf_static`` messages, queried at any time (numpy)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from locus_core.data.poses import interpolate_tq, pose_from_tq


class TfTree:
    """Transforms ``T_parent_child`` per edge; dynamic edges interpolated in time (no extrapolation
    beyond ``max_gap`` seconds between bracketing samples), static edges constant."""

    def __init__(self, max_gap: float = 0.5) -> None:
        self.max_gap = max_gap
        self._samples: dict[str, list[tuple[float, np.ndarray]]] = defaultdict(list)
        self._static: dict[str, np.ndarray] = {}
        self._parent: dict[str, str] = {}
        self._series: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def add(self, parent: str, child: str, stamp: float, tq: np.ndarray, *, static: bool) -> None:
        """Record ``T_parent_child`` (``tx ty tz qx qy qz qw``); frame names without leading '/'."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        self._parent[child] = parent
        if static:
            self._static[child] = np.asarray(tq, dtype=np.float64)
        else:
            self._samples[child].append((stamp, np.asarray(tq, dtype=np.float64)))
            self._series.pop(child, None)

    @property
    def frames(self) -> set[str]:
        return set(self._parent) | set(self._parent.values())

    def _edge(self, child: str, t: float) -> np.ndarray | None:
        if child in self._static:
            return pose_from_tq(self._static[child])
        if child not in self._series:
            samples = sorted(self._samples[child], key=lambda s: s[0])
            self._series[child] = (np.array([s[0] for s in samples]), np.stack([s[1] for s in samples]))
        stamps, tq = self._series[child]
        value = interpolate_tq(stamps, tq, t, self.max_gap)
        return None if value is None else pose_from_tq(value)

    def _ancestors(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._parent:
            chain.append(self._parent[chain[-1]])
            if len(chain) > 256:
                raise ValueError(f"TF tree has a cycle through {frame!r}")
        return chain

    def _up_to(self, chain: list[str], common: str, t: float) -> np.ndarray | None:
        """T_common_frame for chain[0], composing only the edges below ``common``."""
        T = np.eye(4)
        for frame in chain[: chain.index(common)]:
            edge = self._edge(frame, t)
            if edge is None:
                return None
            T = edge @ T
        return T

    def lookup(self, target: str, source: str, t: float) -> np.ndarray | None:
        """``T_target_source`` (4, 4) at time t (pose of ``source`` in ``target``), or None when the
        frames are not connected or a dynamic edge between them has no samples around t."""
        up_source = self._ancestors(source.lstrip("/"))
        up_target = self._ancestors(target.lstrip("/"))
        common = next((f for f in up_source if f in set(up_target)), None)
        if common is None:
            return None
        T_common_source = self._up_to(up_source, common, t)
        T_common_target = self._up_to(up_target, common, t)
        if T_common_source is None or T_common_target is None:
            return None
        return np.linalg.solve(T_common_target, T_common_source)
