"""The keyframe table of a map and the motion test that decides when a frame becomes a keyframe."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Keyframes:
    """Keyframes in insertion order; a keyframe's id is its row.

    Attributes:
        T_map_kf: (N, 4, 4) float64 camera-to-map poses.
        K: (N, 3, 3) float64 intrinsics at the model input size (where landmark pixels live).
        frame_ids: (N,) str names of the source frames.
        source_index: (N,) int64 index of each frame in its source sequence.
        stamps: (N,) float64 seconds.
    """

    T_map_kf: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 4)))
    K: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))
    frame_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="U1"))
    source_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    stamps: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.T_map_kf)

    @property
    def centres(self) -> np.ndarray:
        """(N, 3) camera centres in the map frame."""
        return self.T_map_kf[:, :3, 3]

    def append(self, T_map_kf: np.ndarray, K: np.ndarray, frame_id: str, source_index: int, stamp: float) -> int:
        """Add one keyframe; returns its id."""
        self.T_map_kf = np.concatenate([self.T_map_kf, np.asarray(T_map_kf, np.float64)[None]])
        self.K = np.concatenate([self.K, np.asarray(K, np.float64)[None]])
        self.frame_ids = np.concatenate([self.frame_ids, np.array([frame_id])])
        self.source_index = np.concatenate([self.source_index, np.array([source_index], np.int64)])
        self.stamps = np.concatenate([self.stamps, np.array([stamp], np.float64)])
        return len(self) - 1

    def extend(self, other: Keyframes) -> None:
        for name in ("T_map_kf", "K", "frame_ids", "source_index", "stamps"):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "T_map_kf": self.T_map_kf,
            "K": self.K,
            "frame_ids": self.frame_ids.astype(str),
            "source_index": self.source_index,
            "stamps": self.stamps,
        }

    def nearest(self, T_map_cam: np.ndarray) -> tuple[int, float, float]:
        """(id, translation m, rotation deg) of the keyframe closest in position; (-1, inf, inf) if none."""
        if len(self) == 0:
            return -1, float("inf"), float("inf")
        trans, rot = motion(self.T_map_kf, T_map_cam)
        i = int(np.argmin(trans))
        return i, float(trans[i]), float(rot[i])


def motion(T_a: np.ndarray, T_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Translation (m) and rotation angle (deg) between poses T_a (N,4,4) and one pose T_b (4,4)."""
    trans = np.linalg.norm(T_a[:, :3, 3] - T_b[:3, 3], axis=-1)
    cos = (np.einsum("nij,ij->n", T_a[:, :3, :3], T_b[:3, :3]) - 1.0) / 2.0
    return trans, np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def is_new_viewpoint(keyframes: Keyframes, T_map_cam: np.ndarray, translation_m: float, rotation_deg: float) -> bool:
    """True when no keyframe is within both ``translation_m`` and ``rotation_deg`` of the pose."""
    if len(keyframes) == 0:
        return True
    trans, rot = motion(keyframes.T_map_kf, T_map_cam)
    return not bool(((trans <= translation_m) & (rot <= rotation_deg)).any())
