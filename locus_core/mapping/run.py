"""``locus map localize`` as a function: localize a data set against a map and write the report."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from locus_core.durable import written_last
from locus_core.mapping.errors import MapError

log = logging.getLogger(__name__)


def model_spec_of(landmark_map: Any) -> str:
    """The model spec recorded at build time (or implied by a raw-backbone hash)."""
    spec = landmark_map.model_info.get("spec")
    if spec:
        return str(spec)
    if landmark_map.model_hash.startswith("backbone-"):
        return "backbone:" + landmark_map.model_hash[len("backbone-"):]
    raise MapError(f"map does not record its model spec (hash {landmark_map.model_hash}); pass --model")


def localize_dataset(
    map_dir: Path,
    data: str,
    frames: str | None,
    out: Path,
    *,
    model_spec: str | None = None,
    config_path: Path | None = None,
    overrides: list[str] | None = None,
    device: str = "auto",
    precision: str = "fp32",
) -> dict[str, Any]:
    """Localize every frame of ``data`` (``frames`` selection) against the map in ``map_dir`` through
    the node's ``FrameProcessor``: the model on the runtime ``device`` and ``precision`` resolve to
    (``locus_core.runtime.create_engine``), LocalizerConfig from ``config_path`` and ``overrides``.

    Writes ``out/metrics.json`` (see ``localization_metrics``), ``out/config.yaml`` (localizer and
    map configs, model), ``out/results.csv`` (one row per query) and ``out/trajectory.png``.
    Co-visibility (for place recall) is computed when the map was built from the same data set.
    Returns the metrics (NaN as None).
    """
    import torch
    import yaml

    from locus_core.config import config_to_dict
    from locus_core.data import open_dataset
    from locus_core.mapping.evaluate import (
        camera_points,
        covisibility,
        localization_metrics,
        plot_trajectory,
        source_keyframes,
        to_json,
    )
    from locus_core.mapping.landmark_map import LandmarkMap
    from locus_core.pipeline import FrameProcessor

    landmark_map = LandmarkMap.load(map_dir)
    spec = model_spec or model_spec_of(landmark_map)
    # the data and the report folder before the model (an engine build can take minutes) and the
    # run: the report was written only after every query was localized
    dataset = open_dataset(data, frames)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MapError(f"{out}: cannot write the report there ({exc.strerror or exc})") from None
    processor = FrameProcessor(spec, device, config_path or "", precision, overrides=overrides or [])
    model = processor.model
    if model.hash != landmark_map.model_hash:
        raise MapError(
            f"{Path(map_dir) / 'manifest.json'}: map was built with model {landmark_map.model_hash}, but {spec} "
            f"is {model.hash}; rebuild the map with this model"
        )
    processor.use_map(landmark_map, Path(map_dir))
    config = processor.config
    # Per query only what the metrics need, not the frame: a long sequence's images would not fit.
    results, gt, names, points = [], [], [], []
    for i in range(len(dataset)):
        frame = dataset[i]
        results.append(processor.localize(frame))
        gt.append(frame.T_world_cam)
        names.append(frame.frame_id)
        points.append(camera_points(frame))
        if (i + 1) % 50 == 0:
            log.info("%d/%d queries, %d localized", i + 1, len(dataset), sum(r.localized for r in results))
    keyframes = source_keyframes(landmark_map, Path(dataset.path))
    covis = None if keyframes is None else covisibility(list(zip(points, gt)), keyframes)
    metrics = to_json(localization_metrics(results, gt, covis))
    metrics["map"] = str(map_dir)
    metrics["data"] = str(data)
    metrics["frames"] = frames
    metrics["model"] = {"spec": spec, "hash": model.hash, "runtime": processor.runtime}
    metrics["threads"] = torch.get_num_threads()
    with written_last(out / "metrics.json", json.dumps(metrics, indent=2)):
        (out / "config.yaml").write_text(yaml.safe_dump(
            {"localizer": config_to_dict(config), "map": config_to_dict(landmark_map.config), "model": {"spec": spec, "hash": model.hash}},
            sort_keys=False,
        ))
        _write_results(out / "results.csv", names, results)
        plot_trajectory(out / "trajectory.png", results, gt, landmark_map.keyframes.T_map_kf,
                        title=f"{Path(str(data)).name} vs map {Path(map_dir).name}")
    return metrics


def _write_results(path: Path, frame_ids: list[str], results: list[Any]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame_id", "localized", "reason", "method", "inliers", "keyframe", "latency_ms",
                    "tx", "ty", "tz", "qx", "qy", "qz", "qw"])
        for frame_id, r in zip(frame_ids, results):
            pose = [""] * 7
            if r.T_map_cam is not None:
                pose = list(r.T_map_cam[:3, 3]) + list(_quaternion(r.T_map_cam[:3, :3]))
            w.writerow([frame_id, int(r.localized), r.reason, r.method, r.inliers,
                        r.matches[0].keyframe_id if r.matches else "", f"{r.latency_ms:.1f}", *pose])


def _quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return float(x), float(y), float(z), float(w)
