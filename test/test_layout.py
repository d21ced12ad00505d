"""The colcon build put everything where `ros2 launch` and `ros2 run` look for it."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

INSTALL = ROOT / "install"


@pytest.fixture(scope="module")
def install() -> Path:
    if not (INSTALL / "setup.sh").exists():
        pytest.skip("install/ not built: run `make setup` (scripts/bootstrap.sh)")
    return INSTALL


def test_ros_run_and_launch_targets(install: Path) -> None:
    train = install / "lib" / "locus_core" / "train"
    assert train.exists() and os.access(train, os.X_OK)
    for name in ("locus_localizer", "locus_player"):
        assert os.access(install / "lib" / "locus_ros" / name, os.X_OK)
    assert (install / "share" / "locus_ros" / "launch" / "localize.launch.py").exists()
    assert (install / "share" / "locus_ros" / "launch" / "mapping.launch.py").exists()
    assert (install / "share" / "locus_ros" / "config" / "localize.yaml").exists()
    # what both launch files import: the node's launch description, from the installed locus_ros
    assert list(install.glob("lib/python3*/site-packages/locus_ros/launch_description.py"))


def test_ament_index_has_both_package_names(install: Path) -> None:
    index = install / "share" / "ament_index" / "resource_index" / "packages"
    for name in ("locus", "locus_core", "locus_ros"):
        assert (index / name).exists(), name


def test_generated_interfaces_import() -> None:
    if not os.environ.get("AMENT_PREFIX_PATH"):
        pytest.skip("ROS environment not sourced (scripts/env.sh)")
    msg = importlib.import_module("locus.msg")
    srv = importlib.import_module("locus.srv")
    assert {"PlaceMatch", "PlaceMatchArray", "LocalizerStatus"} <= set(dir(msg))
    assert {"SaveMap", "LoadMap", "SetMode"} <= set(dir(srv))
    array = msg.PlaceMatchArray(matches=[msg.PlaceMatch(keyframe_id=3, inliers=40)])
    assert array.matches[0].keyframe_id == 3


def test_core_never_imports_rclpy() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "locus_core").rglob("*.py")
        if "import rclpy" in p.read_text() or "from rclpy" in p.read_text()
    ]
    assert offenders == []
