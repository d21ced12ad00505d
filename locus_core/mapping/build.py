"""Building a map: keyframe selection, landmark selection by distinctiveness, merging of repeated
observations. ``MapBuilder`` is incremental, so the same code serves offline ``build_map`` and the
localizer's mapping mode (``Localizer.insert_keyframe``)."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from locus_core.data.frame import PosedFrame
from locus_core.mapping.config import MapConfig
from locus_core.mapping.errors import MapError
from locus_core.mapping.keyframes import is_new_viewpoint
from locus_core.mapping.landmark_map import LandmarkMap
from locus_core.mapping.landmarks import REMOVED, distinctiveness, match_for_merge

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatchGeometry:
    """The patches of one resized frame: pixel centres (n, 2), camera-frame points (n, 3) (NaN where
    the patch has no valid depth in range) and map-frame points (n, 3) (NaN likewise, or all NaN
    when the frame has no pose)."""

    uv: np.ndarray
    points_cam: np.ndarray
    points_map: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.points_cam).all(1)


def patch_geometry(frame: PosedFrame, stride: int, config: MapConfig | None = None) -> PatchGeometry:
    """Lift the stride-``stride`` patch centres of ``frame`` (already at the model input size): as
    ``depth_patch_geometry`` of its size, depth, K and pose."""
    return depth_patch_geometry((frame.height, frame.width), frame.depth, frame.K, frame.T_world_cam, stride, config)


def depth_patch_geometry(
    size: tuple[int, int],
    depth: np.ndarray | None,
    K: np.ndarray,
    T_world_cam: np.ndarray | None,
    stride: int,
    config: MapConfig | None = None,
) -> PatchGeometry:
    """Lift the stride-``stride`` patch centres of an image of ``size`` (H, W) with ``depth`` (H, W)
    metres (None: no points), intrinsics ``K`` and camera-to-world pose ``T_world_cam`` (None: no
    map-frame points).

    With ``config``, patches outside its depth range (``min_depth_m``, ``max_depth_m``) and patches
    that straddle a depth edge (``locus_core.geometry.depth_edge_patches``, tolerance
    ``max_depth_spread``) get no point; without, every patch with valid depth gets one."""
    from locus_core.geometry import depth_edge_patches, patch_centers, patch_depths, transform_points, unproject

    centers = patch_centers(int(size[0]), int(size[1]), stride, dtype=torch.float64)
    uv = centers.numpy()
    if depth is None:
        nan = np.full((len(uv), 3), np.nan)
        return PatchGeometry(uv, nan, nan)
    # Float32 depth (as loaders give it) is not copied to float64: a patch's depth is one of its
    # measured values, exact in float64, so the points are those of a float64 image, at half the
    # bytes masked and sorted. Other dtypes go to float64 as they always did.
    dtype = np.float32 if np.asarray(depth).dtype == np.float32 else np.float64
    d = torch.from_numpy(np.require(depth, dtype, "W"))[None]  # writeable: torch warns on read-only arrays
    z = patch_depths(d, stride)[0].double()
    cam = unproject(centers, z, torch.from_numpy(np.asarray(K, np.float64)))
    if config is not None:
        keep = (z >= config.min_depth_m) & (z <= config.max_depth_m)
        if np.isfinite(config.max_depth_spread):
            keep &= ~depth_edge_patches(d, z[None], stride, config.max_depth_spread)[0]
        cam[~keep] = float("nan")
    if T_world_cam is None:
        world = torch.full_like(cam, float("nan"))
    else:
        world = transform_points(torch.from_numpy(np.asarray(T_world_cam, np.float64))[None], cam[None])[0]
    return PatchGeometry(uv, cam.numpy(), world.numpy())


@dataclass
class _Recent:
    """A recent keyframe: its valid patches and landmarks, for distinctiveness, merging, co-visibility."""

    keyframe: int
    features: np.ndarray
    points: np.ndarray
    frame: PosedFrame
    landmark_ids: np.ndarray
    landmark_features: np.ndarray


class MapBuilder:
    """Adds posed RGB-D frames (at the model input size, with their features) to a map."""

    def __init__(self, landmark_map: LandmarkMap, stride: int) -> None:
        self.map = landmark_map
        self.stride = stride
        self.config: MapConfig = landmark_map.config
        self.recent: deque[_Recent] = deque(maxlen=max(1, self.config.neighbour_keyframes))
        # Keyframes the map had before this builder (mapping goes on in a map loaded from disk): it
        # holds none of their frames, but a revisit of their places must find them, as it would
        # find its own recent keyframes, or it maps those places a second time.
        self._previous = len(landmark_map.keyframes)
        # the float descriptors of the landmarks added here: the index keeps only codes once it is
        # product-quantised, and rebuilding it from decoded codes would quantise them twice
        self._added: list[tuple[np.ndarray, np.ndarray]] = []

    def wants(self, frame: PosedFrame, geometry: PatchGeometry | None = None) -> bool:
        """Whether ``frame`` (resized, posed, with depth) would become a keyframe."""
        if frame.T_world_cam is None or frame.depth is None:
            return False
        cfg = self.config
        geometry = geometry or patch_geometry(frame, self.stride, cfg)
        if not geometry.valid.any():
            # no depth in range (sensor dropout, a wall too close), at a new viewpoint or not: such a
            # frame adds no landmark, and each would push a useful keyframe out of ``recent``
            return False
        if is_new_viewpoint(self.map.keyframes, frame.T_world_cam, cfg.keyframe_translation_m, cfg.keyframe_rotation_deg):
            return True
        if cfg.keyframe_min_covisibility <= 0:
            return False
        nearest = self._nearest_recent(frame.T_world_cam)
        # None: a keyframe of the map before this builder is nearer, its place mapped already (and
        # without its depth a changed scene cannot be told), or nothing was mapped yet
        return nearest is not None and covisibility(geometry.points_map, nearest.frame) < cfg.keyframe_min_covisibility

    def _nearest_recent(self, T_world_cam: np.ndarray) -> _Recent | None:
        """The recent keyframe nearest the camera, unless a keyframe from before this builder is nearer."""
        candidates = np.concatenate([np.arange(self._previous), [r.keyframe for r in self.recent]]).astype(np.int64)
        if len(candidates) == 0:
            return None
        distance = np.linalg.norm(self.map.keyframes.centres[candidates] - T_world_cam[:3, 3], axis=1)
        nearest = candidates[int(np.argmin(distance))]
        return next((r for r in self.recent if r.keyframe == nearest), None)

    def _previous_landmarks(self, T_map_kf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ids and (decoded) descriptors of the landmarks anchored at the ``neighbour_keyframes``
        keyframes from before this builder nearest ``T_map_kf``: merged into as its recent ones'."""
        if self._previous == 0 or self.map.index is None:
            return np.zeros(0, np.int64), np.zeros((0, self.map.dim), np.float32)
        distance = np.linalg.norm(self.map.keyframes.centres[: self._previous] - T_map_kf[:3, 3], axis=1)
        ids = self.map.landmarks.anchored_at(np.argsort(distance, kind="stable")[: self.config.neighbour_keyframes])
        return ids, self.map.index.reconstruct(ids)

    def offer(self, frame: PosedFrame, features_of: Callable[[PosedFrame], torch.Tensor | np.ndarray]) -> bool:
        """Make ``frame`` (posed RGB-D at the model input size) a keyframe if ``wants`` says so, its
        features extracted by ``features_of`` only then; returns whether it did. The frame's patch
        geometry and the decision are computed once (``wants`` then ``add`` did both twice)."""
        if frame.T_world_cam is None or frame.depth is None:
            return False
        geometry = patch_geometry(frame, self.stride, self.config)
        return self.wants(frame, geometry) and self._insert(features_of(frame), frame, geometry)

    def add(self, features: torch.Tensor | np.ndarray, frame: PosedFrame) -> bool:
        """Make ``frame`` a keyframe if ``wants`` says so; returns whether it did.

        Args:
            features: (D, h, w) unit features of ``frame`` (the resized frame ``extract_features`` returns).
            frame: posed RGB-D frame at the model input size.
        """
        if frame.T_world_cam is None or frame.depth is None:
            raise MapError(f"frame {frame.frame_id}: mapping needs depth and a pose in the map frame")
        return self.offer(frame, lambda _: features)

    def _insert(self, features: torch.Tensor | np.ndarray, frame: PosedFrame, geometry: PatchGeometry) -> bool:
        cfg = self.config
        F = _flatten(features)
        if len(F) != len(geometry.uv):
            raise MapError(f"frame {frame.frame_id}: {len(F)} features for {len(geometry.uv)} patches (stride {self.stride})")
        valid = geometry.valid
        feats, points, uv = F[valid], geometry.points_map[valid], geometry.uv[valid]
        kf = self.map.keyframes.append(frame.T_world_cam, frame.K, frame.frame_id, frame.index, frame.stamp)
        nb_feats = np.concatenate([np.zeros((0, F.shape[1]), np.float32)] + [r.features for r in self.recent])
        nb_points = np.concatenate([np.zeros((0, 3))] + [r.points for r in self.recent])
        scores = distinctiveness(
            feats, points, nb_feats, nb_points,
            positive_radius=cfg.positive_radius_m, negative_radius=cfg.negative_radius_m,
        )
        order = np.argsort(-scores, kind="stable")[: cfg.landmarks_per_keyframe]
        chosen = order[scores[order] > cfg.min_distinctiveness]
        ids, descs = self._merge_or_add(kf, feats[chosen], points[chosen], uv[chosen])
        self.recent.append(_Recent(kf, feats, points, frame, ids, descs))
        return True

    def _merge_or_add(self, kf: int, feats: np.ndarray, points: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        previous_ids, previous_feats = self._previous_landmarks(self.map.keyframes.T_map_kf[kf])
        # recent ones first: of a landmark in both, np.unique keeps the float descriptor, not the decoded one
        known_ids = np.concatenate([r.landmark_ids for r in self.recent] + [previous_ids])
        known_feats = np.concatenate([r.landmark_features for r in self.recent] + [previous_feats])
        known_ids, first = np.unique(known_ids, return_index=True)
        known_feats = known_feats[first]
        alive = self.map.landmarks.anchor[known_ids] != REMOVED
        known_ids, known_feats = known_ids[alive], known_feats[alive]
        match = match_for_merge(
            feats, points, known_feats, self.map.positions(known_ids),
            radius=cfg.merge_radius_m, min_similarity=cfg.merge_min_similarity,
        )
        merged = match >= 0
        self.map.landmarks.observe(known_ids[match[merged]], points[merged], kf, uv[merged], self.map.keyframes.centres)
        new_ids = self.map.add_landmarks(feats[~merged], points[~merged], kf, uv[~merged]) if (~merged).any() else np.zeros(0, np.int64)
        self._added.append((new_ids, feats[~merged]))
        ids = np.concatenate([known_ids[match[merged]], new_ids])
        descs = np.concatenate([known_feats[match[merged]], feats[~merged]])
        return ids, descs


    def reindex(self) -> bool:
        """Rebuild the map's index for its size from the float descriptors, when every indexed
        landmark was added by this builder; returns whether it did. A map that held landmarks before
        keeps its index: rebuilt from its decoded codes they would be quantised twice."""
        ids = np.concatenate([np.zeros(0, np.int64)] + [i for i, _ in self._added])
        descriptors = np.concatenate([np.zeros((0, self.map.dim), np.float32)] + [d for _, d in self._added])
        alive = self.map.landmarks.anchor[ids] != REMOVED
        if self.map.index is None or int(alive.sum()) != self.map.index.ntotal:
            return False
        self.map.reindex(descriptors=(descriptors[alive], ids[alive]))
        return True


def covisibility(points_map: np.ndarray, view: PosedFrame, tolerance: float = 0.05) -> float:
    """Fraction of the finite ``points_map`` (n, 3) that ``view`` (posed, with depth) sees."""
    from locus_core.geometry import visible

    pts = points_map[np.isfinite(points_map).all(1)]
    if len(pts) == 0:
        return 0.0
    seen = visible(
        torch.from_numpy(pts)[None],
        torch.from_numpy(np.asarray(view.depth, np.float64))[None],
        torch.from_numpy(np.asarray(view.K, np.float64))[None],
        torch.from_numpy(np.asarray(view.T_world_cam, np.float64))[None],
        tolerance,
    )
    return float(seen.double().mean())


def build_map(
    model: Any,
    dataset: Sequence[PosedFrame],
    config: MapConfig | None = None,
    *,
    source: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LandmarkMap:
    """A landmark map of the posed RGB-D frames of ``dataset`` with ``model``'s features.

    Args:
        model: a ``LocusModel`` (``load_model(spec)``).
        dataset: posed RGB-D frames (a ``PosedDataset`` or any sequence), map frame = their world frame.
        source: provenance recorded in the map (defaults to the data set's path/name if it has them).
    """
    from locus_core.models.extract import extract_features, model_input

    if not getattr(dataset, "has_poses", True):
        # known without reading a frame: each would be read and skipped before "no keyframes"
        raise MapError(f"{getattr(dataset, 'path', 'data set')}: has no camera poses; mapping needs a pose per frame")
    landmark_map = LandmarkMap.for_model(model, config)
    config = landmark_map.config
    builder = MapBuilder(landmark_map, model.stride)
    skipped = 0
    for i in range(len(dataset)):
        frame = dataset[i]
        if frame.T_world_cam is None or frame.depth is None:
            skipped += 1
            continue
        builder.offer(model_input(model, frame), lambda f: extract_features(model, f, config.scale)[0])
        if progress:
            progress(i + 1, len(dataset))
    if skipped:
        log.warning("skipped %d frame(s) without depth or pose", skipped)
    if len(landmark_map.keyframes) == 0:
        if skipped < len(dataset):
            # depth in other units than metres, or a depth range that excludes the scene
            raise MapError(
                f"no keyframes: {len(dataset) - skipped} of the {len(dataset)} frames have depth and a pose, but "
                f"no patch with depth between min_depth_m and max_depth_m ({config.min_depth_m} and "
                f"{config.max_depth_m} m); check the depth scale of the data or those options"
            )
        raise MapError(f"no keyframes: none of the {len(dataset)} frames has both depth and a pose")
    builder.reindex()
    landmark_map.sources.append(source if source is not None else _describe(dataset))
    return landmark_map


def _describe(dataset: Any) -> dict[str, Any]:
    from locus_core.data.selection import describe

    indices = list(getattr(dataset, "indices", []))
    return {
        "path": str(Path(getattr(dataset, "path", "")).resolve()) if hasattr(dataset, "path") else "",
        "name": str(getattr(dataset, "name", "")),
        "format": str(getattr(dataset, "format", "")),
        "frames": describe(indices),
        "count": len(dataset),
    }


def _flatten(features: torch.Tensor | np.ndarray) -> np.ndarray:
    """(D, h, w) → (h*w, D) float32, row-major like ``patch_centers``."""
    if isinstance(features, torch.Tensor):
        features = features.detach().float().cpu().numpy()
    if features.ndim != 3:
        raise MapError(f"features must be (D, h, w), got shape {features.shape}")
    return np.ascontiguousarray(features.reshape(features.shape[0], -1).T, dtype=np.float32)
