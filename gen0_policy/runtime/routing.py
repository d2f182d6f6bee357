"""Which controller gets which part of a command: the one routing of runtime output to an embodiment's
controllers (config/embodiments/), shared by the policy node's publishers (ros/controller_outputs.py)
and anything that drives a simulated robot without ROS (benchmarks/lockstep_loop.py), so the two
cannot differ in what a controller is sent.

A trajectory controller gets the planned future (a Horizon) when the runtime plans horizons, else one
point per control tick; a forward position controller (or any controller under ``output_mode:
forward_position``) gets each tick's positions; a Cartesian motion controller gets each tick's hand
position (an end-effector robot, runtime/end_effector.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gen0_policy.embodiment import ControllerSpec, Embodiment, command_topic
from gen0_policy.runtime.action_stream import Command
from gen0_policy.runtime.config import OUTPUT_MODES
from gen0_policy.runtime.horizon import Horizon

RouteKind = Literal["trajectory", "forward", "cartesian"]


@dataclass(frozen=True)
class Route:
    """One controller's share of the embodiment's command vector."""

    spec: ControllerSpec
    index: np.ndarray  # the controller's joints, as indices in the embodiment's order
    kind: RouteKind

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def joints(self) -> tuple[str, ...]:
        return tuple(self.spec.joints)

    @property
    def topic(self) -> str:
        """Its command topic by the ros2_control conventions (relative to the node's namespace), for
        the message it is sent: a trajectory controller under forward_position gets ``<name>/commands``."""
        if self.kind == "cartesian":
            return self.spec.command_topic
        return command_topic(self.spec.name, self.kind == "trajectory")


def routes(embodiment: Embodiment, output_mode: str = "joint_trajectory") -> list[Route]:
    """A route per controller the embodiment names (one joint_trajectory_controller for every joint
    when it names none); ``output_mode`` forward_position sends every joint controller positions per tick."""
    if output_mode not in OUTPUT_MODES:
        raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
    everything = ControllerSpec("joint_trajectory_controller", "joint_trajectory_controller", embodiment.joint_names)
    out = []
    for spec in embodiment.controllers or [everything]:
        if spec.cartesian:
            kind: RouteKind = "cartesian"
        elif spec.trajectory and output_mode == "joint_trajectory":
            kind = "trajectory"
        else:
            kind = "forward"
        out.append(Route(spec, embodiment.joint_indices(spec.joints), kind))
    return out


def tick_targets(routes_: list[Route], command: Command, horizons: bool) -> Iterator[tuple[Route, np.ndarray]]:
    """Each controller's positions at one control tick: forward and Cartesian controllers always, a
    trajectory controller only when no horizon carries its future (then as one point, one period ahead)."""
    for route in routes_:
        if route.kind != "trajectory" or not horizons:
            yield route, command.positions[route.index]


def horizon_targets(routes_: list[Route], horizon: Horizon) -> Iterator[tuple[Route, Horizon]]:
    """The planned future for each trajectory controller, its own joints only."""
    for route in routes_:
        if route.kind == "trajectory":
            yield route, horizon.select(route.index)
