"""runtime/routing.py: which controller gets which part of a command, for the node and the lockstep loop."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_helpers import toy_embodiment

from gen0_policy.embodiment import load_embodiment
from gen0_policy.runtime import Command
from gen0_policy.runtime.horizon import Horizon
from gen0_policy.runtime.routing import horizon_targets, routes, tick_targets


def command(dof: int) -> Command:
    return Command(1.0, np.arange(dof, dtype=float), np.zeros(dof), False, 0, 0.5, False)


def test_the_panda_arm_takes_trajectories_and_its_gripper_positions() -> None:
    panda = load_embodiment("panda")
    arm, gripper = routes(panda)
    assert (arm.kind, arm.topic, arm.joints) == ("trajectory", "joint_trajectory_controller/joint_trajectory",
                                                 tuple(f"joint{i}" for i in range(1, 8)))  # fmt: skip
    assert (gripper.kind, gripper.topic) == ("forward", "gripper_controller/commands")
    np.testing.assert_array_equal(np.concatenate([arm.index, gripper.index]), np.arange(panda.dof))

    c = command(panda.dof)
    with_horizons = list(tick_targets([arm, gripper], c, horizons=True))
    assert [r.name for r, _ in with_horizons] == ["gripper_controller"]  # the arm's future comes as a horizon
    np.testing.assert_array_equal(with_horizons[0][1], c.positions[gripper.index])
    assert [r.name for r, _ in tick_targets([arm, gripper], c, horizons=False)] == [arm.name, gripper.name]

    times = np.array([0.0, 0.1])
    horizon = Horizon(2.0, times, np.ones((2, panda.dof)), np.zeros((2, panda.dof)), stopping=False, plan_end=2.1)
    (route, h), = horizon_targets([arm, gripper], horizon)  # fmt: skip
    assert route is arm and h.positions.shape == (2, 7) and h.start == 2.0


def test_forward_position_mode_sends_every_joint_controller_positions() -> None:
    arm, gripper = routes(load_embodiment("panda"), "forward_position")
    assert (arm.kind, arm.topic) == ("forward", "joint_trajectory_controller/commands")
    assert gripper.kind == "forward"
    assert len(list(tick_targets([arm, gripper], command(8), horizons=True))) == 2


def test_the_sawyer_hand_goes_to_a_cartesian_controller() -> None:
    hand, gripper = routes(load_embodiment("sawyer"))
    assert (hand.kind, hand.topic) == ("cartesian", "cartesian_motion_controller/target_frame")
    assert hand.joints == ("hand_x", "hand_y", "hand_z") and gripper.kind == "forward"


def test_a_robot_without_controllers_gets_one_trajectory_controller_and_bad_modes_are_refused() -> None:
    (everything,) = routes(toy_embodiment(dof=3))
    assert everything.kind == "trajectory" and everything.joints == ("j0", "j1", "j2")
    with pytest.raises(ValueError, match="output_mode"):
        routes(toy_embodiment(), "velocity")
