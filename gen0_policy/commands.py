"""Joint commands as plain arrays: what a trajectory_msgs/JointTrajectory carries, shared by the
ROS conversions, the hardware policy path and the simulated controllers. Neutral ground: no ROS,
no simulator, so the robot path can use it without loading MuJoCo."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gen0_policy.errors import CommandError


@dataclass(frozen=True)
class TrajectoryCommand:
    """A joint_trajectory_controller goal as arrays: what trajectory_msgs/JointTrajectory carries.

    Shapes are checked here (so a ragged message fails with the point index); names, limits and
    timing against a controller are checked by :meth:`JointTrajectoryFollower.validate`.
    """

    joint_names: tuple[str, ...]
    times: np.ndarray  # (N,) time_from_start of each point, s
    positions: np.ndarray  # (N, J) rad or m, columns in joint_names order
    velocities: np.ndarray | None = None  # (N, J) per s, or None
    accelerations: np.ndarray | None = None  # (N, J) per s², or None
    start_time: float = 0.0  # absolute time on the controller's clock, s; 0 means "now"

    def __post_init__(self) -> None:
        object.__setattr__(self, "joint_names", tuple(str(n) for n in self.joint_names))
        times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "times", times)
        n, j = len(times), len(self.joint_names)
        for key in ("positions", "velocities", "accelerations"):
            value = getattr(self, key)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float64)
            if value.shape != (n, j):
                raise CommandError(
                    f"trajectory {key} have shape {value.shape}, expected ({n} points, {j} joints): "
                    f"one row per point, one column per joint of {list(self.joint_names)}"
                )
            object.__setattr__(self, key, value)
        if self.accelerations is not None and self.velocities is None:
            raise CommandError("trajectory gives accelerations without velocities; give both or neither")
        if not math.isfinite(self.start_time):
            raise CommandError(f"trajectory start time must be finite, got {self.start_time}")

    @classmethod
    def from_points(
        cls,
        joint_names: Sequence[str],
        times: Sequence[float],
        positions: Sequence[Sequence[float]],
        velocities: Sequence[Sequence[float]] | None = None,
        accelerations: Sequence[Sequence[float]] | None = None,
        start_time: float = 0.0,
    ) -> TrajectoryCommand:
        """Build from per-point lists as a message has them; every list is either empty for all
        points (field not given) or as long as ``joint_names`` for all points."""
        names = tuple(joint_names)
        n = len(times)
        if len(positions) != n:
            raise CommandError(f"trajectory has {n} time_from_start values but {len(positions)} position lists")

        def stack(key: str, rows: Sequence[Sequence[float]] | None) -> np.ndarray | None:
            if rows is None:
                return None
            lengths = [len(r) for r in rows]
            if all(length == 0 for length in lengths):
                return None
            for i, length in enumerate(lengths):
                if length != len(names):
                    raise CommandError(
                        f"mismatch between joint_names size ({len(names)}) and {key} size ({length}) at point #{i}; "
                        f"{key} must be given for every joint at every point, or left empty at every point"
                    )
            return np.array([list(r) for r in rows], dtype=np.float64).reshape(n, len(names))

        pos = stack("positions", positions)
        if pos is None and n > 0:
            raise CommandError("trajectory points carry no positions; position interfaces need positions")
        return cls(
            joint_names=names,
            times=np.asarray(times, dtype=np.float64),
            positions=pos if pos is not None else np.zeros((0, len(names))),
            velocities=stack("velocities", velocities),
            accelerations=stack("accelerations", accelerations),
            start_time=float(start_time),
        )
