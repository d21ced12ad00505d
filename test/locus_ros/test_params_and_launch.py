"""The parameter table, the shipped YAML and the launch files agree (launch cannot run here)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import yaml

from locus_ros import params
from locus_ros.errors import ParameterError

ROOT = Path(__file__).resolve().parents[2]


def test_yaml_holds_every_parameter_with_its_default() -> None:
    values = yaml.safe_load((ROOT / "config" / "localize.yaml").read_text())["/**/locus_localizer"]["ros__parameters"]
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
        ("transform_tolerance", 1e10, "transform_tolerance must be <= 3600.0"),
        ("diagnostics_period", 1e-6, "diagnostics_period must be >= 0.05"),
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


def _module_constant(tree: ast.Module, name: str):
    value = next(n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == name)
    return ast.literal_eval(value)


DESCRIPTION = ROOT / "locus_ros" / "launch_description.py"  # what both launch files build the node with
LAUNCH_FILES = ["localize.launch.py", "mapping.launch.py"]


def _launch_arguments(path: Path) -> tuple[dict[str, object], set[str], dict[str, str]]:
    """Declared arguments with their defaults, parameter keys given to the node, and topic remappings."""
    tree = ast.parse(path.read_text())
    declared = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            default = next((k.value for k in node.keywords if k.arg == "default_value"), None)
            # A constant default as its value; a substitution (params_file's) as its ast node.
            declared[node.args[0].value] = default.value if isinstance(default, ast.Constant) else default
    optional = _module_constant(tree, "OPTIONAL_PARAMETERS")
    used = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "LaunchConfiguration"
        and isinstance(node.args[0], ast.Constant)
    } | set(optional)
    param_keys: set[str] = set(optional.values())
    remaps: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "parameters":
            for item in node.value.elts:
                if isinstance(item, ast.Dict):
                    param_keys |= {k.value for k in item.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.keyword) and node.arg == "remappings":
            for pair in node.value.elts:
                target = pair.elts[1]
                first = target.elts[0] if isinstance(target, ast.List) else target
                remaps[pair.elts[0].value] = first.args[0].value
    assert used <= set(declared), f"{path.name} uses undeclared arguments {used - set(declared)}"
    return declared, param_keys, remaps


def test_the_launch_description_matches_the_node() -> None:
    declared, param_keys, remaps = _launch_arguments(DESCRIPTION)
    assert {"map", "model", "device", "precision", "params_file", "namespace", "use_sim_time"} <= set(declared)
    assert param_keys - {"use_sim_time"} <= set(params.SPEC), "launch passes parameters the node does not declare"
    assert set(remaps) == {"rgb/image", "rgb/image/compressed", "depth/image", "rgb/camera_info"}
    assert remaps["rgb/image/compressed"] == "rgb_topic"
    assert {"rgb_topic", "depth_topic", "camera_info_topic"} <= set(declared)
    assert declared["use_sim_time"] == "false"


def test_launch_arguments_do_not_override_the_params_file_unless_given() -> None:
    """The node's parameters are [params_file, {...}]: a key in the dict wins over the file. The
    arguments mirroring file parameters default to "" and are put in the dict only when not empty."""
    tree = ast.parse(DESCRIPTION.read_text())
    declared, _, _ = _launch_arguments(DESCRIPTION)
    optional = _module_constant(tree, "OPTIONAL_PARAMETERS")
    assert optional == {"map": "map_path", "model": "model", "device": "device", "precision": "precision"}
    assert {argument: declared[argument] for argument in optional} == dict.fromkeys(optional, "")
    (localizer,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"
                    and any(k.arg == "executable" and getattr(k.value, "value", "") == "locus_localizer" for k in n.keywords)]
    (parameters,) = [k.value for k in localizer.keywords if k.arg == "parameters"]
    literal_keys = {k.value for d in parameters.elts if isinstance(d, ast.Dict) for k in d.keys if isinstance(k, ast.Constant)}
    assert literal_keys == {"mode", "use_sim_time"}, "only mode and use_sim_time are always set by the launch file"


def test_mapping_launch_gives_the_node_time_to_save_the_map() -> None:
    tree = ast.parse((ROOT / "launch" / "mapping.launch.py").read_text())
    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "localizer_launch_description"]
    keyword = next(k.value for k in call.keywords if k.arg == "sigterm_timeout")
    assert getattr(keyword, "id", "") == "SIGTERM_TIMEOUT" and float(_module_constant(tree, "SIGTERM_TIMEOUT")) >= 60


def _launch_file(name: str, monkeypatch: pytest.MonkeyPatch):
    """The launch file ``name`` loaded as ros2 launch loads it (launch_description imported afresh,
    from the launch modules in sys.modules now)."""
    import importlib.util

    monkeypatch.delitem(sys.modules, "locus_ros.launch_description", raising=False)
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), ROOT / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_description_passes_only_the_given_arguments(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through launch itself, where launch_ros is installed (a sourced ROS 2)."""
    pytest.importorskip("launch_ros", reason="launch/launch_ros are not installed (no PyPI wheels): the ast tests above cover the files")
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.utilities import perform_substitutions
    from launch_ros.utilities import evaluate_parameters

    description = _launch_file(name, monkeypatch).generate_launch_description()
    arguments = {a.name: a for a in description.entities if isinstance(a, DeclareLaunchArgument)}
    for argument in ("map", "model", "device", "precision"):
        assert perform_substitutions(LaunchContext(), arguments[argument].default_value) == ""
    (function,) = [e for e in description.entities if isinstance(e, OpaqueFunction)]

    def node_parameters(**given: str) -> dict:
        context = LaunchContext()
        context.launch_configurations.update(
            {name: "" for name in ("map", "model", "device", "precision", "namespace")},
        )
        context.launch_configurations.update(params_file="/nonexistent/params.yaml", use_sim_time="true", **given)
        (node,) = function.execute(context)
        normalized = getattr(node, "_Node__parameters", None)
        if normalized is None:
            pytest.skip("this launch_ros keeps a Node's parameters elsewhere")
        _, overrides = evaluate_parameters(context, normalized)
        return overrides

    mode = "mapping" if name.startswith("mapping") else "localization"
    assert node_parameters() == {"mode": mode, "use_sim_time": True}
    assert node_parameters(map="/maps/2024", model="default") == {
        "mode": mode, "map_path": "/maps/2024", "model": "default", "use_sim_time": True,
    }


