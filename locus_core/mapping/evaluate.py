"""Localization metrics against ground truth (shared by ``locus map localize`` and the bag tools),
query–keyframe co-visibility, and the trajectory plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from locus_core.data.frame import PosedFrame
from locus_core.mapping.localizer import Localization


def localization_metrics(
    results: Sequence[Localization],
    gt_poses: Sequence[np.ndarray | None],
    covisibility: np.ndarray | None = None,
    *,
    min_covisibility: float = 0.3,
    max_trans_m: float = 0.25,
    max_rot_deg: float = 10.0,
) -> dict[str, Any]:
    """Metrics of a localization run.

    Args:
        results: one Localization per query.
        gt_poses: ground-truth T_map_cam (4,4) per query, None where unknown.
        covisibility: (Q, K) fraction of each query's view seen by each map keyframe, or None
            (queries from another scene, or unknown): then no query counts as covisible.
    Returns:
        ``{"queries", "localized_rate", "tracked", "precision", "place": {"recall_at_1", "queries"},
        "pose": {"median_trans_m", "median_rot_deg"}, "covisible": {"queries", "localized_rate",
        "median_trans_m", "median_rot_deg"}, "latency_ms": {"p50", "p95", "stages_p50": {stage: ms}}}``. precision = share of
        output poses within ``max_trans_m`` and ``max_rot_deg`` (of those with ground truth); pose
        medians are over output poses; NaN where undefined (JSON null after ``to_json``). tracked =
        poses from tracking (``locus_core.mapping.tracking``): those frames skip place recognition,
        so place recall counts the other queries only.
    """
    n = len(results)
    if len(gt_poses) != n or (covisibility is not None and len(covisibility) != n):
        raise ValueError(f"{n} results but {len(gt_poses)} poses / {None if covisibility is None else len(covisibility)} covisibility rows")
    from locus_core.evaluation.pose import pose_error

    localized = np.array([r.localized for r in results], bool)
    errors = np.full((n, 2), np.nan)
    for i, (r, gt) in enumerate(zip(results, gt_poses)):
        if r.localized and gt is not None:
            errors[i] = pose_error(r.T_map_cam, gt)
    known = localized & np.isfinite(errors[:, 0])
    correct = known & (errors[:, 0] <= max_trans_m) & (errors[:, 1] <= max_rot_deg)
    tracked = np.array([r.method == "tracked" for r in results], bool)
    if covisibility is not None and covisibility.size:
        covisible = covisibility.max(1) >= min_covisibility
        top = np.array([r.matches[0].keyframe_id if r.matches else -1 for r in results])
        hit = np.array([t >= 0 and covisibility[i, t] >= min_covisibility for i, t in enumerate(top)], bool)
    else:
        covisible = np.zeros(n, bool)
        hit = np.zeros(n, bool)
    latency = np.array([r.latency_ms for r in results], np.float64)
    # a frame without a latency (the live monitor's, its status never came): percentiles over the others
    latency = latency[np.isfinite(latency)]
    cov_known = covisible & known
    return {
        "queries": n,
        "localized_rate": _rate(localized.sum(), n),
        "tracked": int((tracked & localized).sum()),
        "precision": _rate(correct.sum(), known.sum()),
        "place": {"recall_at_1": _rate((hit & covisible & ~tracked).sum(), (covisible & ~tracked).sum()),
                  "queries": int((covisible & ~tracked).sum())},
        "pose": {"median_trans_m": _median(errors[known, 0]), "median_rot_deg": _median(errors[known, 1])},
        "covisible": {
            "queries": int(covisible.sum()),
            "localized_rate": _rate((localized & covisible).sum(), covisible.sum()),
            "median_trans_m": _median(errors[cov_known, 0]),
            "median_rot_deg": _median(errors[cov_known, 1]),
        },
        "latency_ms": {"p50": _pct(latency, 50), "p95": _pct(latency, 95), "stages_p50": _stage_medians(results)},
    }


def summary_line(metrics: dict[str, Any]) -> str:
    """One line of ``localization_metrics`` (after ``to_json``: None where undefined) for a terminal."""

    def fmt(x: object) -> str:
        return "n/a" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)

    tracked = f" ({metrics['tracked']} tracked)" if metrics.get("tracked") else ""
    pose = metrics["pose"]
    return (f"localized {fmt(metrics['localized_rate'])}{tracked}, precision {fmt(metrics['precision'])}, recall@1 "
            f"{fmt(metrics['place']['recall_at_1'])}, median {fmt(pose['median_trans_m'])} m / {fmt(pose['median_rot_deg'])} deg, "
            f"latency p50 {fmt(metrics['latency_ms']['p50'])} ms")


def _stage_medians(results: Sequence[Localization]) -> dict[str, float]:
    """Median ms of each stage (features, search, verify) over the queries that reached it."""
    stages: dict[str, list[float]] = {}
    for r in results:
        for name, ms in r.latency_breakdown.items():
            stages.setdefault(name, []).append(ms)
    return {name: _pct(np.asarray(ms), 50) for name, ms in stages.items()}


def to_json(value: Any) -> Any:
    """NaN → None, recursively, so ``json.dumps`` writes valid JSON."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _rate(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def _median(x: np.ndarray) -> float:
    return float(np.median(x)) if len(x) else float("nan")


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else float("nan")


# How co-visibility samples a query: patch centres of the frame resized to this size, this stride.
COVISIBILITY_SIZE = (120, 160)  # (H, W)
COVISIBILITY_STRIDE = 8
COVISIBILITY_TOLERANCE_M = 0.05


