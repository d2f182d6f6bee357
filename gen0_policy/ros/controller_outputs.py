"""The policy node's commands to the robot's controllers: a publisher per route of runtime/routing.py
(which controller gets what: planned horizons, per-tick positions or hand poses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from gen0_policy.embodiment import Embodiment
from gen0_policy.ros import conversions as conv
from gen0_policy.runtime import Command
from gen0_policy.runtime.horizon import Horizon
from gen0_policy.runtime.routing import Route, horizon_targets, routes, tick_targets

MESSAGE_TYPES = {"trajectory": JointTrajectory, "forward": Float64MultiArray, "cartesian": PoseStamped}


@dataclass(frozen=True)
class ControllerOutputs:
    """The routes and a publisher for each, keyed by controller name."""

    routes: list[Route]
    publishers: dict[str, Any]


def make_outputs(node: Any, embodiment: Embodiment, output_mode: str, **publisher_options: Any) -> ControllerOutputs:
    """A publisher per controller on ``node`` (the caller destroys them at cleanup)."""
    routes_ = routes(embodiment, output_mode)
    publishers = {
        r.name: node.create_publisher(MESSAGE_TYPES[r.kind], r.topic, 10, **publisher_options) for r in routes_
    }
    return ControllerOutputs(routes_, publishers)


def publish_command(
    outputs: ControllerOutputs, command: Command, period_s: float, horizons: bool, frame_id: str = "world"
) -> None:
    """One control tick: forward controllers get the positions, Cartesian ones the hand position;
    trajectory controllers get one point reached one period from now, unless horizons carry their future."""
    for route, positions in tick_targets(outputs.routes, command, horizons):
        publisher = outputs.publishers[route.name]
        if route.kind == "cartesian":
            publisher.publish(conv.pose_stamped_msg(positions, frame_id))
        elif route.kind == "forward":
            publisher.publish(conv.float64_multi_array_msg(positions))
        else:
            publisher.publish(
                conv.joint_trajectory_msg(list(route.joints), [period_s], positions[None], start_time=0.0)
            )


def publish_horizon(outputs: ControllerOutputs, horizon: Horizon) -> None:
    """The planned future to each trajectory controller, its own joints, stamped with the absolute start."""
    for route, h in horizon_targets(outputs.routes, horizon):
        outputs.publishers[route.name].publish(
            conv.joint_trajectory_msg(list(route.joints), h.times, h.positions, h.velocities, None, h.start)
        )