def _stand_in_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Modules named launch, launch_ros, ... whose classes record their arguments: enough to run a
    launch file's own code (which arguments reach the node) where launch is not installed."""
    import types

    class Recorded:
        def __init__(self, *args, **kwargs) -> None:
            self.args, self.kwargs = args, kwargs

    class LaunchConfiguration(Recorded):
        def perform(self, context: dict) -> str:
            return context[self.args[0]]

    classes = {
        "launch": ["LaunchDescription"], "launch.actions": ["DeclareLaunchArgument", "OpaqueFunction"],
        "launch.conditions": ["IfCondition"],
        "launch.substitutions": ["PathJoinSubstitution"], "launch_ros": [], "launch_ros.actions": ["Node"],
        "launch_ros.parameter_descriptions": ["ParameterValue"], "launch_ros.substitutions": ["FindPackageShare"],
    }
    for module_name, names in classes.items():
        module = types.ModuleType(module_name)
        for class_name in names:
            setattr(module, class_name, type(class_name, (Recorded,), {}))
        monkeypatch.setitem(sys.modules, module_name, module)
    sys.modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_file_code_passes_only_the_given_arguments(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The launch file's own code run on stand-ins of launch's classes (launch is not installed here)."""
    _stand_in_launch(monkeypatch)
    description = _launch_file(name, monkeypatch).generate_launch_description()
    declared = {e.args[0]: e.kwargs for e in description.args[0] if type(e).__name__ == "DeclareLaunchArgument"}
    assert ("extended if it exists" in declared["map"]["description"]) == name.startswith("mapping")
    (function,) = [e for e in description.args[0] if type(e).__name__ == "OpaqueFunction"]
    mode = "mapping" if name.startswith("mapping") else "localization"

    def node(**given: str):
        context = dict.fromkeys(("map", "model", "device", "precision"), "") | given
        (node,) = function.kwargs["function"](context)
        params_file, overrides = node.kwargs["parameters"]
        assert params_file.args == ("params_file",)  # first: the dict after it wins
        def shown(value):  # a ParameterValue as (value, its keywords), a LaunchConfiguration as its name
            if isinstance(value, str):
                return value
            return (value.args[0], value.kwargs) if type(value).__name__ == "ParameterValue" else value.args

        return node, {key: shown(value) for key, value in overrides.items()}

    launched, overrides = node()
    assert overrides == {"mode": mode, "use_sim_time": ("use_sim_time",)}
    _, overrides = node(map="/maps/lab", precision="int8")
    assert overrides == {
        "mode": mode, "map_path": ("/maps/lab", {"value_type": str}), "precision": ("int8", {"value_type": str}),
        "use_sim_time": ("use_sim_time",),
    }
    assert launched.kwargs.get("sigterm_timeout") == ("60" if mode == "mapping" else None)
    assert launched.kwargs["package"] == "locus_ros" and launched.kwargs["executable"] == "locus_localizer"
    # rviz2 on the installed view, only with rviz:=true (default false), on the node's clock
    assert declared["rviz"]["default_value"] == "false"
    (rviz,) = [e for e in description.args[0] if type(e).__name__ == "Node"]
    assert rviz.kwargs["package"] == "rviz2" and rviz.kwargs["condition"].args[0].args == ("rviz",)
    flag, view = rviz.kwargs["arguments"]
    assert flag == "-d" and view.args[0][1:] == ["config", "locus.rviz"]
    assert view.args[0][0].args == ("locus_ros",)
    assert rviz.kwargs["parameters"][0]["use_sim_time"].args == ("use_sim_time",)


def test_the_rviz_view_shows_what_the_node_publishes() -> None:
    """config/locus.rviz (installed with config/): the node's landmarks (latched: transient local, or
    RViz never gets the map published before it started) and pose, in the map frame."""
    view = yaml.safe_load((ROOT / "config" / "locus.rviz").read_text())["Visualization Manager"]
    topics = {d["Class"].split("/")[1]: d["Topic"] for d in view["Displays"] if "Topic" in d}
    assert topics["MarkerArray"]["Value"] == "/locus_localizer/landmarks"
    assert topics["MarkerArray"]["Durability Policy"] == "Transient Local"
    assert topics["PoseWithCovariance"]["Value"] == "/locus_localizer/pose"
    declared, _, _ = _launch_arguments(DESCRIPTION)
    assert topics["Image"]["Value"] == declared["rgb_topic"]
    assert view["Global Options"]["Fixed Frame"] == params.defaults()["map_frame"]
    assert "install(DIRECTORY launch config DESTINATION share/locus_ros)" in (ROOT / "CMakeLists.txt").read_text()


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

