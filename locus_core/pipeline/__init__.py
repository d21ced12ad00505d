"""The frame pipeline shared by the ROS node (``locus_ros``) and offline replay (``locus bag eval``).

ROS-free: messages are read through their fields only (rclpy and ``rosbags`` messages alike).
``sync`` pairs rgb, depth and camera_info by stamp; ``messages`` turns a synchronised set into a
``PosedFrame`` (with the node's checks); ``processor`` holds the model (on the runtime chosen by
``locus_core.runtime.create_engine``), the map and the localizer.
"""

from locus_core.pipeline.errors import ConversionError, PipelineError, UnsupportedEncoding
from locus_core.pipeline.messages import frame_from_messages
from locus_core.pipeline.processor import FrameProcessor
from locus_core.pipeline.sync import ApproximateTimeSynchronizer, SyncStats

__all__ = [
    "ApproximateTimeSynchronizer",
    "ConversionError",
    "FrameProcessor",
    "PipelineError",
    "SyncStats",
    "UnsupportedEncoding",
    "frame_from_messages",
]
