"""LoCUS: learned multiscale, 3D-consistent image features from posed RGB-D images.

The ROS-free library: data, models, the loss, training, evaluation, mapping and runtimes.
It never imports rclpy; the ROS 2 front end lives in :mod:`locus_ros`.
"""

__version__ = "0.1.0"
