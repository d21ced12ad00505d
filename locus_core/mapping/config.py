"""Configs of the landmark map (how it is built and indexed) and of the localizer (how it decides)."""

from __future__ import annotations

from dataclasses import dataclass

from locus_core.mapping.ransac import PNP_SOLVERS


@dataclass(frozen=True)
class MapConfig:
    """How a landmark map is built from posed RGB-D frames.

    A frame becomes a keyframe when no existing keyframe is within ``keyframe_translation_m`` and
    ``keyframe_rotation_deg`` of it, or when it sees less than ``keyframe_min_covisibility`` of what
    the nearest recent keyframe sees (something moved in front of the camera). Mapping on in a map
    loaded from disk, a keyframe of that map nearer than any recent one marks the place as mapped
    (its images are not kept: a changed scene cannot be told), and the landmarks of its
    ``neighbour_keyframes`` keyframes nearest a new keyframe are merged into as recent ones are.
    Landmarks are the ``landmarks_per_keyframe`` most distinctive patches of each keyframe: the margin
    between the best similarity to a patch of the same 3D neighbourhood (within
    ``positive_radius_m``, seen by one of the ``neighbour_keyframes`` previous keyframes) and the best
    similarity to any patch farther than ``negative_radius_m`` (the paper's retrieval criterion,
    cheap form). A candidate within ``merge_radius_m`` of a recent landmark and at least
    ``merge_min_similarity`` similar to it becomes a new observation of that landmark.
    Patches straddling a depth edge (more than a tenth of their depths farther than
    ``max_depth_spread`` times the patch depth from it) get no 3D point, in the map and in queries:
    on redkitchen (the first, global-attention default model) that raised the localized share from
    0.90 to 0.955 and cut the median rotation error from 2.4 to 2.0 degrees (the current default,
    with point-to-plane refinement: 0.985 localized, 2.4 cm off, against 0.945 and 3.2 cm without
    it; raw XFeat: 0.995 and 2.9 cm against 1.0 and 3.8 cm).
    ``scale`` is the model output the map stores; None picks the model's smallest positive radius
    (the most precise matches, which metric pose needs), and the saved config holds the choice.
    """

    scale: int | None = None
    keyframe_translation_m: float = 0.05
    keyframe_rotation_deg: float = 5.0
    keyframe_min_covisibility: float = 0.5
    landmarks_per_keyframe: int = 400
    min_distinctiveness: float = 0.0
    positive_radius_m: float = 0.10
    negative_radius_m: float = 0.30
    neighbour_keyframes: int = 4
    merge_radius_m: float = 0.05
    merge_min_similarity: float = 0.85
    min_depth_m: float = 0.1
    max_depth_m: float = 8.0
    max_depth_spread: float = 0.05
    index_exact_max: int = 4096
    index_nlist: int = 0
    index_nprobe: int = 16

    def __post_init__(self) -> None:
        if self.landmarks_per_keyframe < 1:
            raise ValueError(f"landmarks_per_keyframe must be >= 1, got {self.landmarks_per_keyframe}")
        if not 0 < self.positive_radius_m < self.negative_radius_m:
            raise ValueError(
                f"need 0 < positive_radius_m ({self.positive_radius_m}) < negative_radius_m "
                f"({self.negative_radius_m})"
            )
        if self.index_nprobe < 1:
            raise ValueError(f"index_nprobe must be >= 1, got {self.index_nprobe}")
        if not self.min_depth_m < self.max_depth_m:
            # no patch would get a point: found only after every frame of the build was read
            raise ValueError(f"need min_depth_m ({self.min_depth_m}) < max_depth_m ({self.max_depth_m})")
        if not self.max_depth_spread > 0:
            raise ValueError(f"max_depth_spread must be > 0 (.inf keeps depth-edge patches), got {self.max_depth_spread}")


