"""The policy node's commands to the robot's controllers: one publisher per controller that
config/embodiments/ names (or one joint_trajectory_controller for every joint when it names none).

A trajectory controller gets the planned future (a Horizon, stamped with its absolute start) when the
node has a command horizon, else one point per control tick; a forward position controller (or any
controller with ``output_mode: forward_position``) gets each tick's positions; a Cartesian motion
controller gets each tick's hand position as a PoseStamped (an end-effector robot, runtime/end_effector.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from gen0_policy.embodiment import ControllerSpec, Embodiment, command_topic
from gen0_policy.ros import conversions as conv
from gen0_policy.runtime import Command
from gen0_policy.runtime.horizon import Horizon


@dataclass(frozen=True)
class ControllerOutput:
    publisher: Any
    index: np.ndarray  # the controller's joints in the embodiment's order
    joints: tuple[str, ...]
    forward: bool  # Float64MultiArray per tick, not JointTrajectory
    cartesian: bool = False  # PoseStamped per tick (x, y, z of the hand)


def make_outputs(
    node: Any, embodiment: Embodiment, output_mode: str, **publisher_options: Any
) -> list[ControllerOutput]:
    """A publisher per controller on ``node`` (the caller destroys them at cleanup)."""
    outputs = []
    everything = ControllerSpec("joint_trajectory_controller", "joint_trajectory_controller", embodiment.joint_names)
    for spec in embodiment.controllers or [everything]:
        forward = not spec.trajectory or output_mode == "forward_position"
        if spec.cartesian:
            kind, topic = PoseStamped, spec.command_topic
        else:
            kind, topic = (Float64MultiArray, JointTrajectory)[not forward], command_topic(spec.name, not forward)
        pub = node.create_publisher(kind, topic, 10, **publisher_options)
        index = embodiment.joint_indices(spec.joints)
        outputs.append(ControllerOutput(pub, index, tuple(spec.joints), forward, spec.cartesian))
    return outputs


def publish_command(
    outputs: list[ControllerOutput], command: Command, period_s: float, horizons: bool, frame_id: str = "world"
) -> None:
    """One control tick: forward controllers get the positions, Cartesian ones the hand position;
    trajectory controllers get one point reached one period from now, unless horizons carry their future."""
    for out in outputs:
        positions = command.positions[out.index]
        if out.cartesian:
            out.publisher.publish(conv.pose_stamped_msg(positions, frame_id))
        elif out.forward:
            out.publisher.publish(conv.float64_multi_array_msg(positions))
        elif not horizons:
            out.publisher.publish(
                conv.joint_trajectory_msg(list(out.joints), [period_s], positions[None], start_time=0.0)
            )


def publish_horizon(outputs: list[ControllerOutput], horizon: Horizon) -> None:
    """The planned future to each trajectory controller, its own joints, stamped with the absolute start."""
    for out in outputs:
        if not out.forward:
            h = horizon.select(out.index)
            out.publisher.publish(
                conv.joint_trajectory_msg(list(out.joints), h.times, h.positions, h.velocities, None, h.start)
            )
