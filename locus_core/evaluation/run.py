"""``evaluate``: check the inputs, extract features once per model, run the tasks, write the results.

Every task compares the evaluated model with the raw features of its backbone (the paper's baseline)
on the same frames, pairs and queries; relative pose also compares with XFeat + LighterGlue.

``metrics.json`` nests the dotted names of the issue as JSON objects (``retrieval.ap`` is
``{"retrieval": {"ap": ...}}``), like the map and bag tools. Baseline values carry a ``_backbone``
suffix (``retrieval.ap_backbone``, ``place.recall_at_1_backbone``, ``segmentation.miou_backbone``)
except in ``pose``, where each method is a block of the same shape: ``pose.median_trans_m``,
``pose.median_rot_deg``, ``pose.success_rate``, ``pose.pairs``, ``pose.bins.{"10-40%", ...}``,
``pose.pnp.{...}`` (the PnP variant), and ``pose.baseline_backbone.{...}`` /
``pose.baseline_lighterglue.{...}`` with the same keys. The 3D–3D blocks and their bins also hold the
quality of the matches fed to RANSAC (``matches_per_pair``, ``match_median_error_m``,
``match_within_inlier_m``, ``match_within_rho``: ground-truth 3D distance between a match's two ends). Non-finite values (a median over mostly
failed pairs is infinite) are written as null. ``place.recall_at_5`` is null with fewer than 5 database
frames; ``segmentation.miou`` is the paper's linear probe's and ``segmentation.knn_miou`` k-NN label
transfer's (``segmentation.protocol``), both counting class 0 (background) as a class, as
``segmentation.miou_classes`` says.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm import tqdm

from locus_core.config import save_config
from locus_core.data.frame import PosedFrame
from locus_core.durable import written_last
from locus_core.evaluation import consistency, place, pose, retrieval, segmentation
from locus_core.evaluation.config import TASKS, EvalConfig
from locus_core.evaluation.errors import EvaluationError

log = logging.getLogger(__name__)

# what segmentation's mIoU averages over, and how each is labelled (metrics.json and report.md say it)
MIOU_CLASSES = "every class in the ground truth or the prediction, 0 (background) included"
SEGMENTATION_PROTOCOL = ("miou: the paper's linear probe (one linear layer on the frozen features, cross-entropy, "
                         "{epochs} full-batch Adam steps at lr {lr:g}); knn_miou: k-NN label transfer (k = {k})")

NEEDS = {  # what each task needs from the data
    "retrieval": ("depth", "pose"),
    "place": ("depth", "pose", "train"),
    "pose": ("depth", "pose"),
    "segmentation": ("semantic",),
    "consistency": ("depth", "pose"),
}


@dataclass
class FeatureSet:
    """One model's features on a list of frames, with the resized frames and their 3D patch points."""

    features: torch.Tensor  # (N, D, h, w)
    frames: list[PosedFrame]  # resized to the model's input size
    cam_points: torch.Tensor  # (N, h*w, 3) camera-frame patch centres, NaN = no depth
    world_points: torch.Tensor  # (N, h*w, 3), NaN = no depth or no pose
    stride: int

    def flat(self) -> torch.Tensor:
        """(N, h*w, D) row-major patch features."""
        return self.features.flatten(2).transpose(1, 2)


