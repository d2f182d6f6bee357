"""Viewer node: shows a running policy in Rerun or Foxglove without touching its control path.

A separate process that only subscribes (cameras, /joint_states, the controllers' command topics,
the policy's chunks and status), so the policy never waits for it. Everything it logs goes through
:func:`gen0_policy.viewer.open_viewer` (parameter ``backend``); times are the messages' own stamps
(sim time in simulation).

    gen0_viewer_node --ros-args -p embodiment:=panda -p save_path:=/tmp/policy.rrd   # or -p spawn:=true
    gen0_viewer_node --ros-args -p backend:=foxglove -p spawn:=true   # Foxglove: ws://127.0.0.1:8765
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from gen0_msgs.msg import ActionChunk, PolicyStatus
from gen0_policy.embodiment import load_embodiment
from gen0_policy.errors import Gen0Error
from gen0_policy.ros.conversions import image_to_array, joint_state_positions, to_seconds
from gen0_policy.ros.spin import run_node
from gen0_policy.runtime.status import RuntimeState
from gen0_policy.viewer import open_viewer


class ViewerNode(Node):
    def __init__(self) -> None:
        super().__init__("gen0_viewer")
        self.embodiment = load_embodiment(self.declare_parameter("embodiment", "panda").value)
        policy = str(self.declare_parameter("policy_node", "/gen0_policy").value).rstrip("/")
        self.viewer = open_viewer(
            str(self.declare_parameter("backend", "rerun").value),
            f"gen0 {self.embodiment.name}",
            save=self.declare_parameter("save_path", "").value or None,
            live=bool(self.declare_parameter("spawn", False).value),
            address=str(self.declare_parameter("connect", "").value),
            model_image_size=int(self.declare_parameter("model_image_size", 64).value),
        )
        self.names = list(self.embodiment.joint_names)
        for cam in self.embodiment.cameras:
            self.create_subscription(
                Image,
                f"/{cam.name}/image_raw",
                lambda m, c=cam.name: self._guard(self._image, m, c),
                qos_profile_sensor_data,
            )
        self.create_subscription(JointState, "/joint_states", lambda m: self._guard(self._joints, m), 10)
        for controller in self.embodiment.controllers:
            joints = list(controller.joints)
            if controller.trajectory:
                kind, callback = JointTrajectory, lambda m, j=joints: self._guard(self._trajectory, m, j)
            else:
                kind, callback = Float64MultiArray, lambda m, j=joints: self._guard(self._forward, m, j)
            self.create_subscription(kind, f"/{controller.command_topic}", callback, 10)
        self.create_subscription(ActionChunk, f"{policy}/action_chunk", lambda m: self._guard(self._chunk, m), 10)
        self.create_subscription(PolicyStatus, f"{policy}/status", lambda m: self._guard(self._status, m), 10)
        self._last_state_time = 0.0

    def _guard(self, fn, *args) -> None:
        """A malformed message is logged and skipped: the viewer never dies of its input."""
        try:
            fn(*args)
        except (Gen0Error, ValueError) as exc:
            self.get_logger().warning(f"viewer skipped a message: {exc}", throttle_duration_sec=5.0)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _image(self, msg: Image, camera: str) -> None:
        self.viewer.camera(to_seconds(msg.header.stamp), camera, image_to_array(msg))

    def _joints(self, msg: JointState) -> None:
        self.viewer.joints(to_seconds(msg.header.stamp), self.names, joint_state_positions(msg, self.names))

    def _trajectory(self, msg: JointTrajectory, joints: list[str]) -> None:
        if msg.points:
            stamp = to_seconds(msg.header.stamp) or self._now()  # zero stamp: "now" in JTC semantics
            self.viewer.joints(stamp, list(msg.joint_names) or joints, msg.points[0].positions, "command")

    def _forward(self, msg: Float64MultiArray, joints: list[str]) -> None:
        self.viewer.joints(self._now(), joints, msg.data, "command")

    def _chunk(self, msg: ActionChunk) -> None:
        positions = list(msg.positions)
        D = len(msg.joint_names)
        if D == 0 or len(positions) != msg.horizon * D:
            raise ValueError(f"chunk of {len(positions)} values for {msg.horizon} steps x {D} joints")
        rows = [positions[i * D : (i + 1) * D] for i in range(msg.horizon)]
        self.viewer.chunk(
            to_seconds(msg.header.stamp), list(msg.joint_names), msg.step_dt, rows, msg.committed_prefix_length
        )

    def _status(self, msg: PolicyStatus) -> None:
        state = RuntimeState(msg.state).label if msg.state <= max(RuntimeState) else f"state {msg.state}"
        self.viewer.status(to_seconds(msg.header.stamp), state, msg.reason, msg.uncertainty, msg.uncertainty_threshold)

    def destroy_node(self) -> None:
        self.viewer.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run_node(ViewerNode, args)


if __name__ == "__main__":
    main()
