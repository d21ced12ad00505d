from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from locus_core.data import open_dataset
from locus_core.evaluation.pose import pose_error
from locus_core.mapping import LandmarkMap, Localizer, LocalizerConfig
from locus_core.mapping.ransac import perturb
from locus_core.mapping.tracking import Tracker

# the random 16-d test features need the lenient settings test_localizer explains
LENIENT = dict(min_inlier_ratio=0.05, min_inliers=20, top_keyframes=8)


def test_a_frame_is_tracked_from_a_nearby_prior(scene: Path, model, built_map: LandmarkMap) -> None:
    frame = open_dataset(scene, frames="0:48:2")[4]
    localizer = Localizer(built_map, model, LocalizerConfig(**LENIENT))
    prior = perturb(frame.T_world_cam, np.array([0.03, -0.02, 0.02, 0.01, -0.01, 0.01]))
    result = localizer.track(frame, prior)
    assert result.localized, result.reason
    assert result.method == "tracked" and result.inliers >= 20 and set(result.latency_breakdown) == {"track"}
    dt, dr = pose_error(result.T_map_cam, frame.T_world_cam)
    assert dt < 0.02 and dr < 1.0
    floor = np.repeat([0.02, np.radians(1.0)], 3) ** 2
    assert np.all(np.diag(result.covariance) >= floor) and np.all(np.linalg.eigvalsh(result.covariance) > 0)


def test_tracking_refuses_without_depth_far_from_the_prior_or_far_from_the_map(scene: Path, model, built_map: LandmarkMap) -> None:
    frame = open_dataset(scene, frames="0:48:2")[4]
    localizer = Localizer(built_map, model, LocalizerConfig(**LENIENT))
    no_depth = localizer.track(dataclasses.replace(frame, depth=None), frame.T_world_cam)
    assert not no_depth.localized and no_depth.reason == "tracking needs depth" and no_depth.T_map_cam is None
    away = frame.T_world_cam.copy()
    away[:3, 3] += 100.0  # nothing of the map around it
    result = localizer.track(frame, away)
    assert not result.localized and result.reason.startswith("too few inliers around the previous pose")
    # the normals' spread is at most 1/3 (surfaces facing every way alike): above it nothing is tracked
    flat = Localizer(built_map, model, LocalizerConfig(**LENIENT, track_min_normal_spread=0.34)).track(frame, frame.T_world_cam)
    assert not flat.localized and "surfaces in view leave a direction free (normal spread" in flat.reason
    strict = Localizer(built_map, model, LocalizerConfig(**{**LENIENT, "consistency_translation_m": 0.001}))
    moved = strict.track(frame, perturb(frame.T_world_cam, np.array([0.03, 0, 0, 0, 0, 0])))
    assert not moved.localized and "from the previous pose" in moved.reason


def methods(tracker: Tracker, frames: list, stamps: list[float]) -> list[str]:
    return [tracker.localize(dataclasses.replace(f, stamp=s)).method for f, s in zip(frames, stamps)]


def test_the_tracker_localizes_in_full_at_its_period_after_gaps_and_when_time_runs_back(scene: Path, model, built_map: LandmarkMap) -> None:
    # one view over and over: tracking from its own pose succeeds, so only the policy decides
    frames = [open_dataset(scene, frames="0:48:2")[4]] * 6
    config = LocalizerConfig(**LENIENT, track_period_s=0.25, track_max_gap_s=0.15)
    tracker = Tracker(Localizer(built_map, model, config))
    # full, tracked, tracked, full (period), tracked, full (gap 0.2 > 0.15)
    assert methods(tracker, frames, [0.0, 0.1, 0.2, 0.3, 0.4, 0.6]) == ["3d-3d", "tracked", "tracked", "3d-3d", "tracked", "3d-3d"]
    assert methods(tracker, frames[:2], [0.1, 0.2]) == ["3d-3d", "tracked"]  # back in time: a new stream
    every = Tracker(Localizer(built_map, model, dataclasses.replace(config, track_period_s=0.0)))
    assert methods(every, frames[:3], [0.0, 0.1, 0.2]) == ["3d-3d"] * 3