@dataclass
class Evaluated:
    """What ``evaluate`` produced: metrics (nested dict) and the files written."""

    metrics: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def evaluate(model_spec: str, data: str | Path, config: EvalConfig, out_dir: str | Path) -> Evaluated:
    """Run ``config.tasks`` on ``data`` for ``model_spec`` and its baselines; write metrics.json,
    report.md, config.yaml and figures into ``out_dir``.

    Raises:
        EvaluationError (or another LocusError from data/models) before any work when the model,
        the data or the selection cannot be evaluated.
    """
    from locus_core.models.model import load_model

    started = time.perf_counter()
    out = Path(out_dir)
    timings: dict[str, float] = {}
    plan = _plan(data, config, out, timings)
    dataset, train, tasks, pairs = plan.dataset, plan.train, plan.tasks, plan.pairs
    model = load_model(model_spec)
    backbone_spec = f"backbone:{model.config.backbone}"
    # at the model's input size: retrieval queries index both models' patches, on the same grid
    baseline = model if model.is_raw else load_model(backbone_spec).with_input_size(model.input_size)
    models = {"model": model, "backbone": baseline}
    out.mkdir(parents=True, exist_ok=True)
    config = replace(config, tasks=tuple(tasks))

    with _timed(timings, "features"):
        feats = _features(models, dataset, "features")
    metrics: dict[str, Any] = {
        "model": {"spec": model_spec, "hash": model.hash, "backbone": model.config.backbone,
                  "raw": model.is_raw, "baseline": backbone_spec},
        "data": {"path": str(data), "name": dataset.name, "format": dataset.format, "frames": len(dataset),
                 "selection": config.frames, "train_selection": config.train_frames},
        "skipped": plan.skipped,
        "timings_s": timings,
    }
    figures: dict[str, Any] = {}
    if "retrieval" in tasks:
        with _timed(timings, "retrieval"):
            metrics["retrieval"], figures["retrieval"] = run_retrieval(feats, config)
    train_feats = None
    if train is not None and {"place", "segmentation"} & set(tasks):
        with _timed(timings, "train_features"):
            train_feats = _features(models, train, "train frames")
    if "place" in tasks:
        with _timed(timings, "place"):
            metrics["place"] = run_place(feats, train_feats, dataset, train, data, config)
    if "pose" in tasks:
        # Metric pose uses the model's finest scale (what maps store); the other tasks use scale 0.
        radii = tuple(model.config.radii)
        fine = min(range(len(radii)), key=radii.__getitem__)
        pose_feats = feats
        if fine != 0:
            with _timed(timings, "pose_features"):
                pose_feats = {**feats, "model": extract(model, dataset, "features (model, pose scale)", scale=fine)}
        # the first stage's features: scale 0 where it is coarser than the pose scale, else the pose scale
        first = {**pose_feats, "model": feats["model"]} if config.two_stage else None
        with _timed(timings, "pose"):
            metrics["pose"], figures["pose"] = run_pose(pose_feats, pairs, config, first)
        metrics["pose"]["radius_m"] = radii[fine]
        metrics["pose"]["matching"] = _matching(config, radii[0], radii[fine])
        metrics["pose"]["baseline_backbone"]["matching"] = _matching(config)
    if "consistency" in tasks:
        with _timed(timings, "consistency"):
            metrics["consistency"] = run_consistency(feats, pairs)
    if "segmentation" in tasks:
        with _timed(timings, "segmentation"):
            metrics["segmentation"] = run_segmentation(feats, train_feats, config)
    metrics["wall_time_s"] = round(time.perf_counter() - started, 1)

    from locus_core.evaluation import figures as fig
    from locus_core.evaluation.report import write_report

    with written_last(out / "metrics.json", json.dumps(_jsonable(metrics), indent=2, allow_nan=True)):
        files = fig.write_figures(out, feats, figures, model_spec if model.is_raw else fig.LABELS["model"])
        save_config(config, out / "config.yaml")
        files.append(write_report(out / "report.md", metrics, config, [f for f in files if f.suffix == ".png"]))
    files += [out / "metrics.json", out / "config.yaml"]
    return Evaluated(metrics, files)


@dataclass
class _Plan:
    """What ``evaluate`` runs on which frames, every input checked: nothing has been computed on them."""

    dataset: Any
    train: Any  # the labelled / database selection, or None
    tasks: list[str]
    skipped: dict[str, str]  # task -> why not
    pairs: list[pose.PosePair]  # for pose and consistency


