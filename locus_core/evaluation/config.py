"""``EvalConfig``: every knob of ``locus eval`` (YAML + ``--set`` overridable, saved beside the report)."""

from __future__ import annotations

from dataclasses import dataclass

from locus_core.evaluation.errors import EvaluationError

TASKS = ("retrieval", "place", "pose", "segmentation", "consistency")


@dataclass(frozen=True)
class EvalConfig:
    """What ``locus eval`` runs and with which parameters.

    Attributes:
        tasks: tasks to run; empty = every task the data supports (others are listed as skipped).
        frames: evaluated selection ("START:STOP[:STEP]" on source indices), None = all frames.
        train_frames: place-recognition database / labelled frames for segmentation; None = no place
            task, and segmentation labels every other evaluated frame.
        rho, kappa: retrieval positive / candidate radii (m).
        retrieval_queries: query patches sampled (seeded, the same for every model).
        place_min_covisibility: a database frame is a hit when this share of the query is visible in
            it, in (0, 1].
        place_query_step, place_database_step: use every n-th patch (row-major) of query / database frames.
        pose_bins: co-visibility bin edges of the pose pairs (min of both directions), strictly
            increasing, in [0, 1].
        pose_pairs_per_bin: random pairs per bin (seeded), at least 1.
        rigid_threshold_m, pnp_threshold_px: RANSAC inlier thresholds (3D–3D, 2D–3D).
        two_stage: every dense model (ours and the raw backbone) fits 3D–3D pose in two stages:
            mutual nearest neighbours of its coarse scale (scale 0 when coarser than the pose scale,
            else the pose scale) → RANSAC at ``coarse_threshold_m`` → a first pose; then each patch
            with its ``guided_top_k`` most similar patches of the pose scale among those the first
            pose brings within ``guided_radius_m`` → RANSAC at ``rigid_threshold_m``. false: mutual
            nearest neighbours of the pose scale → RANSAC, one stage.
        max_depth_spread: dense relative pose leaves out patches that straddle a depth edge, as maps
            do (``locus_core.geometry.depth_edge_patches``); inf keeps them.
        success_trans_m, success_rot_deg: a pose is a success within both (error <= each).
        lighterglue_keypoints: XFeat keypoints per image for the LighterGlue baseline.
        knn: neighbours of the k-NN label transfer.
        probe_epochs, probe_lr: the segmentation linear probe's full-batch Adam steps and learning
            rate (the paper's: 1000, 0.01).
        seed: sampling seed of queries and pairs.
    """

    tasks: tuple[str, ...] = ()
    frames: str | None = None
    train_frames: str | None = None
    rho: float = 0.2
    kappa: float = 10.0
    retrieval_queries: int = 300
    place_min_covisibility: float = 0.3
    place_query_step: int = 4
    place_database_step: int = 2
    pose_bins: tuple[float, ...] = (0.1, 0.4, 0.7, 1.0)
    pose_pairs_per_bin: int = 40
    rigid_threshold_m: float = 0.05
    pnp_threshold_px: float = 8.0
    two_stage: bool = True
    coarse_threshold_m: float = 0.1
    guided_radius_m: float = 0.3
    guided_top_k: int = 5
    max_depth_spread: float = 0.05
    success_trans_m: float = 0.1
    success_rot_deg: float = 5.0
    lighterglue_keypoints: int = 1024
    knn: int = 5
    probe_epochs: int = 1000
    probe_lr: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise EvaluationError(f"tasks: unknown {', '.join(unknown)}; choose from {', '.join(TASKS)}")
        if not self.max_depth_spread > 0:
            raise EvaluationError(f"max_depth_spread must be > 0 (.inf keeps depth-edge patches), got {self.max_depth_spread}")
        if not 0 <= self.seed < 2**31:  # numpy's generators refuse a negative seed, OpenCV's (PnP) one past a C int
            raise EvaluationError(f"seed: must be in [0, 2**31), got {self.seed}")
        for name in ("rigid_threshold_m", "coarse_threshold_m", "guided_radius_m", "pnp_threshold_px",
                     "success_trans_m", "success_rot_deg", "probe_lr"):
            if not getattr(self, name) > 0:
                raise EvaluationError(f"{name}: must be > 0, got {getattr(self, name)}")
        if not 0 < self.rho < self.kappa:
            raise EvaluationError(f"rho ({self.rho}) must be positive and below kappa ({self.kappa})")
        if not 0 < self.place_min_covisibility <= 1:
            raise EvaluationError(f"place_min_covisibility: must be in (0, 1], got {self.place_min_covisibility}")
        bins = list(self.pose_bins)
        if len(bins) < 2 or any(lo >= hi for lo, hi in zip(bins, bins[1:])) or not 0 <= bins[0] <= bins[-1] <= 1:
            raise EvaluationError(f"pose_bins: need at least two strictly increasing edges in [0, 1], "
                                  f"got {self.pose_bins}")
        for name in ("retrieval_queries", "place_query_step", "place_database_step", "pose_pairs_per_bin", "knn",
                     "lighterglue_keypoints", "guided_top_k", "probe_epochs"):
            if getattr(self, name) < 1:
                raise EvaluationError(f"{name}: must be at least 1, got {getattr(self, name)}")
