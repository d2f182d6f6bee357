"""Leader-arm mirror node: /leader/joint_states -> the follower's ros2_control command topics.

Joint-trajectory controllers get a one-point JointTrajectory on ``/<controller>/joint_trajectory``,
forward position controllers a Float64MultiArray on ``/<controller>/commands`` (the ros2_control
conventions). The limits and the deadman live in :class:`gen0_policy.runtime.teleop.LeaderMirror`.
"""

from __future__ import annotations

import time

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from gen0_policy.embodiment import load_embodiment
from gen0_policy.errors import Gen0Error
from gen0_policy.ros.conversions import float64_multi_array_msg, joint_state_positions, joint_trajectory_msg
from gen0_policy.ros.spin import run_node
from gen0_policy.runtime.teleop import LeaderMirror, MirrorConfig


class LeaderMirrorNode(Node):
    def __init__(self) -> None:
        super().__init__("leader_mirror")
        self.embodiment = load_embodiment(self.declare_parameter("embodiment", "panda").value)
        leader_joints = list(self.declare_parameter("leader_joints", [""]).value)
        follower_joints = list(self.declare_parameter("follower_joints", [""]).value)
        joint_map = {lj: fj for lj, fj in zip(leader_joints, follower_joints, strict=True) if lj}
        config = MirrorConfig(
            timeout_s=float(self.declare_parameter("deadman_timeout", 0.25).value),
            max_velocity_scale=float(self.declare_parameter("max_velocity_scale", 0.5).value),
            joint_map=joint_map,
        )
        rate = float(self.declare_parameter("rate_hz", 100.0).value)
        self.horizon = float(self.declare_parameter("command_horizon", 0.05).value)
        self.dt = 1.0 / rate
        self.mirror = LeaderMirror(self.embodiment, config)
        leader_topic = self.declare_parameter("leader_topic", "/leader/joint_states").value
        follower_topic = self.declare_parameter("follower_state_topic", "/joint_states").value

        names = self.embodiment.joint_names
        self.outputs = []  # (publisher, indices into the embodiment's joints, is_trajectory, joint names)
        for controller in self.embodiment.controllers:
            idx = self.embodiment.joint_indices(controller.joints)
            kind = JointTrajectory if controller.trajectory else Float64MultiArray
            pub = self.create_publisher(kind, f"/{controller.command_topic}", 10)
            self.outputs.append((pub, idx, controller.trajectory, controller.joints))
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.state_pub = self.create_publisher(String, "~/state", latched)
        self.state = ""
        self.create_subscription(JointState, leader_topic, self.on_leader, qos_profile_sensor_data)
        self.create_subscription(
            JointState, follower_topic, lambda m: self.mirror.on_follower(joint_state_positions(m, names)), 10
        )
        self.create_timer(self.dt, self.tick)
        self.get_logger().info(f"mirroring {leader_topic} onto {self.embodiment.name} at {rate:.0f} Hz")

    def on_leader(self, msg: JointState) -> None:
        try:
            self.mirror.on_leader(msg.name, msg.position, time.monotonic())
        except Gen0Error as exc:
            self.get_logger().error(f"ignoring leader joint state: {exc}", throttle_duration_sec=1.0)

    def tick(self) -> None:
        target = self.mirror.step(time.monotonic(), self.dt)
        if self.mirror.state != self.state:
            self.state = self.mirror.state
            self.state_pub.publish(String(data=self.state))
            if self.state == "stale":
                self.get_logger().warning("leader data stale: stopped commanding the follower")
            else:
                self.get_logger().info(f"leader mirror: {self.state}")
        if target is None:
            return
        for pub, idx, is_trajectory, joints in self.outputs:
            if is_trajectory:
                pub.publish(joint_trajectory_msg(joints, [self.horizon], target[idx][None, :]))
            else:
                pub.publish(float64_multi_array_msg(target[idx]))


def main(args: list[str] | None = None) -> None:
    run_node(LeaderMirrorNode, args)


if __name__ == "__main__":
    main()
