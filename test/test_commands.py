"""Joint commands as arrays (what a JointTrajectory carries), checked where they are built: shapes
per point, accelerations only with velocities, a finite start time."""

from __future__ import annotations

import numpy as np
import pytest

from gen0_policy.commands import TrajectoryCommand
from gen0_policy.errors import CommandError

NAMES = ("j1", "j2")


def test_from_points_stacks_per_point_lists() -> None:
    cmd = TrajectoryCommand.from_points(NAMES, [0.1, 0.2], [[1, 2], [3, 4]], [[], []], None, start_time=5.0)
    assert cmd.joint_names == NAMES and cmd.start_time == 5.0
    np.testing.assert_array_equal(cmd.times, [0.1, 0.2])
    np.testing.assert_array_equal(cmd.positions, [[1, 2], [3, 4]])
    assert cmd.positions.dtype == np.float64 and cmd.velocities is None and cmd.accelerations is None
    full = TrajectoryCommand.from_points(NAMES, [0.1], [[0, 0]], [[1, 1]], [[2, 2]])
    np.testing.assert_array_equal(full.accelerations, [[2, 2]])
    empty = TrajectoryCommand.from_points(NAMES, [], [])
    assert empty.positions.shape == (0, 2)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"positions": [[1, 2], [3]]}, "joint_names size (2) and positions size (1) at point #1"),
        ({"velocities": [[1, 2], []]}, "velocities size (0) at point #1"),
        ({"positions": [[], []]}, "carry no positions"),
        ({"positions": [[1, 2]]}, "2 time_from_start values but 1 position lists"),
        ({"accelerations": [[1, 1], [1, 1]]}, "accelerations without velocities"),
        ({"start_time": float("inf")}, "start time must be finite"),
    ],
)
def test_malformed_commands_are_refused_with_the_reason(kwargs: dict, words: str) -> None:
    args = {"joint_names": NAMES, "times": [0.1, 0.2], "positions": [[1, 2], [3, 4]], **kwargs}
    with pytest.raises(CommandError) as info:
        TrajectoryCommand.from_points(**args)
    assert words in str(info.value)


def test_array_shapes_are_checked() -> None:
    with pytest.raises(CommandError, match=r"positions have shape \(2, 3\), expected \(2 points, 2 joints\)"):
        TrajectoryCommand(NAMES, np.array([0.1, 0.2]), np.zeros((2, 3)))
