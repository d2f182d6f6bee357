"""gen0-ros: a GEN-0-style embodied foundation policy as a ROS 2 package suite.

The core (model, data, train, runtime, sim, scaling) never imports rclpy; ``gen0_policy.ros``
is the thin ROS 2 layer on top of it.
"""

__version__ = "0.1.0"
