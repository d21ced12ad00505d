"""``locus bag eval`` as a function: replay a bag against a map and write the report.

Metrics are ``locus_core.mapping.evaluate.localization_metrics`` (the keys of ``locus map
localize``), with place recall from the co-visibility of each query with the map's keyframes, read
back from the data set the map was built from (when it is still there). The report adds what only
a replay has: messages (and unreadable records) per topic, skipped sets by reason, synchroniser
counters, time segments and the replay speed against the bag's own clock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.bags.errors import BagError
from locus_core.bags.replay import ReplayConfig, ReplayFrame, ReplayResult, replay
from locus_core.bags.workers import WorkerPool
from locus_core.durable import written_last

log = logging.getLogger(__name__)


def _covisibility(landmark_map: Any, frames: list[ReplayFrame]) -> np.ndarray | None:
    """(Q, K) co-visibility of the replayed frames with the map's keyframes, from the camera-frame
    points the replay kept of each (it keeps no images) placed by their ground truth; frames without
    ground truth count as not co-visible."""
    from locus_core.mapping.evaluate import covisibility, source_keyframes

    keyframes = source_keyframes(landmark_map)
    return None if keyframes is None else covisibility([(f.points_cam, f.T_gt) for f in frames], keyframes)


def write_tum(path: Path, stamps: list[float], poses: list[np.ndarray]) -> Path:
    """TUM trajectory: one ``timestamp tx ty tz qx qy qz qw`` line per stamp (evo, rpg tools), in
    increasing order; of poses sharing a stamp (two sets of one stamp) the first. evo refuses a
    file whose stamps repeat or go back."""
    from scipy.spatial.transform import Rotation

    lines = ["# timestamp tx ty tz qx qy qz qw"]
    previous = ""
    for stamp, T in sorted(zip(stamps, poses), key=lambda pair: pair[0]):  # stable: ties stay in order
        if (text := f"{stamp:.9f}") == previous:
            continue
        previous = text
        q = Rotation.from_matrix(T[:3, :3]).as_quat()
        lines.append(f"{text} " + " ".join(f"{v:.9f}" for v in (*T[:3, 3], *q)))
    path.write_text("\n".join(lines) + "\n")
    return path


def tum_name(kind: str, segment: int) -> str:
    """``KIND.tum`` for the first time segment, ``KIND.segN.tum`` for segment N (frames.csv's
    ``segment``): a looped or restarted recording starts its stamps over in each."""
    return f"{kind}.tum" if segment == 0 else f"{kind}.seg{segment}.tum"


def write_trajectories(out: Path, frames: list[ReplayFrame]) -> list[Path]:
    """The localized poses (trajectory) and the ground truth (groundtruth) as TUM files, one pair
    per time segment with frames (``tum_name``); the first segment's always, empty or not."""
    paths = []
    for segment in sorted({0} | {f.segment for f in frames}):
        localized = [f for f in frames if f.segment == segment and f.localization.localized]
        known = [f for f in frames if f.segment == segment and f.T_gt is not None]
        paths.append(write_tum(out / tum_name("trajectory", segment), [f.stamp for f in localized],
                               [f.localization.T_map_cam for f in localized]))
        paths.append(write_tum(out / tum_name("groundtruth", segment), [f.stamp for f in known], [f.T_gt for f in known]))
    # segment files of an earlier evaluation into ``out`` (more segments) would pass for this one's
    for kind in ("trajectory", "groundtruth"):
        for stale in set(out.glob(f"{kind}.seg*.tum")) - set(paths):
            stale.unlink()
    return paths


def write_frames_csv(path: Path, frames: list[ReplayFrame]) -> Path:
    """One row per replayed frame: bag stamp, segment, the decision and why, the best match, the
    latency and the error against ground truth (empty where there is no pose or no ground truth)."""
    import csv

    from locus_core.evaluation.pose import pose_error

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stamp", "segment", "localized", "reason", "method", "inliers", "keyframe", "score", "latency_ms",
                    "trans_err_m", "rot_err_deg"])
        for fr in frames:
            r = fr.localization
            errors = ["", ""]
            if r.T_map_cam is not None and fr.T_gt is not None:
                errors = [f"{e:.4f}" for e in pose_error(r.T_map_cam, fr.T_gt)]
            best = r.matches[0] if r.matches else None
            w.writerow([f"{fr.stamp:.9f}", fr.segment, int(r.localized), r.reason, r.method, r.inliers,
                        best.keyframe_id if best else "", f"{best.score:.4f}" if best else "", f"{r.latency_ms:.1f}", *errors])
    return path