def _plan(data: str | Path, config: EvalConfig, out: Path, timings: dict[str, float]) -> _Plan:
    """The selections and tasks, checked before any work (EvaluationError naming the problem)."""
    from locus_core.data import open_dataset

    # mkdir would only fail after the model and covisibility, with a FileExistsError traceback
    above = next((p for p in (out, *out.parents) if p.exists()), None)
    if above is not None and not above.is_dir():
        raise EvaluationError(f"--out {out}: {above} is a file, not a folder")
    dataset = open_dataset(data, config.frames)
    if len(dataset) == 0:
        raise EvaluationError(f"{data}: the selection {config.frames!r} holds no frames")
    train = open_dataset(data, config.train_frames) if config.train_frames else None
    if train is not None and len(train) == 0:
        raise EvaluationError(f"{data}: the train selection {config.train_frames!r} holds no frames")
    shared = sorted(set(dataset.indices) & set(train.indices)) if train is not None else []
    if shared:  # a query would find itself in the database, a held-out frame its own labels
        raise EvaluationError(f"{data}: --frames {config.frames!r} and --train-frames {config.train_frames!r} share "
                              f"{len(shared)} frames (first: {shared[0]}); evaluated frames must be held out")
    tasks, skipped = _plan_tasks(config, dataset[0], train, data)
    # segmentation labels every other evaluated frame only without a labelled (train) selection
    multi_frame = [t for t in tasks if t in ("retrieval", "pose", "consistency")
                   or (t == "segmentation" and train is None)]
    if len(dataset) < 2 and multi_frame:
        raise EvaluationError(f"{data}: {multi_frame} need at least two frames, the selection has {len(dataset)}")
    pairs: list[pose.PosePair] = []
    if "pose" in tasks or "consistency" in tasks:  # the pairs depend on the data only: checked before any work
        from locus_core.data.covisibility import covisibility_matrix

        with _timed(timings, "covisibility"):
            pairs = pose.select_pairs(covisibility_matrix(dataset), config.pose_bins, config.pose_pairs_per_bin,
                                      config.seed)
        if not pairs:
            needing = [t for t in tasks if t in ("pose", "consistency")]
            raise EvaluationError(f"{data}: no frame pairs of the selection {config.frames!r} have co-visibility in "
                                  f"{config.pose_bins[0]}–{config.pose_bins[-1]} (pose_bins); {needing} need them")
    return _Plan(dataset, train, tasks, skipped, pairs)


def _features(models: dict[str, Any], frames: Any, desc: str) -> dict[str, FeatureSet]:
    """Each model's features of ``frames``, extracted once per distinct model (a raw model is its own baseline)."""
    done = {name: extract(m, frames, f"{desc} ({name})") for name, m in _unique(models).items()}
    return {name: done[name if name in done else "model"] for name in models}


def _plan_tasks(config: EvalConfig, first: PosedFrame, train: Any, data: str | Path) -> tuple[list[str], dict[str, str]]:
    """The tasks to run and, for automatic selection, the skipped ones with the reason (from the first
    evaluated frame and the first of ``train``, the labelled frames of segmentation when given)."""
    labelled = train[0] if train is not None else first
    have = {"depth": first.has_depth, "pose": first.has_pose,
            "semantic": first.semantic is not None and labelled.semantic is not None, "train": train is not None}
    why = {"depth": "no depth", "pose": "no camera poses",
           "semantic": "no semantic labels" if first.semantic is None
           else f"no semantic labels in the labelled (--train-frames) frames ({labelled.frame_id})",
           "train": "no --train-frames (database) given"}
    tasks, skipped = [], {}
    for task in config.tasks or TASKS:
        missing = [why[n] for n in NEEDS[task] if not have[n]]
        if not missing:
            tasks.append(task)
        elif config.tasks:
            raise EvaluationError(f"{data}: task {task} cannot run: {', '.join(missing)} ({first.frame_id})")
        else:
            skipped[task] = ", ".join(missing)
    if not tasks:
        raise EvaluationError(f"{data}: no task can run ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})")
    return tasks, skipped


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[key] = round(time.perf_counter() - start, 1)


def _unique(models: dict[str, Any]) -> dict[str, Any]:
    seen: dict[int, str] = {}
    return {name: m for name, m in models.items() if seen.setdefault(id(m), name) == name}


def extract(model: Any, frames: Any, desc: str, batch: int = 8, scale: int = 0) -> FeatureSet:
    """Features (of ``scale``) of every frame, the resized frames and their lifted patch centres."""
    from locus_core.geometry import lift_patches, transform_points
    from locus_core.models.extract import extract_features_batch

    maps, resized = [], []
    with tqdm(total=len(frames), desc=desc, unit="frame", leave=False) as bar:
        for start in range(0, len(frames), batch):
            chunk = [frames[k] for k in range(start, min(start + batch, len(frames)))]
            fmap, small = extract_features_batch(model, chunk, scale, batch_size=batch)
            maps.append(fmap.float().cpu())
            resized += small
            bar.update(len(chunk))
    features = torch.cat(maps)
    nan = torch.full((features.shape[2] * features.shape[3], 3), float("nan"))
    cams, worlds = [], []
    for small in resized:
        cam = nan
        if small.depth is not None:
            cam = lift_patches(torch.from_numpy(small.depth)[None].float(), torch.from_numpy(small.K)[None].float(),
                               torch.eye(4)[None], model.stride)[0]
        cams.append(cam)
        pose_ = small.T_world_cam
        worlds.append(transform_points(torch.from_numpy(pose_).float(), cam) if pose_ is not None else nan)
    return FeatureSet(features, resized, torch.stack(cams), torch.stack(worlds), model.stride)


