"""LoCUS: learned multiscale, 3D-consistent image features from posed RGB-D images.

The ROS-free library: data, models, the loss, training, evaluation, mapping and runtimes.
It never imports rclpy; the ROS 2 front end lives in :mod:`locus_ros`.
"""

import os

# OpenMP threads that spin while waiting make many small torch ops 100-500x slower on a loaded
# machine (robots share their CPU); passive waiting costs nothing measurable when the CPU is idle.
# It must be set before torch starts its thread pool, hence here, before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
