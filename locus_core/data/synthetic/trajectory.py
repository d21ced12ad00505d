"""A smooth closed camera path at head height: around every room, through the doorways to the
last room and back, so that every place is seen again later from other directions.
"""

from __future__ import annotations

import numpy as np

from locus_core.data.synthetic.layout import Door, Room

EYE_HEIGHT = 1.5
LOOP_RADIUS = (0.22, 0.6, 1.5)  # walk round each room's centre: this fraction of its short side, clipped
APPROACH = 0.9  # waypoints this far either side of a doorway, so the path crosses it squarely
SWAY_PERIOD = 5.0  # metres of path per left-right look-around


def waypoints(rooms: list[Room], doors: list[Door], rng: np.random.Generator) -> np.ndarray:
    """(K, 2) xy points the closed path passes through, in order.

    Out: a full counter-clockwise loop around each room's centre, then through the door to the
    next room; back: a partial loop in each room from the door it enters by to the one it leaves
    by. Loops always turn the same way, so the path never doubles back on itself (no cusps).
    """
    def toward(room: Room, door: Door) -> float:
        v = np.asarray(door.centre) - room.centre
        return float(np.arctan2(v[1], v[0]))

    def through(door: Door, forward: bool) -> list[np.ndarray]:
        c, n = np.asarray(door.centre), door.normal * (1 if forward else -1)
        return [c - APPROACH * n, c, c + APPROACH * n]

    start = rng.uniform(0, 2 * np.pi)
    points: list[np.ndarray] = []
    last = len(rooms) - 1
    for k, room in enumerate(rooms):
        enter = toward(room, doors[k - 1]) if k > 0 else (toward(room, doors[0]) if doors else start)
        leave = toward(room, doors[k]) if k < last else enter
        points.extend(_loop(room, enter, leave, full=True))
        if k < last:
            points.extend(through(doors[k], forward=True))
    for k in range(last - 1, -1, -1):
        points.extend(through(doors[k], forward=False))
        if k > 0:
            room = rooms[k]
            points.extend(_loop(room, toward(room, doors[k]), toward(room, doors[k - 1]), full=False))
    return np.asarray(points, dtype=np.float64)


def _loop(room: Room, enter: float, leave: float, full: bool) -> list[np.ndarray]:
    """Points on a circle round the room centre, counter-clockwise from the side of the entrance
    (angle ``enter``) to just before the side of the exit (angle ``leave``)."""
    span = (leave - enter) % (2 * np.pi)
    if full or span < np.pi / 2:
        span += 2 * np.pi
    angles = enter + np.pi / 2 + np.arange(0, span - 3 * np.pi / 4 + 1e-9, np.pi / 2)
    if len(angles) == 0:
        angles = np.array([enter + span / 2])
    fraction, smallest, largest = LOOP_RADIUS
    short_side = min(room.hi[0] - room.lo[0], room.hi[1] - room.lo[1])
    radius = float(np.clip(fraction * short_side, smallest, largest))
    return list(room.centre + radius * np.stack([np.cos(angles), np.sin(angles)], 1))


def _catmull_rom(points: np.ndarray, per_segment: int) -> np.ndarray:
    """Dense (K*per_segment, 2) samples of the closed centripetal Catmull-Rom spline."""
    n = len(points)
    out = []
    s = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    for i in range(n):
        p0, p1, p2, p3 = (points[(i + j - 1) % n] for j in range(4))
        t0 = 0.0
        t1 = t0 + np.linalg.norm(p1 - p0) ** 0.5 + 1e-9
        t2 = t1 + np.linalg.norm(p2 - p1) ** 0.5 + 1e-9
        t3 = t2 + np.linalg.norm(p3 - p2) ** 0.5 + 1e-9
        t = t1 + s * (t2 - t1)
        a1 = (t1 - t) / (t1 - t0) * p0 + (t - t0) / (t1 - t0) * p1
        a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
        a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
        b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
        b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
        out.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    return np.concatenate(out)


class CameraPath:
    """The closed path, resampled by arc length; poses are camera-to-world, OpenCV axes, z up world."""

    def __init__(self, points: np.ndarray, rng: np.random.Generator) -> None:
        dense = _catmull_rom(points, 64)
        step = np.linalg.norm(np.roll(dense, -1, 0) - dense, axis=1)
        self.dense = dense
        self._arc = np.concatenate([[0.0], np.cumsum(step)])
        self.length = float(self._arc[-1])
        # heading: the tangent direction, smoothed over ~1 m so turns are gradual
        tangent = np.roll(dense, -1, 0) - np.roll(dense, 1, 0)
        window = max(1, int(round(0.8 / max(self.length / len(dense), 1e-9))))
        kernel = np.exp(-0.5 * (np.arange(-3 * window, 3 * window + 1) / window) ** 2)
        smooth = np.stack([np.convolve(np.pad(tangent[:, j], 3 * window, mode="wrap"), kernel, "valid")
                           for j in range(2)], 1)
        self._heading = np.unwrap(np.arctan2(smooth[:, 1], smooth[:, 0]))
        self._heading = np.append(self._heading, self._heading[0] + 2 * np.pi * round(
            (self._heading[-1] - self._heading[0]) / (2 * np.pi)))
        sways = max(1, round(self.length / SWAY_PERIOD))
        self._sway = (sways, rng.uniform(0.3, 0.5), rng.uniform(0, 2 * np.pi))

    def poses(self, count: int) -> np.ndarray:
        """(count, 4, 4) float64 camera-to-world poses evenly spaced along the whole loop."""
        s = np.arange(count) * self.length / count
        closed = np.vstack([self.dense, self.dense[:1]])
        xy = np.stack([np.interp(s, self._arc, closed[:, j]) for j in range(2)], 1)
        phase = 2 * np.pi * s / self.length
        sways, amplitude, offset = self._sway
        yaw = np.interp(s, self._arc, self._heading) + amplitude * np.sin(sways * phase + offset)
        pitch = -0.15 + 0.1 * np.sin(max(1, 2 * sways // 3) * phase + offset)
        z = EYE_HEIGHT + 0.05 * np.sin(3 * phase)
        forward = np.stack([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)], 1)
        right = np.stack([np.sin(yaw), -np.cos(yaw), np.zeros_like(yaw)], 1)
        down = np.cross(forward, right)
        T = np.tile(np.eye(4), (count, 1, 1))
        T[:, :3, 0], T[:, :3, 1], T[:, :3, 2] = right, down, forward
        T[:, :3, 3] = np.concatenate([xy, z[:, None]], 1)
        return T
