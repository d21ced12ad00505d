"""The landmark map: keyframes, landmarks (position + observations) and their descriptor index."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.mapping.config import MapConfig
from locus_core.mapping.errors import MapError
from locus_core.mapping.index import LandmarkIndex, choose_kind
from locus_core.mapping.keyframes import Keyframes
from locus_core.mapping.landmarks import REMOVED, LandmarkTable


@dataclass
class LandmarkMap:
    """A map in one metric frame ("map"), tied to the model whose features it stores.

    Attributes:
        model_hash: ``LocusModel.hash`` of the model that computed the descriptors; queries must use it.
        model_info: what else identifies the model (spec, config) for ``locus map info``.
        config: the resolved MapConfig it was built with.
        keyframes, landmarks: the tables; a landmark's id is its row and its faiss id.
        index: descriptors of the active landmarks, or None while the map is empty.
        sources: one entry per mapping session (data set path, name, frames), for provenance.
    """

    model_hash: str
    dim: int
    config: MapConfig = field(default_factory=MapConfig)
    model_info: dict[str, Any] = field(default_factory=dict)
    keyframes: Keyframes = field(default_factory=Keyframes)
    landmarks: LandmarkTable = field(default_factory=LandmarkTable)
    index: LandmarkIndex | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def for_model(cls, model: Any, config: MapConfig | None = None) -> LandmarkMap:
        """An empty map for ``model``'s features (``config.scale`` resolved, the model identified)."""
        from locus_core.config import config_to_dict

        config = config or MapConfig()
        radii = tuple(model.config.radii)
        scale = min(range(len(radii)), key=radii.__getitem__) if config.scale is None else config.scale
        if not 0 <= scale < len(radii):
            raise MapError(f"map scale {scale} out of range: model {model.hash} has {len(radii)} scale(s)")
        return cls(
            model_hash=model.hash, dim=int(model.config.dim), config=replace(config, scale=scale),
            model_info={"backbone": model.config.backbone, "config": config_to_dict(model.config)},
        )

    @property
    def num_landmarks(self) -> int:
        return self.landmarks.num_active

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """(n, 3) float64 map-frame positions of landmark ids."""
        return self.landmarks.positions(np.asarray(ids, np.int64), self.keyframes.centres)

    def landmarks_near(self, T_map_cam: np.ndarray, radius_m: float, max_angle_deg: float) -> np.ndarray:
        """Ids of the landmarks anchored in keyframes within ``radius_m`` of the camera ``T_map_cam``
        (4, 4) whose optical axes are within ``max_angle_deg`` of its own: the landmarks it may see."""
        T_kf = self.keyframes.T_map_kf
        distance = np.linalg.norm(T_kf[:, :3, 3] - T_map_cam[:3, 3], axis=1)
        cos = T_kf[:, :3, 2] @ T_map_cam[:3, 2]
        near = np.flatnonzero((distance <= radius_m) & (cos >= np.cos(np.radians(max_angle_deg))))
        return self.landmarks.anchored_at(near)

    def search(self, descriptors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k nearest landmarks of (Q, D) descriptors: similarities (Q, k), ids (Q, k) (-1 = none)."""
        if self.index is None:
            q = len(descriptors)
            return np.full((q, k), -np.inf, np.float32), np.full((q, k), -1, np.int64)
        return self.index.search(descriptors, k)

    def add_landmarks(self, descriptors: np.ndarray, positions: np.ndarray, keyframe: int, uv: np.ndarray) -> np.ndarray:
        """New landmarks first seen by ``keyframe``; indexed at once. Returns their ids."""
        if descriptors.shape[1] != self.dim:
            raise MapError(f"descriptor dimension {descriptors.shape[1]} does not match the map ({self.dim})")
        ids = self.landmarks.append(positions, keyframe, uv, self.keyframes.centres)
        if self.index is None:
            self.index = LandmarkIndex.build(
                descriptors, ids, kind="flat", nprobe=self.config.index_nprobe
            )
        else:
            self.index.add(descriptors, ids)
            if self.index.kind == "flat" and choose_kind(self.index.ntotal, self.config.index_exact_max) != "flat":
                self.reindex()
        return ids

    def remove_landmarks(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64)
        ids = ids[(ids >= 0) & (ids < len(self.landmarks))]
        ids = ids[self.landmarks.anchor[ids] != REMOVED]
        self.landmarks.remove(ids)
        if self.index is not None:
            self.index.remove(ids)

    def reindex(self, kind: str | None = None, *, descriptors: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Rebuild the index (kind chosen by size unless given), e.g. after the map grew.

        Args:
            descriptors: (N, D) float descriptors and (N,) ids of every indexed landmark, to build
                from instead of the index's own (decoded codes, when it is product-quantised).
        """
        if self.index is None:
            return
        descriptors, ids = descriptors if descriptors is not None else self.index.reconstruct_all()
        kind = kind or choose_kind(len(ids), self.config.index_exact_max)
        self.index = LandmarkIndex.build(
            descriptors, ids, kind=kind, nlist=self.config.index_nlist, nprobe=self.config.index_nprobe  # type: ignore[arg-type]
        )

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held by the index, the landmark table and the keyframe table."""
        index = self.index.memory_bytes() if self.index is not None else 0
        kfs = sum(a.nbytes for a in self.keyframes.arrays().values())
        return {"index": index, "landmarks": self.landmarks.nbytes(), "keyframes": kfs, "total": index + self.landmarks.nbytes() + kfs}

    def summary(self) -> dict[str, Any]:
        mem = self.memory_bytes()
        n = max(self.num_landmarks, 1)
        return {
            "model_hash": self.model_hash,
            "model": self.model_info,
            "keyframes": len(self.keyframes),
            "landmarks": self.num_landmarks,
            "observations": self.landmarks.num_observations,
            "index": {"kind": self.index.kind if self.index else None, "ntotal": self.index.ntotal if self.index else 0},
            "memory_bytes": mem,
            "bytes_per_landmark": (mem["index"] + mem["landmarks"]) / n,
            "sources": self.sources,
        }

    def save(self, directory: str | Path) -> Path:
        """Write the map atomically to ``directory`` (see ``store.save_map``)."""
        from locus_core.mapping.store import save_map

        return save_map(self, Path(directory))

    @classmethod
    def load(cls, directory: str | Path, *, expected_model_hash: str | None = None) -> LandmarkMap:
        """Read a map, verifying format version, checksums and (if given) the model hash."""
        from locus_core.mapping.store import load_map

        return load_map(Path(directory), expected_model_hash=expected_model_hash)

    @classmethod
    def merge(cls, a: LandmarkMap, b: LandmarkMap) -> LandmarkMap:
        """One map holding both sessions (same model, same map frame): keyframes and landmarks of ``b``
        appended after ``a``'s, descriptors re-indexed (index kind chosen by the combined size)."""
        if a.model_hash != b.model_hash:
            raise MapError(f"cannot merge maps of different models ({a.model_hash} vs {b.model_hash})")
        if a.dim != b.dim:
            raise MapError(f"cannot merge maps of different descriptor dimensions ({a.dim} vs {b.dim})")
        if a.config.scale != b.config.scale:
            raise MapError(f"cannot merge maps of different feature scales ({a.config.scale} vs {b.config.scale})")
        # the same data set and selection in both (a map merged with itself, or with a merge that
        # holds it): its keyframes and landmarks would be stored twice, every match split between them
        shared = [s for s in b.sources if s.get("path") and s in a.sources]
        if shared:
            raise MapError(
                f"cannot merge maps that both hold frames {shared[0].get('frames')} of {shared[0]['path']} "
                "(the same map twice?)"
            )
        keyframes = Keyframes(**{k: v.copy() for k, v in a.keyframes.arrays().items()})
        landmarks = LandmarkTable.from_arrays({k: v.copy() for k, v in a.landmarks.arrays().items()})
        shift = len(landmarks)
        landmarks.extend(b.landmarks, keyframe_offset=len(keyframes))
        keyframes.extend(b.keyframes)
        descriptors, ids = [np.zeros((0, a.dim), np.float32)], [np.zeros(0, np.int64)]
        for source, id_shift in ((a, 0), (b, shift)):
            if source.index is not None:
                d, i = source.index.reconstruct_all()
                descriptors.append(d)
                ids.append(i + id_shift)
        merged = cls(
            model_hash=a.model_hash, dim=a.dim, config=a.config, model_info=a.model_info,
            keyframes=keyframes, landmarks=landmarks, sources=a.sources + b.sources,
        )
        all_ids = np.concatenate(ids)
        if len(all_ids):
            merged.index = LandmarkIndex.build(
                np.concatenate(descriptors), all_ids, kind=choose_kind(len(all_ids), a.config.index_exact_max),
                nlist=a.config.index_nlist, nprobe=a.config.index_nprobe,
            )
        return merged

    def with_config(self, config: MapConfig) -> LandmarkMap:
        """This map under another config: the keyframe and landmark tables are shared (treat both maps
        as read-only), the index is a copy (its search settings follow ``config``)."""
        index = self.index
        if index is not None:
            index = LandmarkIndex.from_bytes(index.to_bytes(), nprobe=config.index_nprobe)
        return replace(self, config=config, index=index)