def camera_points(frame: PosedFrame) -> np.ndarray:
    """(N, 3) float64 camera-frame points of ``frame``'s patch centres with valid depth, as
    co-visibility samples them (``COVISIBILITY_SIZE``, ``COVISIBILITY_STRIDE``); (0, 3) without depth.
    Runs keep these per query instead of the frame: ~7 KB instead of ~2 MB at 640x480."""
    import torch

    from locus_core.data.resize import resize_depth
    from locus_core.geometry import lift_patches

    if frame.depth is None:
        return np.zeros((0, 3))
    small, K = resize_depth(frame, COVISIBILITY_SIZE)
    depth = torch.from_numpy(np.asarray(small, np.float64))[None]
    eye = torch.eye(4, dtype=torch.float64)[None]
    points = lift_patches(depth, torch.from_numpy(K)[None], eye, COVISIBILITY_STRIDE)[0]
    return points[torch.isfinite(points).all(1)].numpy()


def covisibility(
    queries: Sequence[tuple[np.ndarray, np.ndarray | None]], keyframes: Sequence[PosedFrame]
) -> np.ndarray:
    """(Q, K) fraction of each query's points that each keyframe sees (depth-checked within
    ``COVISIBILITY_TOLERANCE_M``, ``geometry.visible``).

    Args:
        queries: per query, its ``camera_points`` (N, 3) and its camera-to-map pose (4, 4), None
            where unknown (that row is 0).
        keyframes: posed frames with depth.
    """
    import torch

    from locus_core.data.resize import resize_frame
    from locus_core.geometry import transform_points, visible

    out = np.zeros((len(queries), len(keyframes)), np.float32)
    if not keyframes:
        return out
    small = [resize_frame(f, COVISIBILITY_SIZE) for f in keyframes]
    depth = torch.from_numpy(np.stack([np.asarray(f.depth, np.float64) for f in small]))
    K = torch.from_numpy(np.stack([f.K for f in small]))
    T = torch.from_numpy(np.stack([f.T_world_cam for f in small]))
    for i, (points, pose) in enumerate(queries):
        if pose is None or len(points) == 0:
            continue
        p = transform_points(torch.from_numpy(np.asarray(pose, np.float64)), torch.from_numpy(points))
        seen = visible(p.expand(len(keyframes), -1, -1).contiguous(), depth, K, T, COVISIBILITY_TOLERANCE_M)
        out[i] = seen.double().mean(1).numpy()
    return out


def source_keyframes(landmark_map: Any, data_path: Path | None = None) -> list[PosedFrame] | None:
    """The posed frames the map's keyframes were made from, read back from the map's data set; None
    (and a warning why) when the map has several sources, its source is not ``data_path`` (when
    given), is gone or unreadable, or lacks a keyframe. Place recall needs them."""
    import logging

    from locus_core.data import open_dataset
    from locus_core.errors import LocusError

    log = logging.getLogger(__name__)
    sources = landmark_map.sources
    # a source without a path (a map made in mapping mode) is not Path(""): that is the working directory
    path = Path(sources[0]["path"]) if len(sources) == 1 and sources[0].get("path") else None
    if path is None or not path.exists():
        log.warning("map sources %s not available: place recall is not computed", [s.get("path") for s in sources])
        return None
    if data_path is not None and path.resolve() != Path(data_path).resolve():
        return None  # queries from another recording: its frame of reference is not the map's
    try:
        source = open_dataset(path)
    except LocusError as exc:
        log.warning("map source %s unreadable (%s): place recall is not computed", path, exc)
        return None
    position = {index: k for k, index in enumerate(source.indices)}
    wanted = [int(i) for i in landmark_map.keyframes.source_index]
    if any(i not in position for i in wanted):
        log.warning("keyframes of the map are not all in %s: place recall is not computed", path)
        return None
    return [source[position[i]] for i in wanted]


def plot_trajectory(
    path: Path,
    results: Sequence[Localization],
    gt_poses: Sequence[np.ndarray | None],
    keyframe_poses: np.ndarray,
    title: str = "",
) -> Path:
    """Top view (x, y of the map frame) of keyframes, ground truth and the localized poses, coloured by
    correctness; errors as lines from ground truth to estimate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from locus_core.evaluation.pose import pose_error

    fig, ax = plt.subplots(figsize=(7, 6))
    kf = keyframe_poses[:, :3, 3]
    ax.scatter(kf[:, 0], kf[:, 1], s=8, c="0.7", label="map keyframes")
    gt = np.array([g[:3, 3] for g in gt_poses if g is not None])
    if len(gt):
        ax.plot(gt[:, 0], gt[:, 1], "-", c="0.3", lw=1, label="query ground truth")
    good, bad = [], []
    for r, g in zip(results, gt_poses):
        if not r.localized:
            continue
        est = r.T_map_cam[:3, 3]
        if g is not None:
            dt, dr = pose_error(r.T_map_cam, g)
            (good if dt <= 0.25 and dr <= 10 else bad).append(est)
            ax.plot([g[0, 3], est[0]], [g[1, 3], est[1]], c="tab:red" if dt > 0.25 or dr > 10 else "tab:green", lw=0.5)
        else:
            good.append(est)
    for pts, colour, label in ((good, "tab:green", "localized"), (bad, "tab:red", "wrong (> 0.25 m / 10°)")):
        if pts:
            a = np.array(pts)
            ax.scatter(a[:, 0], a[:, 1], s=12, c=colour, label=label)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title or "localization (top view)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
