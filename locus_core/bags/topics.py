"""Topic and frame names of an RGB-D camera driver (RealSense ``rs_launch`` defaults), shared by
``convert`` (what it writes) and ``replay`` (what it reads unless told otherwise)."""

from __future__ import annotations

import numpy as np

RGB = "/camera/color/image_raw"
COMPRESSED = "/camera/color/image_raw/compressed"
DEPTH = "/camera/aligned_depth_to_color/image_raw"
CAMERA_INFO = "/camera/color/camera_info"
GROUND_TRUTH = "/ground_truth/pose"
TF = "/tf"
TF_STATIC = "/tf_static"

MAP_FRAME = "map"
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
CAMERA_LINK = "camera_link"
OPTICAL_FRAME = "camera_color_optical_frame"

# camera_link (x forward, y left, z up; REP 103) -> optical frame (x right, y down, z forward).
T_LINK_OPTICAL = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
# A camera 20 cm ahead of and 30 cm above the robot base, looking forward (as on a TurtleBot mast).
T_BASE_LINK = np.array([[1.0, 0.0, 0.0, 0.2], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.3], [0.0, 0.0, 0.0, 1.0]])
