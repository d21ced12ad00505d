"""The parameter table, the shipped YAML and the launch files agree (launch cannot run here)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from locus_ros import params
from locus_ros.errors import ParameterError

ROOT = Path(__file__).resolve().parents[2]


def test_yaml_holds_every_parameter_with_its_default() -> None:
    values = yaml.safe_load((ROOT / "config" / "localize.yaml").read_text())["locus_localizer"]["ros__parameters"]
    assert values == params.defaults()
    assert params.from_mapping(values) == params.NodeParams()


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("mode", "slam", "mode must be one of localization, mapping; got 'slam'"),
        ("device", "tpu", "device must be one of auto, cpu, cuda, onnxruntime, tensorrt"),
        ("transform_tolerance", -0.5, "transform_tolerance must be >= 0.0"),
        ("sync_max_interval", 0.0, "sync_max_interval must be > 0.0"),
        ("worker_queue_size", 0, "worker_queue_size must be >= 1"),
        ("max_matches", 2.5, "max_matches must be a int; got float"),
        ("publish_tf", 1, "publish_tf must be a bool"),
        ("map_frame", "", "map_frame must be a non-empty TF frame name"),
        ("map_frame", "/map", "map_frame must be a non-empty TF frame name without a leading '/'"),  # tf2 refuses it
        ("odom_frame", "odom frame", "odom_frame must be a non-empty TF frame name"),
        ("mapping_frame", "/odom", "mapping_frame must be a non-empty TF frame name without a leading '/'"),
        # inf stamps overflow the stamp conversion; an inf timeout blocks the worker for good.
        ("transform_tolerance", float("inf"), "transform_tolerance must be finite; got inf"),
        ("tf_timeout", float("inf"), "tf_timeout must be finite; got inf"),
        ("sync_max_interval", float("inf"), "sync_max_interval must be finite"),
        ("diagnostics_period", float("nan"), "diagnostics_period must be finite"),
        ("model", "", "model must not be empty"),
        ("nonsense", 1, "unknown parameter 'nonsense'"),
    ],
)
def test_bad_values_are_rejected_with_the_reason(name: str, value: object, reason: str) -> None:
    assert reason in params.check(name, value)


@pytest.mark.parametrize(("name", "value"), [("mapping_frame", ""), ("mapping_frame", "odom"), ("odom_frame", "robot1/odom")])
def test_good_values_are_accepted(name: str, value: object) -> None:
    assert params.check(name, value) == ""


def test_odom_frame_must_differ_from_map_frame() -> None:
    with pytest.raises(ParameterError, match="odom_frame must differ from map_frame \\(both 'map'\\)"):
        params.from_mapping({"odom_frame": "map"})
    with pytest.raises(ParameterError, match="odom_frame must differ from map_frame \\(both 'world'\\)"):
        params.from_mapping({"map_frame": "world", "odom_frame": "world"})


def test_devices_and_precisions_are_those_of_locus_core() -> None:
    from locus_core.runtime import DEVICES, PRECISIONS

    assert params.DEVICES == DEVICES and params.PRECISIONS == PRECISIONS


def test_from_mapping_collects_every_reason_and_ignores_ros_parameters() -> None:
    assert params.from_mapping({"transform_tolerance": 1, "use_sim_time": True}).transform_tolerance == 1.0
    with pytest.raises(ParameterError, match=r"mode must be .*; sync_queue_size must be >= 1"):
        params.from_mapping({"mode": "x", "sync_queue_size": 0})


def _launch_arguments(path: Path) -> tuple[set[str], set[str], dict[str, str]]:
    """Declared argument names, parameter keys given to the node, and topic remappings."""
    tree = ast.parse(path.read_text())
    declared = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"
    }
    used = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "LaunchConfiguration"
    }
    param_keys: set[str] = set()
    remaps: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            param_keys |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.keyword) and node.arg == "remappings":
            for pair in node.value.elts:
                target = pair.elts[1]
                first = target.elts[0] if isinstance(target, ast.List) else target
                remaps[pair.elts[0].value] = first.args[0].value
    assert used <= declared, f"{path.name} uses undeclared arguments {used - declared}"
    return declared, param_keys, remaps


@pytest.mark.parametrize("name", ["localize.launch.py", "mapping.launch.py"])
def test_launch_files_match_the_node(name: str) -> None:
    path = ROOT / "launch" / name
    compile(path.read_text(), str(path), "exec")
    declared, param_keys, remaps = _launch_arguments(path)
    assert {"map", "model", "device", "params_file", "namespace", "use_sim_time"} <= declared
    assert param_keys - {"use_sim_time"} <= set(params.SPEC), "launch passes parameters the node does not declare"
    assert set(remaps) == {"rgb/image", "rgb/image/compressed", "depth/image", "rgb/camera_info"}
    assert remaps["rgb/image/compressed"] == "rgb_topic"
    assert {"rgb_topic", "depth_topic", "camera_info_topic"} <= declared


def test_every_node_executable_is_installed_and_calls_a_main() -> None:
    """scripts/ros/* are what `ros2 run` finds (install/lib/<package>/); each imports a real main."""
    import importlib

    cmake = (ROOT / "CMakeLists.txt").read_text()
    for script in sorted((ROOT / "scripts" / "ros").iterdir()):
        assert f"scripts/ros/{script.name}" in cmake, f"{script.name} is not installed by CMakeLists.txt"
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
        tree = ast.parse(script.read_text())
        imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("locus")]
        assert imports and imports[0].names[0].name == "main", script.name
        assert callable(getattr(importlib.import_module(imports[0].module), "main")), script.name

