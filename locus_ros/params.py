"""The node's parameters: defaults, descriptions and validation, in one table.

``config/localize.yaml`` holds the same names; a test keeps the two in step. Validation returns the
reason a value is rejected (the node's on-set-parameters callback sends it back to the caller), so a
bad value is refused up front instead of crashing the worker later. Parameters that shape the graph
(topics, QoS, queues) are read-only: changing them needs a restart.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from locus_ros.errors import ParameterError

MODES = ("localization", "mapping")
QOS = ("sensor_data", "reliable")
DEVICES = ("auto", "cpu", "cuda", "onnxruntime", "tensorrt")  # locus_core.runtime.DEVICES (a test keeps them equal)
PRECISIONS = ("fp32", "bf16", "int8")  # locus_core.runtime.PRECISIONS (likewise)


@dataclass(frozen=True)
class NodeParams:
    mode: str = "localization"
    map_path: str = ""
    model: str = "default"
    device: str = "auto"
    precision: str = "fp32"
    localizer_config: str = ""
    map_frame: str = "map"
    odom_frame: str = "odom"
    mapping_frame: str = ""
    publish_tf: bool = True
    transform_tolerance: float = 0.1
    tf_timeout: float = 0.1
    sync_max_interval: float = 0.05
    sync_queue_size: int = 10
    worker_queue_size: int = 1
    image_qos: str = "sensor_data"
    camera_info_qos: str = "sensor_data"
    rgb_transport: str = "raw"
    rectified: bool = False
    max_matches: int = 5
    diagnostics_period: float = 1.0


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str]:
    return lambda v: "" if v in options else f"must be one of {', '.join(options)}; got {v!r}"


def _at_least(low: float, *, strict: bool = False, at_most: float = math.inf) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not math.isfinite(v):  # inf stamps overflow, an inf timeout blocks the worker for good
            return f"must be finite; got {v!r}"
        if v > at_most:
            return f"must be <= {at_most}; got {v!r}"
        ok = v > low if strict else v >= low
        return "" if ok else f"must be {'>' if strict else '>='} {low}; got {v!r}"

    return check


def _frame_name(v: Any) -> str:
    # tf2's rule: a leading '/' (ROS 1's global names) is refused; an inner one (robot1/odom) is not.
    ok = v and not v.startswith("/") and not any(c.isspace() for c in v)
    return "" if ok else f"must be a non-empty TF frame name without a leading '/' or spaces; got {v!r}"


def _optional_frame_name(v: Any) -> str:
    return _frame_name(v) if v else ""


# name -> (description, validator or None, read_only)
SPEC: dict[str, tuple[str, Callable[[Any], str] | None, bool]] = {
    "mode": ("localization (match against a loaded map) or mapping (insert keyframes posed by TF)", _one_of(MODES), False),
    "map_path": ("map directory: loaded in localization mode; saved to (and extended if it exists) in mapping mode; "
                 "setting it at runtime loads it, as ~/load_map does (refused with the reason when it cannot be loaded)", None, False),
    "model": ("'default', a checkpoint path, or backbone:NAME", lambda v: "" if v else "must not be empty", True),
    "device": ("auto | cpu | cuda | onnxruntime | tensorrt; an unavailable runtime falls back (logged) along tensorrt, cuda, onnxruntime, cpu", _one_of(DEVICES), True),
    "precision": ("fp32 | bf16 (eager PyTorch under autocast, where the CPU/GPU has bf16 units) | int8 (ONNX Runtime with int8 MatMul/Gemm layers: 1.5-2.2x on ViT backbones); falls back, logged", _one_of(PRECISIONS), True),
    "localizer_config": ("YAML file of LocalizerConfig overrides; empty = defaults", None, True),
    "map_frame": ("REP 105 map frame", _frame_name, False),
    "odom_frame": ("REP 105 odom frame (not map_frame)", _frame_name, False),
    "mapping_frame": ("mapping mode: the fixed frame camera poses come from (empty = map_frame; odom_frame = map from odometry)", _optional_frame_name, False),
    "publish_tf": ("publish map->odom (needs odom->camera in TF)", None, False),
    # a stamp's seconds are int32: a tolerance of ~1e9 s overflowed it on every localized frame
    "transform_tolerance": ("s: map->odom is stamped this far in the future", _at_least(0.0, at_most=3600.0), False),
    "tf_timeout": ("s: how long a frame waits for its TF before it is skipped", _at_least(0.0), False),
    "sync_max_interval": ("s: largest stamp spread between rgb, depth and camera_info", _at_least(0.0, strict=True), True),
    "sync_queue_size": ("messages per input kept while waiting for partners", _at_least(1), True),
    "worker_queue_size": ("frames waiting for inference; the newest replaces the oldest", _at_least(1), True),
    "image_qos": ("rgb and depth subscriptions: sensor_data (best effort: takes best-effort and reliable publishers) | reliable", _one_of(QOS), True),
    "camera_info_qos": ("camera_info subscription: sensor_data | reliable", _one_of(QOS), True),
    "rgb_transport": ("raw (rgb/image) | compressed (rgb/image/compressed)", _one_of(("raw", "compressed")), True),
    "rectified": ("true: the images are rectified (image_proc's image_rect): intrinsics from camera_info P[:3, :3], "
                  "distortion ignored; false: intrinsics from K (distortion warned about)", None, True),
    "max_matches": ("place matches published per frame", _at_least(1), False),
    # a timer firing every microsecond would take the executor from the camera callbacks
    "diagnostics_period": ("s between /diagnostics and ~/status messages", _at_least(0.05), True),
}
assert set(SPEC) == {f.name for f in dataclasses.fields(NodeParams)}, "SPEC and NodeParams disagree"


def defaults() -> dict[str, Any]:
    return dataclasses.asdict(NodeParams())


def check(name: str, value: Any) -> str:
    """Why ``value`` is not acceptable for parameter ``name``; empty when it is."""
    if name not in SPEC:
        return f"unknown parameter {name!r}"
    expected = type(getattr(NodeParams(), name))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return f"{name} must be a {expected.__name__}; got {type(value).__name__} {value!r}"
    validator = SPEC[name][1]
    reason = validator(value) if validator else ""
    return f"{name} {reason}" if reason else ""


def from_mapping(values: Mapping[str, Any]) -> NodeParams:
    """NodeParams from parameter values (unknown names ignored: ROS adds its own, e.g. use_sim_time).

    Raises:
        ParameterError: listing every rejected value with its reason, and values that conflict.
    """
    known = {k: v for k, v in values.items() if k in SPEC}
    reasons = [r for r in (check(k, v) for k, v in known.items()) if r]
    frames = {**defaults(), **known}
    if frames["odom_frame"] == frames["map_frame"]:
        reasons.append(f"odom_frame must differ from map_frame (both {frames['map_frame']!r}): the node publishes map->odom")
    if reasons:
        raise ParameterError("; ".join(reasons))
    coerced = {k: float(v) if isinstance(getattr(NodeParams(), k), float) else v for k, v in known.items()}
    return dataclasses.replace(NodeParams(), **coerced)