def plot_errors(path: Path, frames: list[ReplayFrame]) -> Path:
    """Translation and rotation error of each localized frame over bag time; unlocalized frames as
    ticks at the bottom."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from locus_core.evaluation.pose import pose_error

    t0 = frames[0].stamp
    fig, (ax_t, ax_r) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    rows = [(f.stamp - t0, *pose_error(f.localization.T_map_cam, f.T_gt)) for f in frames
            if f.localization.localized and f.T_gt is not None]
    if rows:
        t, dt, dr = np.array(rows).T
        ax_t.plot(t, dt, ".", ms=3, c="tab:blue")
        ax_r.plot(t, dr, ".", ms=3, c="tab:orange")
    lost = [f.stamp - t0 for f in frames if not f.localization.localized]
    for ax in (ax_t, ax_r):
        if lost:
            ax.plot(lost, np.zeros(len(lost)), "|", c="tab:red", ms=8, label="not localized")
        ax.grid(alpha=0.3)
    ax_t.set_ylabel("translation error (m)")
    ax_r.set_ylabel("rotation error (deg)")
    ax_r.set_xlabel(f"bag time - {t0:.3f} (s)")
    if lost:
        ax_t.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def evaluate_bag(
    bag: Path,
    map_dir: Path,
    out: Path,
    *,
    model_spec: str | None = None,
    config: ReplayConfig | None = None,
    localizer_config: str = "",
    localizer_overrides: Sequence[str] = (),
    device: str = "auto",
    precision: str = "fp32",
    workers: int = 1,
) -> dict[str, Any]:
    """Replay ``bag`` through the node's ``FrameProcessor`` with the map at ``map_dir`` (LocalizerConfig
    from the YAML ``localizer_config`` and "KEY=VALUE" ``localizer_overrides``) and write
    ``out/``: metrics.json, config.yaml, trajectory.tum (estimates), groundtruth.tum, frames.csv
    (per frame: segment, decision, reason, error), trajectory.png and errors.png. Where the bag's
    stamps start over (a loop, a restarted recording: segment N > 0 in frames.csv), that segment's
    poses are in trajectory.segN.tum and groundtruth.segN.tum, so that every TUM file's stamps
    increase. Returns the metrics (NaN as None).

    ``workers`` > 1 localizes frames in that many processes, sharing this process's CPU threads
    out (``locus_core.bags.workers``): the same results, faster on long bags; the latencies are
    then each worker's, with its share of the threads, not what the node would see. With tracking
    (LocalizerConfig.track_period_s > 0) each window of ``track_period_s`` of bag time is tracked by
    one worker from a full localization at its start (``WorkerPool``): the results differ from one
    process's only where the full localizations fall."""
    import torch
    import yaml

    from locus_core.config import config_to_dict
    from locus_core.mapping.evaluate import localization_metrics, plot_trajectory, to_json
    from locus_core.mapping.landmark_map import LandmarkMap
    from locus_core.mapping.run import model_spec_of
    from locus_core.pipeline import FrameProcessor

    if workers < 1:
        raise BagError(f"workers must be >= 1, got {workers}")
    config = config or ReplayConfig()
    landmark_map = LandmarkMap.load(map_dir)
    spec = model_spec or model_spec_of(landmark_map)
    # logs the runtime fallbacks
    processor = FrameProcessor(spec, device, localizer_config, precision, overrides=localizer_overrides)
    processor.use_map(landmark_map, map_dir)  # checks model and map before any worker starts
    threads = torch.get_num_threads()
    if workers > 1:
        with WorkerPool(workers, spec, map_dir, device=device, localizer_config=localizer_config,
                        overrides=localizer_overrides, precision=precision) as pool:
            threads = pool.threads
            result = replay(bag, pool, config, progress=_progress)
    else:
        processor.warm_up()  # its first frame would otherwise be timed with the runtime's first run
        result = replay(bag, processor, config, progress=_progress)
    frames = result.frames
    metrics = localization_metrics([f.localization for f in frames], [f.T_gt for f in frames],
                                   _covisibility(landmark_map, frames))
    metrics.update(_replay_report(result, config))
    metrics.update(bag=str(bag), map=str(map_dir), model={"spec": spec, "hash": processor.model.hash},
                   device=device, runtime={"name": processor.runtime, "precision": precision, "fallbacks": processor.fallbacks}, threads=threads,
                   workers=workers)
    metrics = to_json(metrics)
    out.mkdir(parents=True, exist_ok=True)
    with written_last(out / "metrics.json", json.dumps(metrics, indent=2)):
        (out / "config.yaml").write_text(yaml.safe_dump(
            {"replay": config_to_dict(config), "localizer": config_to_dict(processor.config),
             "map": config_to_dict(landmark_map.config), "model": {"spec": spec, "hash": processor.model.hash}},
            sort_keys=False))
        write_trajectories(out, frames)
        plot_trajectory(out / "trajectory.png", [f.localization for f in frames], [f.T_gt for f in frames],
                        landmark_map.keyframes.T_map_kf, title=f"{Path(bag).name} vs map {Path(map_dir).name}")
        plot_errors(out / "errors.png", frames)
        write_frames_csv(out / "frames.csv", frames)
    return metrics


def _replay_report(result: ReplayResult, config: ReplayConfig) -> dict[str, Any]:
    return {
        "replay": {
            "frames": len(result.frames),
            "ground_truth": sum(f.T_gt is not None for f in result.frames),
            "segments": result.segments,
            "bag_duration_s": result.bag_duration_s,
            "wall_s": result.wall_s,
            "realtime_factor": result.realtime_factor,
            "max_rate_hz": config.max_rate_hz,
            "throttled": result.throttled,
            "odometry": result.odometry,
            "topics": result.topics,
            "messages": result.messages,
            "unreadable": result.unreadable,
            "sync": result.sync,
            "warnings": result.warnings,
        },
        "skipped": {"total": sum(result.skipped.values()), **result.skipped, "examples": result.notes},
    }


def _progress(done: int) -> None:
    if done % 50 == 0:
        log.info("%d frames localized", done)