def test_a_failed_track_is_localized_in_full_within_the_frame(scene: Path, model, built_map: LandmarkMap) -> None:
    frames = open_dataset(scene, frames="0:48:2")
    tracker = Tracker(Localizer(built_map, model, LocalizerConfig(**LENIENT, track_period_s=10.0)))
    first = tracker.localize(dataclasses.replace(frames[4], stamp=0.0))
    assert first.localized
    second = tracker.localize(dataclasses.replace(frames[5], stamp=0.1, depth=None))  # tracking needs depth
    assert second.method == "pnp" and "track" in second.latency_breakdown
    assert second.latency_ms >= second.latency_breakdown["track"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("track_period_s", -1.0), ("track_max_gap_s", 0.0), ("track_rounds", 0), ("track_min_normal_spread", -0.1)],
)
def test_tracking_parameters_are_checked(field: str, value: float) -> None:
    with pytest.raises(ValueError, match="need track_period_s >= 0, track_max_gap_s > 0, track_rounds >= 1 and "
                                         "track_min_normal_spread >= 0"):
        LocalizerConfig(**{field: value})


def test_frames_whose_time_does_not_advance_are_localized_in_full(scene: Path, model, built_map: LandmarkMap) -> None:
    """Frames without stamps (PosedFrame's default 0.0, a driver that leaves header stamps at 0):
    the period and gap are never reached, so such a stream was tracked forever from its first
    full localization and never checked against place recognition again."""
    frames = [open_dataset(scene, frames="0:48:2")[4]] * 4
    tracker = Tracker(Localizer(built_map, model, LocalizerConfig(**LENIENT, track_period_s=0.25)))
    assert methods(tracker, frames, [0.0] * 4) == ["3d-3d"] * 4
    assert methods(tracker, frames[:3], [1.0, 1.0, 1.1]) == ["3d-3d", "3d-3d", "tracked"]


def test_tracked_inliers_are_distinct_query_patches_as_in_a_full_localization(
    scene: Path, model, built_map: LandmarkMap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Landmarks of neighbouring keyframes project onto one query patch: counted as pairs, a frame
    passed min_inliers with fewer distinct measurements than a full localization needs."""
    import locus_core.mapping.localizer as localizer_module

    fits = []

    def capture(*args, **kwargs):
        fits.append(projective_refine(*args, **kwargs))
        return fits[-1]

    from locus_core.mapping.projective import projective_refine

    monkeypatch.setattr(localizer_module, "projective_refine", capture)
    frame = open_dataset(scene, frames="0:48:2")[15]
    result = Localizer(built_map, model, LocalizerConfig(**LENIENT)).track(frame, frame.T_world_cam)
    distinct = len(np.unique(fits[-1].patches))
    assert result.localized and distinct < len(fits[-1].landmarks)  # this view has pairs sharing a patch
    assert result.inliers == distinct
    strict = Localizer(built_map, model, LocalizerConfig(**{**LENIENT, "min_inliers": distinct + 1}))
    refused = strict.track(frame, frame.T_world_cam)
    assert not refused.localized and refused.reason.startswith("too few inliers around the previous pose")


def test_odometry_moves_the_prior_beyond_what_tracking_alone_catches(scene: Path, model, built_map: LandmarkMap) -> None:
    frames = open_dataset(scene, frames="0:48:2")
    a, b = dataclasses.replace(frames[4], stamp=0.0), dataclasses.replace(frames[5], stamp=0.1)
    assert pose_error(a.T_world_cam, b.T_world_cam)[0] > 0.3  # too far for the previous pose alone
    config = LocalizerConfig(**LENIENT, track_period_s=10.0)
    plain = Tracker(Localizer(built_map, model, config))
    plain.localize(a)
    assert plain.localize(b).method == "3d-3d"
    # odometry in a frame of its own (its origin anywhere): only its motion between the frames counts
    odom_from_map = perturb(np.eye(4), np.array([5.0, -2.0, 1.0, 0.3, 0.1, -0.2]))
    with_odometry = Tracker(Localizer(built_map, model, config))
    first = with_odometry.localize(a, odom_from_map @ a.T_world_cam)
    second = with_odometry.localize(b, odom_from_map @ b.T_world_cam)
    assert first.localized and second.method == "tracked", second.reason
    dt, dr = pose_error(second.T_map_cam, b.T_world_cam)
    assert dt < 0.03 and dr < 1.0
