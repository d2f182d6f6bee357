"""gen0_sim_node: the MuJoCo simulator with the ROS 2 face of a ros2_control robot.

Publishes /joint_states, /clock, /<camera>/image_raw + camera_info and /task_status; obeys
/<controller>/joint_trajectory (joint_trajectory_controller), /<controller>/commands (forward
position controllers) and /<controller>/target_frame (a Cartesian motion controller's PoseStamped,
for Meta-World's Sawyer) with the semantics of gen0_policy.sim.controllers; resets via
~/reset. With ``expert_teleop`` the task's scripted expert stands in for a person: its targets are
published on those same command topics (as a teleop would send them) and executed from there.
The simulated robot itself (physics and camera threads, pacing, controllers, episodes) is
:class:`gen0_policy.sim.server.SimServer`; this node only converts its callbacks and the commands to
and from messages, so the executor thread never waits for physics longer than one tick.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from gen0_msgs.msg import TaskStatus
from gen0_msgs.srv import ResetTask
from gen0_policy.errors import CommandError, Gen0Error
from gen0_policy.ros import conversions as conv
from gen0_policy.ros.qos import REQUESTS
from gen0_policy.ros.spin import run_node

if TYPE_CHECKING:
    from gen0_policy.sim.server import EpisodeStatus
    from gen0_policy.sim.teleop import ControllerCommand


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("gen0_sim")
        from gen0_policy.sim.server import SimConfig, SimServer  # heavy (mujoco): only when the node starts

        config = SimConfig.from_mapping(
            {f.name: self.declare_parameter(f.name, f.default).value for f in fields(SimConfig)}
        )
        self.sim = SimServer(
            config, self._publish_state, self._publish_teleop, self._publish_status, self._publish_images,
            watched=self._watched, alive=self.context.ok,
        )  # fmt: skip
        embodiment = self.sim.env.embodiment
        self.joint_pub = self.create_publisher(JointState, "joint_states", 10)
        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.status_pub = self.create_publisher(TaskStatus, "task_status", 10)
        self.camera_pubs = {
            cam.name: (
                self.create_publisher(Image, f"{cam.name}/image_raw", qos_profile_sensor_data),
                self.create_publisher(CameraInfo, f"{cam.name}/camera_info", qos_profile_sensor_data),
            )
            for cam in embodiment.cameras
        }
        self.teleop_pubs = {}  # controller -> publisher of the expert's commands
        for spec in embodiment.controllers:
            topic = spec.command_topic
            msg_type = PoseStamped if spec.cartesian else JointTrajectory if spec.trajectory else Float64MultiArray
            self.create_subscription(msg_type, topic, lambda msg, n=spec.name, t=topic: self._on_command(n, t, msg), 10)
            if config.expert_teleop:
                self.teleop_pubs[spec.name] = self.create_publisher(msg_type, topic, 10)
        self.create_service(ResetTask, "~/reset", self._on_reset, qos_profile=REQUESTS)
        self.sim.start()
        self.get_logger().info(
            f"simulating {embodiment.name} ({embodiment.dof} joints) on task {self.sim.env.task_name}, "
            f"controllers {[c.name for c in embodiment.controllers]}, real_time_factor {config.real_time_factor}"
            + (", the scripted expert publishing teleop commands" if config.expert_teleop else "")
        )

    # ------------------------------------------------------------ executor thread
    def _on_command(self, controller: str, topic: str, msg: JointTrajectory | Float64MultiArray | PoseStamped) -> None:
        try:
            if isinstance(msg, JointTrajectory):
                self.sim.command_trajectory(controller, conv.joint_trajectory_to_command(msg))
            elif isinstance(msg, PoseStamped):
                self.sim.command_positions(controller, conv.pose_stamped_to_array(msg))
            else:
                self.sim.command_positions(controller, conv.float64_multi_array_to_array(msg))
        except CommandError as exc:
            self.get_logger().error(f"rejected command on {self.resolve_topic_name(topic)}: {exc}")

    def _on_reset(self, request: ResetTask.Request, response: ResetTask.Response) -> ResetTask.Response:
        seed = self.sim.next_seed(request.seed)
        try:
            status = self.sim.reset(request.task, seed)
            response.success, response.instruction, response.seed = True, status.instruction, seed
            response.message = f"reset {status.task} with seed {seed}"
        except Gen0Error as exc:
            response.success, response.message, response.seed = False, str(exc), seed
        self.get_logger().info(response.message)
        self._publish_status(self.sim.status())
        return response

    def _watched(self) -> list[str]:
        """Cameras somebody subscribes to: only those are rendered."""
        return [name for name, pubs in self.camera_pubs.items() if any(p.get_subscription_count() for p in pubs)]

    # ------------------------------------------------------------ simulator threads
    def _publish_state(self, now: float, positions: np.ndarray, velocities: np.ndarray, efforts: np.ndarray) -> None:
        stamp = conv.to_time(now)
        self.clock_pub.publish(Clock(clock=stamp))
        names = self.sim.env.embodiment.joint_names
        self.joint_pub.publish(conv.joint_state_msg(names, positions, velocities, efforts, stamp))

    def _publish_teleop(self, commands: list[ControllerCommand]) -> None:
        """The expert's commands as a teleop sends them; our own subscriptions execute them."""
        for c in commands:
            if c.trajectory:  # one point, one control period ahead, stamp zero = on arrival
                msg = conv.joint_trajectory_msg(c.joints, [c.horizon], c.positions[None, :])
            else:
                msg = conv.float64_multi_array_msg(c.positions)
            self.teleop_pubs[c.controller].publish(msg)

    def _publish_images(self, now: float, images: dict[str, np.ndarray]) -> None:
        stamp = conv.to_time(now)
        for name, rgb in images.items():
            frame = f"{name}_optical_frame"
            image_pub, info_pub = self.camera_pubs[name]
            image_pub.publish(conv.array_to_image(rgb, stamp, frame))
            h, w = rgb.shape[:2]
            info_pub.publish(conv.camera_info(self.sim.env.embodiment.camera(name), w, h, stamp, frame))

    def _publish_status(self, status: EpisodeStatus) -> None:
        msg = TaskStatus(
            task=status.task, instruction=status.instruction, seed=status.seed, episode=status.episode,
            success=status.success, elapsed=status.elapsed,
            workspace_lower=list(status.workspace_lower), workspace_upper=list(status.workspace_upper),
        )  # fmt: skip
        msg.header.stamp = conv.to_time(status.stamp)
        self.status_pub.publish(msg)

    def destroy_node(self) -> None:
        self.sim.stop()  # its threads publish: stop them before the publishers go
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_node(SimNode, args)


if __name__ == "__main__":
    main()
