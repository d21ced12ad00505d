"""`ros2 launch locus_ros localize.launch.py map:=/path/to/map model:=default`

Starts the LoCUS localizer in localization mode: it subscribes to an RGB-D camera (remap the three
topics to your driver's), loads a landmark map and publishes place matches, the camera pose in the
map frame and (optionally) the map→odom transform.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument("map", default_value="", description="landmark map directory (locus map build)"),
        DeclareLaunchArgument("model", default_value="default", description="checkpoint path, or 'default'"),
        DeclareLaunchArgument(
            "device", default_value="auto",
            description="auto | cpu | cuda | onnxruntime | tensorrt (an unavailable one falls back, logged)",
        ),
        DeclareLaunchArgument(
            "precision", default_value="fp32",
            description="fp32 | bf16 | int8 (int8: ONNX Runtime with int8 MatMul/Gemm layers; falls back, logged)",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("locus_ros"), "config", "localize.yaml"]),
            description="ROS parameters file",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("rgb_topic", default_value="/camera/color/image_raw"),
        DeclareLaunchArgument("depth_topic", default_value="/camera/aligned_depth_to_color/image_raw"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/color/camera_info"),
    ]
    node = Node(
        package="locus_ros",
        executable="locus_localizer",
        name="locus_localizer",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "mode": "localization",
                "map_path": ParameterValue(LaunchConfiguration("map"), value_type=str),
                "model": ParameterValue(LaunchConfiguration("model"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "precision": ParameterValue(LaunchConfiguration("precision"), value_type=str),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
        remappings=[
            ("rgb/image", LaunchConfiguration("rgb_topic")),
            # Used instead of rgb/image when the params file sets rgb_transport: compressed.
            ("rgb/image/compressed", [LaunchConfiguration("rgb_topic"), "/compressed"]),
            ("depth/image", LaunchConfiguration("depth_topic")),
            ("rgb/camera_info", LaunchConfiguration("camera_info_topic")),
        ],
    )
    return LaunchDescription([*args, node])
