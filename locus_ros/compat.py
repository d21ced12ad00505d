"""Names rclpy moved between ROS 2 distributions, imported once for every node of the package."""

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble names it rclpy.qos_event
    from rclpy.qos_event import SubscriptionEventCallbacks

__all__ = ["SubscriptionEventCallbacks"]
