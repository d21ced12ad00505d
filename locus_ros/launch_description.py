"""The launch description of the localizer node, shared by ``launch/localize.launch.py`` and
``launch/mapping.launch.py`` (which differ in mode, the meaning of ``map`` and the time the node
gets to save on shutdown).

Imported by launch files only: ``launch`` and ``launch_ros`` come with a ROS 2 install, not from PyPI.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# Launch argument -> node parameter, set after the params file only when the argument is not empty.
OPTIONAL_PARAMETERS = {"map": "map_path", "model": "model", "device": "device", "precision": "precision"}


def localizer_launch_description(mode: str, map_description: str, sigterm_timeout: str | None = None) -> LaunchDescription:
    """The node in ``mode``, its camera topics remapped to the launch arguments; ``sigterm_timeout``:
    seconds ros2 launch waits after SIGINT before SIGTERM (None: launch's default, 5)."""

    def node(context, *args, **kwargs):
        given = {
            parameter: ParameterValue(value, value_type=str)
            for argument, parameter in OPTIONAL_PARAMETERS.items()
            if (value := LaunchConfiguration(argument).perform(context))
        }
        timeout = {"sigterm_timeout": sigterm_timeout} if sigterm_timeout is not None else {}
        return [
            Node(
                package="locus_ros",
                executable="locus_localizer",
                name="locus_localizer",
                namespace=LaunchConfiguration("namespace"),
                output="screen",
                emulate_tty=True,
                **timeout,
                parameters=[
                    LaunchConfiguration("params_file"),
                    {"mode": mode, **given, "use_sim_time": LaunchConfiguration("use_sim_time")},
                ],
                remappings=[
                    ("rgb/image", LaunchConfiguration("rgb_topic")),
                    # Used instead of rgb/image when the params file sets rgb_transport: compressed.
                    ("rgb/image/compressed", [LaunchConfiguration("rgb_topic"), "/compressed"]),
                    ("depth/image", LaunchConfiguration("depth_topic")),
                    ("rgb/camera_info", LaunchConfiguration("camera_info_topic")),
                ],
            )
        ]

    args = [
        DeclareLaunchArgument("map", default_value="", description=map_description),
        DeclareLaunchArgument(
            "model", default_value="",
            description="checkpoint path, 'default' or backbone:NAME; empty: the params file's model",
        ),
        DeclareLaunchArgument(
            "device", default_value="",
            description="auto | cpu | cuda | onnxruntime | tensorrt (an unavailable one falls back, logged); "
                        "empty: the params file's device",
        ),
        DeclareLaunchArgument(
            "precision", default_value="",
            description="fp32 | bf16 | int8 (int8: ONNX Runtime with int8 MatMul/Gemm layers; falls back, logged); "
                        "empty: the params file's precision",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("locus_ros"), "config", "localize.yaml"]),
            description="ROS parameters file",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        # realsense-ros 4.x publishes under /camera/camera/... (and aligned depth only with align_depth.enable:=true).
        DeclareLaunchArgument("rgb_topic", default_value="/camera/color/image_raw"),
        DeclareLaunchArgument("depth_topic", default_value="/camera/aligned_depth_to_color/image_raw"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/color/camera_info"),
        DeclareLaunchArgument(
            "rviz", default_value="false",
            description="true: also start rviz2 on config/locus.rviz (the map's landmarks, the camera pose, TF, "
                        "the image; needs the rviz2 package)",
        ),
    ]
    # Not a dependency of the package: a robot runs headless, the view runs where rviz2 is installed.
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", PathJoinSubstitution([FindPackageShare("locus_ros"), "config", "locus.rviz"])],
        parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*args, OpaqueFunction(function=node), rviz])
