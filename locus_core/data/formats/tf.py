"""Transform trees as ROS publishes them on ``/tf`` and ``/tf_static``, queried at any time (numpy).

One implementation for the live node (``locus_ros``, when tf2_ros is not importable: the PyPI ROS
wheels lack it) and the bag readers. Same semantics as tf2 where it matters: a tree of frames (each
child has one parent), static edges valid at every time, dynamic edges interpolated in time (linear
translation, slerp rotation) within a cache window, lookups through the common ancestor,
``time=None`` meaning the latest time at which the whole chain is known, and an error (never a
guess) outside the buffered interval of any dynamic edge. ``max_gap`` additionally refuses to
interpolate across a hole in a stream (a dropped odometry message is fine, a missing minute is not).

``TransformBuffer`` raises ``TransformError``s (thread-safe, for the node); ``TfTree`` is the bag
readers' view of it: whole recording kept, poses given as ``tx ty tz qx qy qz qw``, ``None`` where
the buffer would raise; ``TfSegments`` splits a recording whose stamps restart (a looped bag, a
restarted simulator) into one ``TfTree`` per run.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from locus_core.data.errors import ExtrapolationError, FrameError, LookupTransformError, TransformError
from locus_core.data.poses import check_pose

# Stamps closer than this are the same sample (float seconds from sec + nanosec).
SAME_STAMP_S = 1e-9


@dataclass
class _Edge:
    parent: str
    static: bool
    stamps: list[float] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    rotations: list[np.ndarray] = field(default_factory=list)  # unit quaternions x, y, z, w

    def insert(self, stamp: float, translation: np.ndarray, quat: np.ndarray) -> None:
        if self.static:
            self.stamps, self.translations, self.rotations = [stamp], [translation], [quat]
            return
        i = bisect.bisect_left(self.stamps, stamp)
        if i < len(self.stamps) and self.stamps[i] == stamp:  # a duplicate replaces its predecessor
            self.translations[i], self.rotations[i] = translation, quat
            return
        self.stamps.insert(i, stamp)
        self.translations.insert(i, translation)
        self.rotations.insert(i, quat)

    def prune(self, older_than: float) -> None:
        if self.static:
            return
        # Keep the newest sample even if it is old: a slow publisher must not empty the edge.
        keep = min(bisect.bisect_left(self.stamps, older_than), len(self.stamps) - 1)
        if keep > 0:
            del self.stamps[:keep], self.translations[:keep], self.rotations[:keep]

    def _sample(self, i: int) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = Rotation.from_quat(self.rotations[i]).as_matrix()
        T[:3, 3] = self.translations[i]
        return T

    def at(self, time: float, child: str, max_gap: float) -> np.ndarray:
        if self.static:
            return self._sample(0)
        first, last = self.stamps[0], self.stamps[-1]
        if not first - SAME_STAMP_S <= time <= last + SAME_STAMP_S:
            kind = "past" if time < first else "future"
            raise ExtrapolationError(
                f"lookup of {self.parent} -> {child} at t={time:.6f} would extrapolate into the {kind}: "
                f"buffered from {first:.6f} to {last:.6f}"
            )
        i = bisect.bisect_left(self.stamps, time)
        for j in (i - 1, i):
            if 0 <= j < len(self.stamps) and abs(self.stamps[j] - time) <= SAME_STAMP_S:
                return self._sample(j)
        t0, t1 = self.stamps[i - 1], self.stamps[i]
        if t1 - t0 > max_gap:
            raise ExtrapolationError(
                f"lookup of {self.parent} -> {child} at t={time:.6f} falls in a gap of the stream: "
                f"samples at {t0:.6f} and {t1:.6f}, more than {max_gap} s apart"
            )
        alpha = (time - t0) / (t1 - t0)
        slerp = Slerp([0.0, 1.0], Rotation.from_quat([self.rotations[i - 1], self.rotations[i]]))
        T = np.eye(4)
        T[:3, :3] = slerp([alpha]).as_matrix()[0]
        T[:3, 3] = (1 - alpha) * self.translations[i - 1] + alpha * self.translations[i]
        return T


class TransformBuffer:
    """Thread-safe store of a transform tree; ``lookup`` returns 4x4 float64 matrices.

    Args:
        cache_time: seconds of dynamic history kept per edge (tf2's default is 10 s; ``math.inf``
            keeps everything, for a recording read offline).
        max_gap: largest time (s) between the two samples a lookup is interpolated between
            (inf: tf2's behaviour, any gap is bridged).
        jump_s: a dynamic sample stamped more than this (s) before its edge's newest means time went
            backwards (a looped bag, a restarted simulator): the edge starts over with it, so that
            the new run's transforms are never interpolated with the old run's (inf: never).
    """

    def __init__(self, cache_time: float = 10.0, *, max_gap: float = math.inf, jump_s: float = 1.0) -> None:
        if not cache_time > 0 or not max_gap > 0 or not jump_s > 0:
            raise ValueError(f"cache_time, max_gap and jump_s must be positive, got {cache_time}, {max_gap} and {jump_s}")
        self.cache_time = cache_time
        self.max_gap = max_gap
        self.jump_s = jump_s
        self._edges: dict[str, _Edge] = {}
        self._lock = threading.Lock()
        self.time_jumps = 0  # dynamic edges reset because their time went backwards

    def set_transform(self, parent: str, child: str, T_parent_child: np.ndarray, stamp: float, *, static: bool = False) -> None:
        """Add the pose (4, 4) of ``child`` in ``parent`` at ``stamp`` (seconds).

        Raises:
            TransformError: empty or equal frame names, a non-finite matrix, or a non-rotation.
        """
        T = np.asarray(T_parent_child, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise TransformError(f"transform {parent} -> {child} at t={stamp}: not a finite 4x4 matrix")
        try:
            # scipy takes the nearest rotation of any matrix (and raises ValueError on a reflection)
            T = check_pose(T, f"transform {parent} -> {child} at t={stamp}")
        except FrameError as exc:
            raise TransformError(str(exc)) from None
        self._set(parent, child, stamp, T[:3, 3].copy(), Rotation.from_matrix(T[:3, :3]).as_quat(), static)

    def set_transform_tq(self, parent: str, child: str, tq: np.ndarray, stamp: float, *, static: bool = False) -> None:
        """:meth:`set_transform` with the pose as ``tx ty tz qx qy qz qw`` (as in the messages)."""
        tq = np.asarray(tq, dtype=np.float64)
        norm = float(np.linalg.norm(tq[3:7])) if tq.shape == (7,) else 0.0
        if not (np.isfinite(tq).all() and norm > 1e-6):
            raise TransformError(f"transform {parent} -> {child} at t={stamp}: invalid pose {tq.tolist()}")
        self._set(parent, child, stamp, tq[:3].copy(), tq[3:7] / norm, static)

    def _set(self, parent: str, child: str, stamp: float, translation: np.ndarray, quat: np.ndarray, static: bool) -> None:
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child or parent == child:
            raise TransformError(f"invalid transform {parent!r} -> {child!r}: frame names must be non-empty and differ")
        with self._lock:
            edge = self._edges.get(child)
            if edge is None or edge.static != static or edge.parent != parent:
                # New, or re-parented / re-typed: the old history is void (tf2 keeps one parent per child).
                edge = self._edges[child] = _Edge(parent=parent, static=static)
            elif not static and stamp < edge.stamps[-1] - self.jump_s:
                # Time went backwards: the edge starts over before the new run's first sample is
                # stored, whenever it arrives relative to the images that need it.
                edge = self._edges[child] = _Edge(parent=parent, static=static)
                self.time_jumps += 1
            edge.insert(float(stamp), translation, quat)
            if not static:
                edge.prune(edge.stamps[-1] - self.cache_time)

    def clear(self) -> None:
        """Drop the dynamic transforms (a reset); static ones stay."""
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
            ExtrapolationError: ``time`` outside the buffered interval of an edge on the chain, or
                in a gap wider than ``max_gap``.
        """
        target, source = target.lstrip("/"), source.lstrip("/")
        with self._lock:
            if target == source:
                return np.eye(4)
            from_source, from_target = self._chain(target, source)
            edges = [self._edges[child] for child in from_source + from_target]
            if time is None:
                dynamic = [edge.stamps[-1] for edge in edges if not edge.static]
                time = min(dynamic) if dynamic else 0.0
            T_common_source = np.eye(4)
            for child in reversed(from_source):
                T_common_source = T_common_source @ self._edges[child].at(time, child, self.max_gap)
            T_common_target = np.eye(4)
            for child in reversed(from_target):
                T_common_target = T_common_target @ self._edges[child].at(time, child, self.max_gap)
        return np.linalg.solve(T_common_target, T_common_source)

    def can_transform(self, target: str, source: str, time: float | None = None) -> bool:
        try:
            self.lookup(target, source, time)
        except TransformError:
            return False
        return True


class TfTree:
    """A whole recording's TF for the bag readers: a :class:`TransformBuffer` that keeps every
    sample and answers ``None`` instead of raising.

    Args:
        max_gap: no interpolation between samples more than this far (s) apart.
    """

    def __init__(self, max_gap: float = 0.5) -> None:
        self.max_gap = max_gap
        # No jump detection of its own: TfSegments gives each run of a recording its own tree.
        self._buffer = TransformBuffer(cache_time=math.inf, max_gap=max_gap, jump_s=math.inf)
        self.rejected = 0  # samples with an invalid pose or frame names (not stored)

    def add(self, parent: str, child: str, stamp: float, tq: np.ndarray, *, static: bool) -> None:
        """Record ``T_parent_child`` (``tx ty tz qx qy qz qw``) at ``stamp``."""
        try:
            self._buffer.set_transform_tq(parent, child, tq, stamp, static=static)
        except TransformError:
            self.rejected += 1

    @property
    def frames(self) -> set[str]:
        return self._buffer.frames

    def lookup(self, target: str, source: str, t: float) -> np.ndarray | None:
        """``T_target_source`` (4, 4) at time t (pose of ``source`` in ``target``), or None when the
        frames are not connected or a dynamic edge between them has no samples around t."""
        try:
            return self._buffer.lookup(target, source, t)
        except TransformError:
            return None


def stamp_of(msg: Any) -> float:
    """Seconds of the ``header.stamp`` of a ROS message (``sec`` + ``nanosec``, either ROS)."""
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _tq(transform: Any) -> np.ndarray:
    """``tx ty tz qx qy qz qw`` of a ``geometry_msgs/Transform``."""
    t, q = transform.translation, transform.rotation
    return np.array([t.x, t.y, t.z, q.x, q.y, q.z, q.w], dtype=np.float64)


class TfSegments:
    """A recording's TF in time segments, for recordings whose stamps restart (a looped bag, a
    restarted simulator or driver): one :class:`TfTree` per segment, static transforms carried over.

    Each stream (a topic, or the TF samples of one child frame) is in one segment at a time. A
    message whose stamp falls more than ``jump_s`` behind the newest of its own stream moves that
    stream on to the newest segment, opening one if the stream is already there. So a segment is
    opened once, by the first stream to jump back, and the others join it when they jump
    themselves: publishers with different latencies never look like a jump, and a late message of
    the previous run (received just after the new run's first) stays in the previous segment. A
    stream that jumps back alone and then continues past where it was (one stale stamp) returns to
    its segment.

    Args:
        jump_s: how far (s) a stream's stamp must fall behind its newest to start a new run.
        max_gap_s: the trees' ``max_gap``.
    """

    def __init__(self, jump_s: float = 1.0, max_gap_s: float = 0.5) -> None:
        self.jump_s, self.max_gap_s = jump_s, max_gap_s
        self.trees = [TfTree(max_gap_s)]
        self._statics: list[tuple[str, str, np.ndarray]] = []
        self._streams: dict[str, tuple[int, float]] = {}  # stream -> (segment, newest stamp)
        self._members: list[set[str]] = [set()]  # per segment, the streams that have been in it
        self._before_jump: dict[str, tuple[int, float]] = {}  # stream -> (segment, newest) before its last jump

    def observe(self, stream: str, stamp: float) -> int:
        """The segment of the message of ``stream`` stamped ``stamp`` (s); a new stream starts in the newest."""
        newest_segment = len(self.trees) - 1
        segment, newest = self._streams.get(stream, (newest_segment, stamp))
        previous = self._before_jump.get(stream)
        if previous is not None and stamp >= previous[1] and self._members[segment] == {stream}:
            # back past where it was before jumping, and no other stream followed it: that jump was
            # one stale stamp, not a new run
            (segment, newest), _ = previous, self._before_jump.pop(stream)
        elif stamp < newest - self.jump_s:
            self._before_jump[stream] = (segment, newest)
            if segment == newest_segment:
                tree = TfTree(self.max_gap_s)
                for parent, child, tq in self._statics:
                    tree.add(parent, child, 0.0, tq, static=True)
                self.trees.append(tree)
                self._members.append(set())
            segment, newest = len(self.trees) - 1, stamp
        self._members[segment].add(stream)
        self._streams[stream] = (segment, max(newest, stamp))
        return segment

    def add_tf(self, msg: Any, *, static: bool) -> None:
        """Record a ``tf2_msgs/TFMessage`` of ``/tf``, or of ``/tf_static`` (``static``)."""
        for tr in msg.transforms:
            parent, child, stamp, tq = tr.header.frame_id, tr.child_frame_id, stamp_of(tr), _tq(tr.transform)
            if static:
                self._statics.append((parent, child, tq))
                self.trees[-1].add(parent, child, stamp, tq, static=True)
            else:
                self.trees[self.observe("tf:" + child, stamp)].add(parent, child, stamp, tq, static=False)

    @property
    def frames(self) -> set[str]:
        """The frames of every segment's tree."""
        return set().union(*(tree.frames for tree in self.trees))
