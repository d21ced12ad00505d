"""ROS bags as evaluation input: write a posed data set as a rosbag2 (``convert``), replay a bag
offline through the node's code path (``replay``) and score it (``evaluate``). ROS-free: bags are
read and written with ``rosbags``; rclpy is only imported by ``locus bag play``."""
