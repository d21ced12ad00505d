"""`ros2 launch locus_ros mapping.launch.py map:=/path/to/new_map`

Starts the LoCUS node in mapping mode: camera poses come from TF (map→camera, e.g. from a SLAM
system) and keyframes are inserted into the landmark map, which is saved on request
(~/save_map) and on shutdown.

`map`, `model`, `device` and `precision` are passed to the node only when given: otherwise the
params file's values hold (the defaults of config/localize.yaml unless `params_file:=` names another).
The arguments: `locus_ros/launch_description.py`.
"""

from locus_ros.launch_description import localizer_launch_description

# On shutdown the node saves the map (rebuilding its index first when it grew): ros2 launch's
# default of 5 s between SIGINT and SIGTERM (then 5 s to SIGKILL) can cut a large save short.
SIGTERM_TIMEOUT = "60"


def generate_launch_description():
    return localizer_launch_description(
        "mapping",
        map_description="where to save the landmark map (extended if it exists); empty: the params file's map_path",
        sigterm_timeout=SIGTERM_TIMEOUT,
    )
