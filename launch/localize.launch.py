"""`ros2 launch locus_ros localize.launch.py map:=/path/to/map model:=default`

Starts the LoCUS localizer in localization mode: it subscribes to an RGB-D camera (remap the three
topics to your driver's), loads a landmark map and publishes place matches, the camera pose in the
map frame and (optionally) the map→odom transform.

`map`, `model`, `device` and `precision` are passed to the node only when given: otherwise the
params file's values hold (the defaults of config/localize.yaml unless `params_file:=` names another).
The arguments: `locus_ros/launch_description.py`.
"""

from locus_ros.launch_description import localizer_launch_description


def generate_launch_description():
    return localizer_launch_description(
        "localization", map_description="landmark map directory (locus map build); empty: the params file's map_path"
    )
