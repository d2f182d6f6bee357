"""The thin ROS 2 layer: rclpy nodes and message <-> numpy conversions, nothing else."""