@dataclass(frozen=True)
class LocalizerConfig:
    """How a query frame is matched against the map and when a pose is trusted.

    A pose is output only when its refit on the matches to the whole map has ``min_inliers`` inliers
    (``min_inliers_pnp`` for a query without depth: 2D reprojection tolerates more wrong matches),
    the best keyframe's verified inliers are ``min_inlier_ratio`` of its candidate matches, and no
    other place with a pose farther than ``consistency_translation_m`` / ``consistency_rotation_deg``
    reaches ``ambiguity_ratio`` of its inlier count (a robot must say "not localized" rather than
    guess). A pose from depth is then refined by ``projective_rounds`` of projective association
    with the landmarks of keyframes within ``projective_radius_m`` and ``projective_max_angle_deg``
    (at most ``projective_max_landmarks`` of those in view; ``locus_core.mapping.projective``;
    0 rounds: the descriptor matches' pose). Without depth, PnP RANSAC fits its samples with
    ``pnp_solver`` (``ransac.pnp_ransac``; AP3P: the frames EPnP localizes, in 85 instead of 128 ms).
    Defaults measured on 7scenes-redkitchen: with raw XFeat true places have >= 132 refit
    inliers (RGB-D) and the unseen realsense-desk <= 47; with the first default model's fine scale
    the desk reached 117 (min_inliers 80 let 12 % of desk frames through, 120 none), with the
    previous one's 92 (80 let 3 of its 50 frames through, 100 none, and 0.985 of the redkitchen test
    frames localized against 0.955 at 120), with the current one's 72 (7-Scenes registered: 0.96
    localized); raise it for a model whose look-alike places reach more;
    without depth, poses off by > 25 cm and the desk stay below 250.
    The covariance reported with a pose (the node's ``~/pose``, for a filter fusing it) is the fit's
    plus ``pose_std_floor_m`` squared on each position axis and ``pose_std_floor_deg`` squared on
    each rotation axis: the fit counts every inlier patch as an independent measurement, but
    neighbouring patches share their depth and calibration errors, so alone it is about ten times
    too confident (redkitchen test frames, the previous model, 7-Scenes unregistered: 3.6 mm predicted against a median error of 3.3 cm, 0.17
    against 1.4 degrees); the floors were this model's measured errors per axis (a median error e over
    three axes is about 1.5 times the per-axis std) with depth before the point-to-plane refinement,
    and stay: since, the errors are 2.4 cm, 0.79 degrees median and 69 % lie within the predicted
    position std, 98.5 % within three (1.5 cm, 0.5 degrees: 56 % and 87 %, too few in the tails for
    a filter). RGB-only poses err about twice as much (4.6 cm with the current model), so raise them
    for a camera without depth. The ``max_position_std_m`` check is on the fit's own.
    A stream of frames (the node, ``locus bag eval``) may be tracked (``locus_core.mapping.tracking``):
    with ``track_period_s`` > 0, a frame with depth at most ``track_max_gap_s`` after a localized
    one, and less than ``track_period_s`` after the last full localization, is posed by
    ``track_rounds`` of projective association from the previous pose (``Localizer.track``; moved
    by odometry where the stream has it),
    in a fifth of the time; when that fails the frame is localized in full. 0: every frame in full.
    A tracked pose must pass the checks of a full one (``min_inliers``, ``max_position_std_m``, the
    consistency tolerance, here from the previous pose) and its surfaces must face enough ways:
    ``track_min_normal_spread`` bounds the smallest eigenvalue of the inlier normals' scatter
    (0: one plane, 1/3: every direction alike). Projective association cannot see a camera slide
    along its surfaces; redkitchen test frames tracked without that check drifted 0.8 m in 0.7 s
    in front of the cabinets (spread 0.02-0.03), at 0.03 the worst error is 10 cm and 15 % of the
    frames are localized in full instead.
    """

    knn: int = 3
    min_similarity: float = 0.5
    vote_temperature: float = 0.05
    top_keyframes: int = 3
    ransac_threshold_m: float = 0.05
    ransac_threshold_relative: float = 0.02
    pnp_threshold_px: float = 8.0
    pnp_solver: str = "ap3p"
    ransac_iterations: int = 500
    min_inliers: int = 100
    min_inliers_pnp: int = 250
    min_inlier_ratio: float = 0.1
    ambiguity_ratio: float = 0.8
    consistency_translation_m: float = 0.25
    consistency_rotation_deg: float = 10.0
    max_position_std_m: float = 0.05
    blank_std: float = 2.0
    projective_rounds: int = 4
    projective_radius_m: float = 3.0
    projective_max_angle_deg: float = 90.0
    projective_max_landmarks: int = 1000
    pose_std_floor_m: float = 0.02
    pose_std_floor_deg: float = 1.0
    track_period_s: float = 0.0
    track_max_gap_s: float = 0.5
    track_rounds: int = 10
    track_min_normal_spread: float = 0.03
    seed: int = 0

    def __post_init__(self) -> None:
        if self.knn < 1 or self.top_keyframes < 1:
            raise ValueError(f"knn ({self.knn}) and top_keyframes ({self.top_keyframes}) must be >= 1")
        if self.projective_rounds < 0 or self.projective_max_landmarks < 3:
            raise ValueError(
                f"need projective_rounds >= 0 and projective_max_landmarks >= 3, got "
                f"{self.projective_rounds} and {self.projective_max_landmarks}"
            )
        if self.projective_radius_m <= 0 or not 0 < self.projective_max_angle_deg <= 180:
            raise ValueError(
                f"need projective_radius_m > 0 and 0 < projective_max_angle_deg <= 180, got "
                f"{self.projective_radius_m} and {self.projective_max_angle_deg}"
            )
        if self.pnp_solver not in PNP_SOLVERS:
            raise ValueError(f"pnp_solver must be one of {', '.join(PNP_SOLVERS)}, got {self.pnp_solver!r}")
        if self.pose_std_floor_m < 0 or self.pose_std_floor_deg < 0:
            raise ValueError(
                f"need pose_std_floor_m >= 0 and pose_std_floor_deg >= 0, got {self.pose_std_floor_m} and "
                f"{self.pose_std_floor_deg}"
            )
        if self.track_period_s < 0 or self.track_max_gap_s <= 0 or self.track_rounds < 1 or not self.track_min_normal_spread >= 0:
            raise ValueError(
                f"need track_period_s >= 0, track_max_gap_s > 0, track_rounds >= 1 and track_min_normal_spread >= 0, "
                f"got {self.track_period_s}, {self.track_max_gap_s}, {self.track_rounds} and {self.track_min_normal_spread}"
            )
        if self.vote_temperature <= 0:
            raise ValueError(f"vote_temperature must be > 0, got {self.vote_temperature}")
        if self.min_inliers < 3 or self.min_inliers_pnp < 6:
            raise ValueError(
                f"need min_inliers >= 3 and min_inliers_pnp >= 6 (a pose needs 3 points, PnP 6), "
                f"got {self.min_inliers} and {self.min_inliers_pnp}"
            )