def run_retrieval(feats: dict[str, FeatureSet], config: EvalConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    grids = {name: tuple(fs.features.shape[2:]) for name, fs in feats.items()}
    if len(set(grids.values())) > 1:  # the queries are flat patch indices of the model's grid
        raise EvaluationError(f"retrieval: the models' patch grids differ ({grids}); extract them at one input size")
    queries = retrieval.sample_queries(feats["model"].world_points, config.retrieval_queries, config.seed)
    done: dict[int, retrieval.RetrievalResult] = {}
    for fs in tqdm(_unique(feats).values(), desc="retrieval", leave=False):
        done[id(fs)] = retrieval.patch_retrieval(fs.flat(), fs.world_points, queries, rho=config.rho,
                                                 kappa=config.kappa)
    results = {name: done[id(fs)] for name, fs in feats.items()}
    m, b = results["model"], results["backbone"]
    metrics = {"ap": m.ap, "ap_backbone": b.ap, "ratio": m.ap / b.ap if b.ap > 0 else float("nan"),
               "queries": m.num_queries, "rho_m": config.rho, "kappa_m": config.kappa}
    return metrics, {"recall": retrieval.RECALL_GRID, "curves": {n: r.pr_curve for n, r in results.items()},
                     "ap": {n: r.ap for n, r in results.items()}}


def run_place(feats: dict[str, FeatureSet], train_feats: dict[str, FeatureSet], dataset: Any, train: Any,
              data: str | Path, config: EvalConfig) -> dict[str, Any]:
    from locus_core.data import open_dataset
    from locus_core.data.covisibility import covisibility_matrix

    lo = min(dataset.indices[0], train.indices[0])
    hi = max(dataset.indices[-1], train.indices[-1]) + 1
    span = open_dataset(data, f"{lo}:{hi}")  # poses only: frames are read for the union below
    wanted = set(dataset.indices) | set(train.indices)
    union = span.subset([k for k, idx in enumerate(span.indices) if idx in wanted])
    where = {idx: k for k, idx in enumerate(union.indices)}
    cov = covisibility_matrix(union)
    q = [where[i] for i in dataset.indices]
    d = [where[i] for i in train.indices]
    hits = cov[np.ix_(q, d)] >= config.place_min_covisibility
    # a database of fewer than 5 frames has no recall@5 (recall@N would pass for it): NaN
    ks = (1, 5) if len(train) >= 5 else (1,)
    per_model = {}
    for name in _unique(feats):
        qf = [f[:: config.place_query_step] for f in feats[name].flat()]
        df = [f[:: config.place_database_step] for f in train_feats[name].flat()]
        ranking = place.vote_ranking(qf, df, top=max(ks))
        recall, answerable = place.recall_at_k(ranking, hits, ks=ks)
        per_model[name] = {"recall_at_1": recall[1], "recall_at_5": recall.get(5, float("nan"))}
    return {**_suffixed(per_model, feats), "queries": answerable, "queries_without_hit": len(dataset) - answerable,
            "min_covisibility": config.place_min_covisibility, "database_frames": len(train)}


def _matching(config: EvalConfig, first_rho: float | None = None, rho: float | None = None) -> str:
    """How a model's 3D–3D matches are made, for the report (``rho``s: a multiscale model's two scales)."""
    if not config.two_stage:
        return "mutual nearest neighbours"
    scales = (f" (rho {first_rho:g} m)", f" (rho {rho:g} m)") if first_rho != rho else ("", "")
    return (f"mutual nearest neighbours{scales[0]} for a first pose, then the {config.guided_top_k} most "
            f"similar{scales[1]} within {config.guided_radius_m:g} m of where it puts each patch")


def _pose_pair(fs: FeatureSet, a: int, b: int, config: EvalConfig,
               first: FeatureSet | None = None) -> tuple[tuple[float, float], tuple[float, float], dict]:
    """Rigid and PnP errors of one model on pair (a, b), and the rigid matches (for the figure);
    with ``first``-stage features the rigid pose takes two stages (``EvalConfig.two_stage``)."""
    from locus_core.mapping.ransac import RigidFit, pnp_ransac, ransac_rigid

    fa, fb = fs.flat()[a], fs.flat()[b]
    pa, pb = fs.cam_points[a], fs.cam_points[b]
    va, vb = (_usable_points(fs, k, config.max_depth_spread) for k in (a, b))
    ka, kb = va.nonzero()[:, 0], vb.nonzero()[:, 0]
    T_gt = np.linalg.inv(fs.frames[a].T_world_cam) @ fs.frames[b].T_world_cam

    def fitted(usable_a: torch.Tensor, usable_b: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, RigidFit | None]:
        ia, ib = ka[usable_a], kb[usable_b]  # indices among the usable patches -> patch indices
        return ia, ib, ransac_rigid(pb[ib].numpy(), pa[ia].numpy(), threshold, seed=config.seed, robust=True)

    if first is None:
        ia, ib, fit = fitted(*pose.mutual_nearest(fa[va], fb[vb]), config.rigid_threshold_m)
    else:
        ia, ib, fit = fitted(*pose.mutual_nearest(first.flat()[a][va], first.flat()[b][vb]), config.coarse_threshold_m)
        if fit is not None:
            moved = pb[vb].double() @ torch.from_numpy(fit.T[:3, :3]).T + torch.from_numpy(fit.T[:3, 3])
            guided = pose.guided_top_k(fa[va], fb[vb], pa[va], moved, config.guided_radius_m, config.guided_top_k)
            ia, ib, fit = fitted(*guided, config.rigid_threshold_m)
    rigid = pose.pose_error(fit.T if fit else None, T_gt)
    ja, jb = pose.mutual_nearest(fa[va], fb)
    ja = ka[ja]
    h, w = fs.features.shape[2:]
    from locus_core.geometry import patch_centers

    uv = patch_centers(h * fs.stride, w * fs.stride, fs.stride)
    pnp = pnp_ransac(pa[ja].numpy(), uv[jb].numpy(), fs.frames[b].K, config.pnp_threshold_px, seed=config.seed)
    pnp_err = pose.pose_error(pnp.T if pnp else None, T_gt)
    matches = {"uv_a": uv[ia].numpy(), "uv_b": uv[ib].numpy(),
               "inliers": fit.inliers if fit else np.zeros(len(ia), bool),
               "error_m": (fs.world_points[a][ia] - fs.world_points[b][ib]).norm(dim=-1).numpy()}
    return rigid, pnp_err, matches


def _usable_points(fs: FeatureSet, k: int, edge_tolerance: float) -> torch.Tensor:
    """(h*w,) patches of frame ``k`` with a 3D point that do not straddle a depth edge (any edge
    when ``edge_tolerance`` is inf)."""
    from locus_core.geometry import depth_edge_patches

    points = fs.cam_points[k]
    usable = torch.isfinite(points).all(-1)
    if np.isfinite(edge_tolerance):
        depth = torch.from_numpy(np.asarray(fs.frames[k].depth, np.float32))[None]
        usable &= ~depth_edge_patches(depth, points[None, :, 2], fs.stride, edge_tolerance)[0]
    return usable


def _lighterglue_pair(matcher: Any, keypoints: dict, frames: list[PosedFrame], a: int, b: int,
                      config: EvalConfig) -> tuple[tuple[float, float], tuple[float, float], dict]:
    """Rigid and PnP errors of XFeat + LighterGlue on pair (a, b), and its rigid matches (for the figure)."""
    from locus_core.evaluation.lighterglue import keypoint_depth
    from locus_core.geometry import unproject
    from locus_core.mapping.ransac import pnp_ransac, ransac_rigid

    for k in (a, b):
        if k not in keypoints:
            keypoints[k] = matcher.detect(frames[k].rgb)
    ua, ub = matcher.match(keypoints[a], keypoints[b])
    T_gt = np.linalg.inv(frames[a].T_world_cam) @ frames[b].T_world_cam

    def lift(frame: PosedFrame, uv: np.ndarray) -> np.ndarray:
        z = keypoint_depth(frame.depth, uv)
        return unproject(torch.from_numpy(uv).double(), torch.from_numpy(z).double(),
                         torch.from_numpy(frame.K).double()).numpy()

    pa, pb = lift(frames[a], ua), lift(frames[b], ub)
    both = np.isfinite(pa).all(1) & np.isfinite(pb).all(1)
    fit = ransac_rigid(pb[both], pa[both], config.rigid_threshold_m, seed=config.seed, robust=True)
    okay = np.isfinite(pa).all(1)
    pnp = pnp_ransac(pa[okay], ub[okay], frames[b].K, config.pnp_threshold_px, seed=config.seed)
    Ta, Tb = frames[a].T_world_cam, frames[b].T_world_cam
    error = np.linalg.norm(pa[both] @ Ta[:3, :3].T + Ta[:3, 3] - (pb[both] @ Tb[:3, :3].T + Tb[:3, 3]), axis=1)
    matches = {"uv_a": ua[both], "uv_b": ub[both], "inliers": fit.inliers if fit else np.zeros(int(both.sum()), bool),
               "error_m": error}
    return pose.pose_error(fit.T if fit else None, T_gt), pose.pose_error(pnp.T if pnp else None, T_gt), matches


def run_pose(feats: dict[str, FeatureSet], pairs: list[pose.PosePair], config: EvalConfig,
             first: dict[str, FeatureSet] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Relative pose of every pair by each model (``first``: per model, its first-stage features for
    two-stage matching) and by XFeat + LighterGlue."""
    from locus_core.evaluation.lighterglue import LighterGlueMatcher

    if not pairs:
        raise EvaluationError(f"no frame pairs with co-visibility in {config.pose_bins[0]}–{config.pose_bins[-1]}")
    matcher = LighterGlueMatcher(config.lighterglue_keypoints)
    errors: dict[str, dict[str, list]] = {n: {"rigid": [], "pnp": [], "match_error": []} for n in (*feats, "lighterglue")}
    keypoints: dict[int, Any] = {}
    example: dict[str, Any] = {}
    hardest = min(pairs, key=lambda p: p.covisibility)
    for p in tqdm(pairs, desc="relative pose", unit="pair", leave=False):
        for name, fs in _unique(feats).items():
            rigid, pnp, matches = _pose_pair(fs, p.i, p.j, config, first[name] if first else None)
            errors[name]["rigid"].append(rigid)
            errors[name]["pnp"].append(pnp)
            errors[name]["match_error"].append(matches["error_m"])
            if p is hardest:
                example.update(a=fs.frames[p.i].rgb, b=fs.frames[p.j].rgb, covisibility=p.covisibility)
                example[name] = matches
        rigid, pnp, matches = _lighterglue_pair(matcher, keypoints, feats["model"].frames, p.i, p.j, config)
        if p is hardest:
            example["lighterglue"] = matches
        errors["lighterglue"]["rigid"].append(rigid)
        errors["lighterglue"]["pnp"].append(pnp)
        errors["lighterglue"]["match_error"].append(matches["error_m"])
    for name in feats:
        if not errors[name]["rigid"]:  # a raw model is its own backbone baseline
            errors[name] = errors["model"]
    # the bin each pair was drawn in: comparing its co-visibility (float32, as float64 here) with the edges
    # again moved a pair at float32 0.7 (0.69999999) from 70-100% into 40-70%
    drawn_in = np.array([p.bin for p in pairs])

    def block(errs: dict[str, list]) -> dict[str, Any]:
        """Pose summaries of one method, overall and per bin; the 3D–3D ones add its match quality."""

        def summary(method: str, inside: np.ndarray) -> dict[str, Any]:
            e = np.array(errs[method], dtype=np.float64).reshape(-1, 2)[inside]
            out = pose.summarize(e, config.success_trans_m, config.success_rot_deg)
            if method == "rigid":
                matched = [m for m, keep in zip(errs["match_error"], inside) if keep]
                out.update(pose.match_quality(matched, config.rigid_threshold_m, config.rho))
            return out

        out: dict[str, Any] = {}
        for method in ("rigid", "pnp"):
            result = summary(method, np.ones(len(drawn_in), bool))
            result["bins"] = {pose.bin_label(lo, hi): summary(method, drawn_in == k)
                              for k, (lo, hi) in enumerate(zip(config.pose_bins[:-1], config.pose_bins[1:]))}
            if method == "rigid":
                out.update(result)
            else:
                out["pnp"] = result
        return out

    metrics = block(errors["model"])
    metrics["baseline_backbone"] = block(errors["backbone"])
    metrics["baseline_lighterglue"] = block(errors["lighterglue"])
    metrics["thresholds"] = {"success_trans_m": config.success_trans_m, "success_rot_deg": config.success_rot_deg,
                             "rigid_inlier_m": config.rigid_threshold_m, "pnp_inlier_px": config.pnp_threshold_px}
    return metrics, {"errors": {n: np.array(e["rigid"]) for n, e in errors.items()}, "example": example}


def run_consistency(feats: dict[str, FeatureSet], pairs: list[pose.PosePair]) -> dict[str, Any]:
    per_model = {}
    for name, fs in _unique(feats).items():
        angles, cosines = [], []
        for p in pairs:
            fa, fb = fs.frames[p.i], fs.frames[p.j]
            angles.append(consistency.viewpoint_change_deg(fa.T_world_cam, fb.T_world_cam))
            cosines.append(consistency.correspondence_cosine(
                fs.features[p.i], fs.features[p.j], fs.world_points[p.i], torch.from_numpy(fb.depth),
                torch.from_numpy(fb.K), torch.from_numpy(fb.T_world_cam), fs.stride).numpy())
        pooled = np.concatenate(cosines) if cosines else np.zeros(0)
        per_model[name] = {"mean_cosine": float(pooled.mean()) if len(pooled) else float("nan"),
                           "bins": consistency.bin_by_angle(np.array(angles), cosines)}
    return _suffixed(per_model, feats)


def run_segmentation(feats: dict[str, FeatureSet], train_feats: dict[str, FeatureSet] | None,
                     config: EvalConfig) -> dict[str, Any]:
    """Labels from the labelled frames (the train selection, or every other evaluated frame) to the
    others: ``miou`` by the paper's linear probe, ``knn_miou`` by k-NN label transfer; mIoU counts
    class 0 (background) as a class (``segmentation.mean_iou``)."""
    per_model: dict[str, dict[str, Any]] = {}
    for name, held in tqdm(_unique(feats).items(), desc="segmentation", unit="model", leave=False):
        if train_feats is not None:
            lab = train_feats[name]
            lab_pos, held_pos = list(range(len(lab.frames))), list(range(len(held.frames)))
        else:
            lab = held
            lab_pos, held_pos = list(range(0, len(held.frames), 2)), list(range(1, len(held.frames), 2))

        def labels(set_: FeatureSet, positions: list[int], kind: str) -> np.ndarray:
            return np.concatenate([segmentation.patch_labels(getattr(set_.frames[k], kind), set_.stride)
                                   for k in positions])

        train_f = torch.cat([lab.flat()[k] for k in lab_pos])
        query_f = torch.cat([held.flat()[k] for k in held_pos])
        train_y, truth = labels(lab, lab_pos, "semantic"), labels(held, held_pos, "semantic")
        probed = segmentation.linear_probe(train_f, train_y, query_f, epochs=config.probe_epochs, lr=config.probe_lr,
                                           seed=config.seed)
        miou, per_class = segmentation.mean_iou(probed, truth)
        knn_miou, knn_per_class = segmentation.mean_iou(
            segmentation.knn_transfer(train_f, train_y, query_f, k=config.knn), truth)
        per_model[name] = {"miou": miou, "per_class": per_class, "knn_miou": knn_miou, "knn_per_class": knn_per_class}
        if held.frames[held_pos[0]].instance is not None and lab.frames[lab_pos[0]].instance is not None:
            acc, n = segmentation.reidentification_accuracy(
                train_f, labels(lab, lab_pos, "instance"), query_f, labels(held, held_pos, "instance"))
            per_model[name]["instance_accuracy"] = acc
            instance_patches = n
    metrics = _suffixed(per_model, feats)
    metrics.update(labelled_frames=len(lab_pos), held_out_frames=len(held_pos), miou_classes=MIOU_CLASSES,
                   protocol=SEGMENTATION_PROTOCOL.format(epochs=config.probe_epochs, lr=config.probe_lr, k=config.knn))
    if "instance_accuracy" in metrics:
        metrics["instance_patches"] = instance_patches
    return metrics


def _suffixed(per_model: dict[str, dict[str, Any]], feats: dict[str, FeatureSet]) -> dict[str, Any]:
    """{"model": {k: v}, "backbone": {k: w}} → {k: v, k_backbone: w}; a raw model is its own baseline."""
    out: dict[str, Any] = {}
    for name, fs in feats.items():
        source = next(n for n, other in feats.items() if other is fs and n in per_model)
        suffix = "" if name == "model" else f"_{name}"
        out.update({f"{k}{suffix}": v for k, v in per_model[source].items()})
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
