"""Localizing a frame against a landmark map: place recognition, then a verified metric pose.

frame → features → k-NN landmarks → keyframe voting → per-keyframe geometric verification (3D–3D
RANSAC when the query has depth, PnP RANSAC otherwise) → refinement on the inliers of all matches →
decision → with depth, geometric refinement of the pose on the nearby landmarks
(``locus_core.mapping.projective``). The decision is deliberately strict: a wrong pose is worse than
none for a robot. ``Localizer.track`` takes the last step alone, from a known previous pose: what
``locus_core.mapping.tracking.Tracker`` does between full localizations of a stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from locus_core.data.frame import PosedFrame
# imported here, not when first needed: it brings scipy (0.25 s), which a worker process paid on its
# first frame
from locus_core.evaluation.pose import pose_error
from locus_core.mapping.build import MapBuilder, _flatten, depth_patch_geometry, patch_geometry
from locus_core.mapping.config import LocalizerConfig
from locus_core.mapping.errors import MapError
from locus_core.mapping.landmark_map import LandmarkMap
from locus_core.mapping.projective import projective_refine
from locus_core.mapping.ransac import (
    RigidFit,
    kabsch,
    pnp_ransac,
    pose_covariance,
    ransac_rigid,
    refine_pnp,
    reprojection,
)


@dataclass(frozen=True)
class PlaceMatch:
    """A verified candidate place: a keyframe, its vote score, inliers and the poses it implies."""

    keyframe_id: int
    score: float
    inliers: int
    T_keyframe_query: np.ndarray | None
    T_map_keyframe: np.ndarray


@dataclass(frozen=True)
class Localization:
    """Result of ``Localizer.localize``.

    T_map_cam: camera-to-map pose (4,4) when localized. covariance: 6x6 over (x, y, z, rot_x, rot_y,
    rot_z) (see ``ransac``). matches: verified places, best first. inliers: inliers of the final fit.
    latency_ms: end to end; latency_breakdown: ms per stage (features, search, verify, refine).
    method: "3d-3d" or "pnp" (how the pose was verified), "tracked" (``Localizer.track``). reason: why not localized ("" when localized).
    """

    localized: bool
    T_map_cam: np.ndarray | None
    covariance: np.ndarray | None
    matches: list[PlaceMatch]
    inliers: int
    latency_ms: float
    reason: str = ""
    method: str = ""
    latency_breakdown: dict[str, float] = field(default_factory=dict)


class Localizer:
    """Localizes frames against ``landmark_map`` with ``model`` (the model the map was built with)."""

    def __init__(self, landmark_map: LandmarkMap, model: Any, config: LocalizerConfig | None = None) -> None:
        if model.hash != landmark_map.model_hash:
            raise MapError(
                f"map was built with model {landmark_map.model_hash}, but the model in use is {model.hash}; "
                "rebuild the map with this model"
            )
        self.map = landmark_map
        self.model = model
        self.config = config or LocalizerConfig()
        self._builder: MapBuilder | None = None

    def localize(self, frame: PosedFrame) -> Localization:
        """Pose of ``frame`` in the map frame, or "not localized" with the reason. Never raises for
        image content (blank, black, no depth, no matches); ``frame.T_world_cam`` is ignored."""
        from locus_core.models.extract import extract_features, model_input

        cfg = self.config
        start = time.perf_counter()
        times: dict[str, float] = {}

        def done(reason: str, **kw: Any) -> Localization:
            total = (time.perf_counter() - start) * 1e3
            kw.setdefault("matches", [])
            kw.setdefault("inliers", 0)
            return Localization(
                localized=not reason, T_map_cam=kw.pop("T", None), covariance=kw.pop("cov", None),
                latency_ms=total, reason=reason, latency_breakdown=times, **kw,
            )

        t = time.perf_counter()
        # Judged at the model's input size, as everything below: a frame shrunk to it before it
        # got here (a bag replay's worker processes) is localized exactly as the original.
        resized = model_input(self.model, frame)
        spread = float(np.asarray(resized.rgb[::2, ::2], np.float32).std())
        if spread < cfg.blank_std:
            return done(f"blank frame (intensity std {spread:.2f} < {cfg.blank_std})")
        if self.map.index is None or self.map.index.ntotal == 0:
            return done("map has no landmarks")
        features, _ = extract_features(self.model, resized, self.map.config.scale)
        F = _flatten(features)
        geometry = patch_geometry(resized, self.model.stride, self.map.config)
        use_depth = int(geometry.valid.sum()) >= cfg.min_inliers
        query = np.flatnonzero(geometry.valid) if use_depth else np.arange(len(F))
        need = cfg.min_inliers if use_depth else cfg.min_inliers_pnp
        times["features"] = (time.perf_counter() - t) * 1e3

        t = time.perf_counter()
        sims, ids = self.map.search(F[query], cfg.knn)
        times["search"] = (time.perf_counter() - t) * 1e3

        t = time.perf_counter()
        good = (ids >= 0) & (sims >= cfg.min_similarity)
        q_rows = np.repeat(np.arange(len(query)), cfg.knn)[good.ravel()]
        q = query[q_rows]
        lm = ids.ravel()[good.ravel()]
        sim = sims.ravel()[good.ravel()]
        # the pose's inliers are distinct query patches among these matches, so fewer matches than
        # the path's own threshold (min_inliers_pnp without depth, which may be below min_inliers)
        # cannot give a pose
        if len(lm) < need:
            times["verify"] = (time.perf_counter() - t) * 1e3
            return done(f"too few feature matches ({len(lm)} < {need})")
        landmark_pos = self.map.positions(lm)
        votes, pair_match, pair_kf = self._vote(q, lm, sim)
        candidates = np.argsort(-votes, kind="stable")[: cfg.top_keyframes]
        candidates = candidates[votes[candidates] > 0]
        fits: list[tuple[int, RigidFit, int]] = []
        for kf in candidates:
            m = pair_match[pair_kf == kf]
            fit = self._verify(geometry, resized.K, q[m], landmark_pos[m], use_depth)
            if fit is not None:
                fits.append((int(kf), fit, int(np.unique(q[m][fit.inliers]).size)))
        method = "3d-3d" if use_depth else "pnp"
        if not fits:
            times["verify"] = (time.perf_counter() - t) * 1e3
            return done("no candidate place passed geometric verification", method=method)
        # Each place's pose is refit on the matches to the whole map and the place most matches agree
        # with wins: a true place gains the consistent matches of its neighbouring keyframes, a
        # look-alike place does not. That count is what the decision uses.
        refine = self._refiner(geometry, resized.K, q, landmark_pos, use_depth)
        refined = sorted(((kf, n, *refine(fit.T)) for kf, fit, n in fits), key=lambda r: (-r[3], -r[1]))
        T_map_kf = self.map.keyframes.T_map_kf
        matches = [PlaceMatch(kf, float(votes[kf]), n, np.linalg.inv(T_map_kf[kf]) @ T_, T_map_kf[kf]) for kf, n, T_, _, _ in refined]
        kf, n, T, inliers, covariance = refined[0]
        candidate_count = int(np.unique(q[pair_match[pair_kf == kf]]).size)
        times["verify"] = (time.perf_counter() - t) * 1e3
        result = dict(matches=matches, inliers=inliers, method=method, T=T)
        if inliers < need:
            return done(f"too few inliers ({inliers} < {need})", **{**result, "T": None, "cov": None})
        if n < cfg.min_inlier_ratio * candidate_count:
            return done(f"inlier ratio {n / candidate_count:.2f} < {cfg.min_inlier_ratio}", **{**result, "T": None, "cov": None})
        for other_kf, _, other_T, other_inliers, _ in refined[1:]:
            if other_inliers < cfg.ambiguity_ratio * inliers:
                break
            dt, dr = pose_error(other_T, T)
            if dt > cfg.consistency_translation_m or dr > cfg.consistency_rotation_deg:
                return done(
                    f"ambiguous: keyframes {kf} ({inliers} inliers) and {other_kf} ({other_inliers}) disagree by {dt:.2f} m, {dr:.1f} deg",
                    **{**result, "T": None, "cov": None},
                )
        cov = covariance()
        if reason := self._uncertainty(cov):
            return done(reason, **{**result, "T": None, "cov": None})
        cov = cov + self._covariance_floor()
        if use_depth and cfg.projective_rounds:
            t = time.perf_counter()
            T = result["T"] = self._refine_projective(T, geometry, resized.K, features.shape[-2:])
            best = matches[0]
            matches[0] = replace(best, T_keyframe_query=np.linalg.inv(best.T_map_keyframe) @ T)
            times["refine"] = (time.perf_counter() - t) * 1e3
        return done("", **result, cov=cov)

    def track(self, frame: PosedFrame, T_prior: np.ndarray) -> Localization:
        """Pose of ``frame`` from a prior pose alone: projective association with the landmarks around
        ``T_prior`` (the frame's previous pose in a stream), without features or place recognition.

        Localized when the fit's landmark pairs hold ``min_inliers`` distinct query patches (inliers
        as ``localize`` counts them: neighbouring keyframes' landmarks share patches), stays within
        the consistency tolerance of the prior, and its covariance is determined within
        ``max_position_std_m`` (a wall alone pins only three of six degrees of freedom); the
        covariance gets the floors as in ``localize``. Never raises for image content; ``frame.T_world_cam`` is ignored.
        """
        from locus_core.data.resize import resize_depth

        cfg = self.config
        start = time.perf_counter()

        def done(reason: str, T: np.ndarray | None = None, cov: np.ndarray | None = None, inliers: int = 0) -> Localization:
            latency = (time.perf_counter() - start) * 1e3
            return Localization(not reason, T, cov, [], inliers, latency, reason, "tracked", {"track": latency})

        if frame.depth is None:
            return done("tracking needs depth")
        size, stride = self.model.input_size, self.model.stride
        depth, K = resize_depth(frame, size)  # geometry alone: the colour is not needed
        geometry = depth_patch_geometry(size, depth, K, None, stride, self.map.config)
        grid = (size[0] // stride, size[1] // stride)
        positions = self.map.positions(self.map.landmarks_near(T_prior, cfg.projective_radius_m, cfg.projective_max_angle_deg))
        fit = projective_refine(
            T_prior, positions, geometry.points_cam, K, grid, stride, cfg.ransac_threshold_m,
            cfg.ransac_threshold_relative, rounds=cfg.track_rounds, max_landmarks=cfg.projective_max_landmarks,
            # steps under a millimetre are far below the depth noise: stopping there saves a third of the
            # rounds (redkitchen: 6.2 instead of 9.3 a frame, the same errors)
            min_inliers=cfg.min_inliers, tolerance_m=1e-3,
        )
        inliers = 0 if fit is None else int(np.unique(fit.patches).size)
        if fit is None or inliers < cfg.min_inliers:
            return done(f"too few inliers around the previous pose ({inliers} < {cfg.min_inliers})")
        # Projective association cannot see the camera slide along a surface (a landmark on it pairs
        # with the patch it projects onto wherever that is): surfaces facing few ways leave such a
        # direction to drift, so the normals must spread over every direction.
        spread = float(np.linalg.eigvalsh(fit.normals.T @ fit.normals / len(fit.normals))[0])
        if spread < cfg.track_min_normal_spread:
            return done(f"surfaces in view leave a direction free (normal spread {spread:.3f} < {cfg.track_min_normal_spread})")
        dt, dr = pose_error(fit.T, T_prior)
        if dt > cfg.consistency_translation_m or dr > cfg.consistency_rotation_deg:
            return done(f"moved {dt:.2f} m, {dr:.1f} deg from the previous pose")
        src, dst, normals = geometry.points_cam[fit.patches], positions[fit.landmarks], fit.normals
        cov = pose_covariance(
            lambda T_: np.einsum("ij,ij->i", src @ T_[:3, :3].T + T_[:3, 3] - dst, normals @ T_[:3, :3].T), fit.T
        )
        if reason := self._uncertainty(cov):
            return done(reason)
        return done("", fit.T, cov + self._covariance_floor(), inliers)

    def insert_keyframe(self, frame: PosedFrame) -> bool:
        """Mapping mode: add ``frame`` (depth, and ``T_world_cam`` = its pose in the map frame) as a
        keyframe when it shows a new viewpoint; returns whether it was added."""
        from locus_core.models.extract import extract_features, model_input

        if self._builder is None:
            self._builder = MapBuilder(self.map, self.model.stride)
        scale = self.map.config.scale
        return self._builder.offer(model_input(self.model, frame), lambda f: extract_features(self.model, f, scale)[0])

    def finish_mapping(self) -> None:
        """Mapping mode, before saving: the index rebuilt for the map's size (its inverted file was
        trained when the map first outgrew exact search) from the float descriptors of the landmarks
        inserted, where this session made the whole map (``MapBuilder.reindex``)."""
        if self._builder is not None:
            self._builder.reindex()

    def _vote(self, q: np.ndarray, lm: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keyframe votes: each query patch votes once for each keyframe observing one of its matched
        landmarks, weighted by exp((sim - best sim of that patch) / vote_temperature) for its best
        match in that keyframe. Relative weights keep a keyframe full of generic texture, which
        collects many mediocre matches, from outvoting the one that holds the patch's clear best
        match. Returns votes (K,), and (match index, keyframe) pairs."""
        n_kf = len(self.map.keyframes)
        rows, kfs = self.map.landmarks.keyframes_of(lm)
        order = np.argsort(-sim[rows], kind="stable")
        key = q[rows[order]] * n_kf + kfs[order]
        _, first = np.unique(key, return_index=True)
        best = order[first]
        top = np.full(int(q.max()) + 1, -np.inf)
        np.maximum.at(top, q, sim)
        m = rows[best]
        weights = np.exp((sim[m] - top[q[m]]) / self.config.vote_temperature)
        votes = np.bincount(kfs[best], weights=weights, minlength=n_kf)
        return votes, rows, kfs

    def _verify(self, geometry: Any, K: np.ndarray, q: np.ndarray, landmark_pos: np.ndarray, use_depth: bool) -> RigidFit | None:
        cfg = self.config
        if use_depth:
            pts = geometry.points_cam[q]
            thr = np.maximum(cfg.ransac_threshold_m, cfg.ransac_threshold_relative * pts[:, 2])
            return ransac_rigid(pts, landmark_pos, thr, iterations=cfg.ransac_iterations, seed=cfg.seed, min_inliers=3)
        return pnp_ransac(landmark_pos, geometry.uv[q], K, cfg.pnp_threshold_px, iterations=cfg.ransac_iterations,
                          seed=cfg.seed, solver=cfg.pnp_solver)

    def _uncertainty(self, cov: np.ndarray | None) -> str:
        """Why a fit's own covariance (6, 6), or None, rules its pose out; "" when it does not."""
        # a negative variance: round-off of a fit near the conditioning limit, no covariance at all
        if cov is None or not np.all(np.isfinite(cov)) or np.any(np.diag(cov) < 0):
            return "pose covariance is undetermined"
        std = float(np.sqrt(np.max(np.diag(cov)[:3])))
        if std > self.config.max_position_std_m:
            return f"uncertain pose (position std {std:.3f} m > {self.config.max_position_std_m})"
        return ""

    def _covariance_floor(self) -> np.ndarray:
        """(6, 6) added to every reported covariance (see LocalizerConfig: fits alone are ~10x too confident)."""
        cfg = self.config
        return np.diag(np.repeat([cfg.pose_std_floor_m, np.radians(cfg.pose_std_floor_deg)], 3) ** 2)

    def _refine_projective(self, T: np.ndarray, geometry: Any, K: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        """``T`` refined on the nearby landmarks by projective association, or ``T`` itself when that
        fails or strays beyond the consistency tolerance (it only polishes a verified pose). The
        covariance stays the descriptor fit's: neighbouring patches share depth errors, so the
        thousands of projective pairs are not independent measurements."""
        cfg = self.config
        ids = self.map.landmarks_near(T, cfg.projective_radius_m, cfg.projective_max_angle_deg)
        fit = projective_refine(
            T, self.map.positions(ids), geometry.points_cam, K, (int(grid[0]), int(grid[1])), self.model.stride,
            cfg.ransac_threshold_m, cfg.ransac_threshold_relative, rounds=cfg.projective_rounds,
            max_landmarks=cfg.projective_max_landmarks, min_inliers=cfg.min_inliers,
        )
        if fit is None:
            return T
        dt, dr = pose_error(fit.T, T)
        return fit.T if dt <= cfg.consistency_translation_m and dr <= cfg.consistency_rotation_deg else T

    def _refiner(
        self, geometry: Any, K: np.ndarray, q: np.ndarray, landmark_pos: np.ndarray, use_depth: bool
    ) -> Callable[[np.ndarray], tuple[np.ndarray, int, Callable[[], np.ndarray | None]]]:
        """A function: a place's pose (4,4) → pose refit on the inliers among all matches (not just
        that keyframe's), inlier count (distinct query patches), and a function computing its
        covariance (only the winner's is needed)."""
        cfg = self.config
        if not use_depth:
            uv = geometry.uv[q]

            def pnp(T: np.ndarray) -> tuple[np.ndarray, int, Callable[[], np.ndarray | None]]:
                inliers = np.zeros(len(q), bool)
                for _ in range(5):
                    residual, front = reprojection(T, landmark_pos, uv, K)
                    new = (np.linalg.norm(residual, axis=1) < cfg.pnp_threshold_px) & front
                    if new.sum() < 6 or np.array_equal(new, inliers):
                        break
                    inliers = new
                    T = refine_pnp(landmark_pos[inliers], uv[inliers], K, T)
                if inliers.sum() < 6:
                    return T, 0, lambda: None
                obj, img = landmark_pos[inliers], uv[inliers]
                count = int(np.unique(q[inliers]).size)
                return T, count, lambda: pose_covariance(lambda T_: reprojection(T_, obj, img, K)[0].ravel(), T)

            return pnp
        pts = geometry.points_cam[q]
        thr = np.maximum(cfg.ransac_threshold_m, cfg.ransac_threshold_relative * pts[:, 2])

        def rigid(T: np.ndarray) -> tuple[np.ndarray, int, Callable[[], np.ndarray | None]]:
            inliers = np.zeros(len(q), bool)
            for _ in range(5):
                new = np.linalg.norm(pts @ T[:3, :3].T + T[:3, 3] - landmark_pos, axis=1) < thr
                if new.sum() < 3 or np.array_equal(new, inliers):
                    break
                inliers = new
                T = kabsch(pts[inliers], landmark_pos[inliers])
            if inliers.sum() < 3:
                return T, 0, lambda: None
            src, dst = pts[inliers], landmark_pos[inliers]
            count = int(np.unique(q[inliers]).size)
            return T, count, lambda: pose_covariance(lambda T_: (src @ T_[:3, :3].T + T_[:3, 3] - dst).ravel(), T)

        return rigid
