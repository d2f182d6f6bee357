"""ros2_control's position controllers in plain numpy, so the MuJoCo simulator obeys the same
commands with the same semantics as a real ros2_control robot (and the semantics are testable
without ROS).

- :class:`JointTrajectoryFollower` mirrors ``joint_trajectory_controller`` (ros2_controllers with
  trajectory replacement, PR #2419): a goal names its joints in any order and starts at its header
  stamp (0 = now). While a trajectory of more than one point is executing it is kept up to that start
  and the goal is spliced in there, from the executing state (position, velocity, acceleration);
  otherwise (a hold, a one-point stream, ``allow_trajectory_replacement`` false) the goal replaces it
  at once, interpolated from the desired state now. Segments are linear with positions only, cubic
  with velocities, quintic with accelerations; after the last point its position (and velocity) is held.
- :class:`ForwardPositionController` mirrors ``forward_command_controller`` with position
  interfaces: one value per joint, in the controller's joint order, held until the next command.
- :class:`ControllerSet` runs all controllers of an embodiment and merges their targets.

Every command is validated before anything changes; an invalid one raises
:class:`~gen0_policy.errors.CommandError` saying exactly what is wrong and is never executed.
A goal whose start lies in the past follows the documented semantics (its past points are dropped,
the rest realized from the desired state now); the controller's code instead shifts such a goal to
start on arrival when it splices, and jumps into it when it replaces. The command each update sends a
period ahead, and the one-period lag of the splice cursor, are below the simulator's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from gen0_policy.commands import TrajectoryCommand
from gen0_policy.embodiment import ControllerSpec, Embodiment
from gen0_policy.errors import CommandError
from gen0_policy.sim.splines import PiecewisePolynomial, TrajectorySample, segment_coefficients

# Positions this far outside a limit still count as inside (float round trips through messages).
LIMIT_TOLERANCE = 1e-6
# Two instants closer than this are the same instant (ns resolution of builtin_interfaces/Time).
TIME_EPS = 1e-9
# joint_trajectory_controller's "zero" end velocity: |v| <= float epsilon.
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def _fmt(values: np.ndarray | Sequence[float]) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in np.ravel(values)) + "]"


def _checked_joints(
    controller: str, joint_names: Sequence[str], lower: ArrayLike, upper: ArrayLike
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """A controller's joints and limits as validated arrays (both controller types configure alike)."""
    names = tuple(joint_names)
    low = np.asarray(lower, dtype=np.float64).reshape(-1)
    high = np.asarray(upper, dtype=np.float64).reshape(-1)
    if not names or len(set(names)) != len(names):
        raise CommandError(f"controller {controller}: joint names must be non-empty and unique: {names}")
    if low.shape != (len(names),) or high.shape != low.shape:
        raise CommandError(f"controller {controller}: need one lower and one upper limit per joint")
    return names, low, high


@dataclass
class JointTrajectoryFollower:
    """joint_trajectory_controller semantics for one controller's joints (position interfaces)."""

    name: str
    joint_names: tuple[str, ...]
    lower: np.ndarray  # (J,)
    upper: np.ndarray  # (J,)
    allow_partial_joints_goal: bool = False
    allow_nonzero_velocity_at_trajectory_end: bool = False
    allow_trajectory_replacement: bool = True  # splice goals into a running trajectory (JTC's default)
    _trajectory: PiecewisePolynomial = field(init=False, repr=False)
    _points: np.ndarray = field(init=False, repr=False)  # absolute times of the installed goal's points

    def __post_init__(self) -> None:
        self.joint_names, self.lower, self.upper = _checked_joints(self.name, self.joint_names, self.lower, self.upper)
        self._index = {n: i for i, n in enumerate(self.joint_names)}
        self.reset(np.clip(np.zeros(len(self.joint_names)), self.lower, self.upper), 0.0)

    @classmethod
    def from_embodiment(
        cls, embodiment: Embodiment, controller: str | ControllerSpec, **options: bool
    ) -> JointTrajectoryFollower:
        spec = embodiment.controller(controller) if isinstance(controller, str) else controller
        idx = embodiment.joint_indices(spec.joints)
        follower = cls(spec.name, spec.joints, embodiment.lower[idx], embodiment.upper[idx], **options)
        follower.reset(embodiment.home[idx], 0.0)
        return follower

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def reset(self, positions: np.ndarray, time: float) -> None:
        """Drop any trajectory and hold ``positions`` from ``time`` on."""
        positions = np.asarray(positions, dtype=np.float64).reshape(-1)
        if positions.shape != (self.dof,) or not np.all(np.isfinite(positions)):
            raise CommandError(f"controller {self.name}: reset needs {self.dof} finite positions, got {positions}")
        self._trajectory = PiecewisePolynomial.hold(np.clip(positions, self.lower, self.upper), float(time))
        self._points = np.array([float(time)])  # a hold is one point: the next goal replaces it

    def sample(self, t: float) -> TrajectorySample:
        """Desired state at time ``t`` (same clock as ``now`` in :meth:`command`), within limits."""
        s = self._trajectory.sample(t)
        return TrajectorySample(np.clip(s.positions, self.lower, self.upper), s.velocities, s.accelerations)

    @property
    def end_time(self) -> float:
        """When the active trajectory reaches its last point (it holds that point after)."""
        return self._trajectory.end_time

    def validate(self, cmd: TrajectoryCommand, now: float) -> None:
        """Raise CommandError if the real controller would reject ``cmd`` (or it breaks limits)."""
        who = f"controller {self.name}"
        if not cmd.joint_names:
            raise CommandError(f"{who}: empty joint_names in the incoming trajectory")
        seen: set[str] = set()
        dup = [n for n in cmd.joint_names if n in seen or seen.add(n)]
        if dup:
            raise CommandError(f"{who}: joint names {dup} appear more than once in {list(cmd.joint_names)}")
        unknown = [n for n in cmd.joint_names if n not in self._index]
        if unknown:
            raise CommandError(f"{who}: incoming joints {unknown} are not among its joints {list(self.joint_names)}")
        missing = [n for n in self.joint_names if n not in seen]
        if missing and not self.allow_partial_joints_goal:
            raise CommandError(
                f"{who}: trajectory lacks joints {missing}; it must name all of {list(self.joint_names)} "
                "(partial goals are disabled: allow_partial_joints_goal is false)"
            )
        n = len(cmd.times)
        if n == 0:
            raise CommandError(f"{who}: empty trajectory received (no points)")
        if not np.all(np.isfinite(cmd.times)):
            raise CommandError(f"{who}: time_from_start must be finite, got {_fmt(cmd.times)}")
        if cmd.times[0] < 0:
            raise CommandError(f"{who}: time_from_start of point #0 is negative ({cmd.times[0]:.4g} s)")
        steps = np.diff(cmd.times)
        if np.any(steps <= 0):
            i = int(np.argmax(steps <= 0))
            raise CommandError(
                f"{who}: time_from_start between points #{i} and #{i + 1} is not strictly increasing "
                f"({cmd.times[i]:.4g} s then {cmd.times[i + 1]:.4g} s)"
            )
        for key in ("positions", "velocities", "accelerations"):
            value = getattr(cmd, key)
            if value is not None and not np.all(np.isfinite(value)):
                point, joint = (int(x) for x in np.argwhere(~np.isfinite(value))[0])
                raise CommandError(
                    f"{who}: {key} at point #{point} for joint {cmd.joint_names[joint]} is {value[point, joint]}; "
                    "all values must be finite"
                )
        idx = np.array([self._index[n] for n in cmd.joint_names])
        lo, hi = self.lower[idx], self.upper[idx]
        bad = (cmd.positions < lo - LIMIT_TOLERANCE) | (cmd.positions > hi + LIMIT_TOLERANCE)
        if np.any(bad):
            point, joint = (int(x) for x in np.argwhere(bad)[0])
            raise CommandError(
                f"{who}: position {cmd.positions[point, joint]:.6g} for joint {cmd.joint_names[joint]} at point "
                f"#{point} is outside its limits [{lo[joint]:.6g}, {hi[joint]:.6g}]; nothing was executed"
            )
        if (
            cmd.velocities is not None
            and not self.allow_nonzero_velocity_at_trajectory_end
            and np.any(np.abs(cmd.velocities[-1]) > FLOAT32_EPS)
        ):
            raise CommandError(
                f"{who}: the last point has nonzero velocities {_fmt(cmd.velocities[-1])}; "
                "end with zero velocity (allow_nonzero_velocity_at_trajectory_end is false)"
            )
        if cmd.start_time != 0.0 and cmd.start_time + cmd.times[-1] < now:
            raise CommandError(
                f"{who}: trajectory with start time {cmd.start_time:.9g} s ends in the past "
                f"({cmd.start_time + cmd.times[-1]:.9g} s < now {now:.9g} s)"
            )

    def command(self, cmd: TrajectoryCommand, now: float) -> None:
        """Validate ``cmd`` and install it as joint_trajectory_controller does (see the module doc)."""
        self.validate(cmd, now)
        old = self._trajectory
        start = now if cmd.start_time == 0.0 else cmd.start_time
        splice = self.allow_trajectory_replacement and len(self._points) > 1
        handoff = max(start, now) if splice else now  # where the old trajectory stops being followed
        times = start + cmd.times
        n = len(times)
        idx = np.array([self._index[name] for name in cmd.joint_names])
        # Joints the goal leaves out: spliced, they keep following the old trajectory (sampled at each
        # point); replaced, they hold their desired position now with zero velocity (fill_partial_goal).
        fill = [old.sample(float(t)) for t in times] if splice else [old.sample(now)] * n
        positions = np.array([f.positions for f in fill])
        positions[:, idx] = cmd.positions
        velocities = accelerations = None
        if cmd.velocities is not None:
            velocities = np.array([f.velocities for f in fill]) if splice else np.zeros((n, self.dof))
            velocities[:, idx] = cmd.velocities
        if cmd.accelerations is not None:
            accelerations = np.array([f.accelerations for f in fill]) if splice else np.zeros((n, self.dof))
            accelerations[:, idx] = cmd.accelerations

        def state(i: int) -> TrajectorySample:
            zero = np.zeros(self.dof)
            v = velocities[i] if velocities is not None else zero
            a = accelerations[i] if accelerations is not None else zero
            return TrajectorySample(positions[i], v, a)

        future = [int(i) for i in np.flatnonzero(times > handoff + TIME_EPS)]
        at_handoff = np.flatnonzero(np.abs(times - handoff) <= TIME_EPS)
        prefix = self._points[(self._points > now + TIME_EPS) & (self._points < handoff - TIME_EPS)] if splice else []
        if len(at_handoff) and handoff <= now + TIME_EPS:
            # A point exactly now (stamp 0 or now, time_from_start 0): the desired state jumps there.
            cut, first, targets = handoff, state(int(at_handoff[-1])), future
        elif len(at_handoff):
            # Spliced with a point at the hand-off: no bridge there (it would repeat that instant), so the
            # segment from the last old point before it (or from now) is re-interpolated to reach it.
            cut = float(prefix[-1]) if len(prefix) else now
            first, targets = old.sample(cut), [int(at_handoff[-1]), *future]
        else:  # the executing state at the hand-off is the bridge into the first future point
            cut, first, targets = handoff, old.sample(handoff), future
        m = int(np.searchsorted(old.knots, cut - TIME_EPS, side="left"))  # old knots strictly before the cut
        knots, coeffs = old.knots[:m].tolist(), list(old.coeffs[:m])
        if m > len(old.coeffs):  # the old trajectory had ended: hold its final position up to the cut
            hold = np.zeros((6, self.dof))
            hold[0] = old.final
            coeffs.append(hold)
        knots.append(cut)
        p0, v0, a0 = first
        for i in targets:
            v1 = velocities[i] if velocities is not None else None
            a1 = accelerations[i] if accelerations is not None else None
            coeffs.append(segment_coefficients(p0, v0, a0, positions[i], v1, a1, float(times[i] - knots[-1])))
            knots.append(float(times[i]))
            p0, v0, a0 = state(i)
        # With no future point (a late goal) this holds the last point from the cut on.
        knots_arr = np.asarray(knots, dtype=np.float64)
        coeffs_arr = np.asarray(coeffs, dtype=np.float64).reshape(len(coeffs), 6, self.dof)
        # Forget segments that ended before ``now``; keep the one containing it.
        drop = min(max(0, int(np.searchsorted(knots_arr, now, side="right")) - 1), len(coeffs_arr))
        last = state(n - 1)
        self._trajectory = PiecewisePolynomial(
            knots_arr[drop:], coeffs_arr[drop:], positions[-1].copy(), last.velocities.copy(), last.accelerations.copy()
        )
        bridge = [handoff] if splice and not len(at_handoff) else []
        self._points = np.concatenate([np.asarray(prefix, dtype=np.float64), bridge, times])


@dataclass
class ForwardPositionController:
    """forward_command_controller with position interfaces: std_msgs/Float64MultiArray ``data``
    holds one target per joint in the controller's joint order; the target is held until replaced."""

    name: str
    joint_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    _target: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.joint_names, self.lower, self.upper = _checked_joints(self.name, self.joint_names, self.lower, self.upper)
        self._target = np.clip(np.zeros(self.dof), self.lower, self.upper)

    @classmethod
    def from_embodiment(cls, embodiment: Embodiment, controller: str | ControllerSpec) -> ForwardPositionController:
        spec = embodiment.controller(controller) if isinstance(controller, str) else controller
        idx = embodiment.joint_indices(spec.joints)
        ctrl = cls(spec.name, spec.joints, embodiment.lower[idx], embodiment.upper[idx])
        ctrl.reset(embodiment.home[idx], 0.0)
        return ctrl

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def reset(self, positions: np.ndarray, time: float = 0.0) -> None:
        positions = np.asarray(positions, dtype=np.float64).reshape(-1)
        if positions.shape != (self.dof,) or not np.all(np.isfinite(positions)):
            raise CommandError(f"controller {self.name}: reset needs {self.dof} finite positions, got {positions}")
        self._target = np.clip(positions, self.lower, self.upper)

    def validate(self, data: Sequence[float] | np.ndarray) -> np.ndarray:
        who = f"controller {self.name}"
        values = np.asarray(data, dtype=np.float64).reshape(-1)
        if values.shape != (self.dof,):
            raise CommandError(
                f"{who}: command has {values.size} values but the controller has {self.dof} joints "
                f"{list(self.joint_names)} (one value per joint, in this order)"
            )
        if not np.all(np.isfinite(values)):
            j = int(np.argmax(~np.isfinite(values)))
            raise CommandError(f"{who}: command for joint {self.joint_names[j]} is {values[j]}; values must be finite")
        bad = (values < self.lower - LIMIT_TOLERANCE) | (values > self.upper + LIMIT_TOLERANCE)
        if np.any(bad):
            j = int(np.argmax(bad))
            raise CommandError(
                f"{who}: command {values[j]:.6g} for joint {self.joint_names[j]} is outside its limits "
                f"[{self.lower[j]:.6g}, {self.upper[j]:.6g}]; nothing was executed"
            )
        return values

    def command(self, data: Sequence[float] | np.ndarray, now: float = 0.0) -> None:
        self._target = np.clip(self.validate(data), self.lower, self.upper)

    def sample(self, t: float = 0.0) -> TrajectorySample:
        z = np.zeros(self.dof)
        return TrajectorySample(self._target.copy(), z, z.copy())


Controller = JointTrajectoryFollower | ForwardPositionController


class ControllerSet:
    """All controllers of an embodiment, merged into one (dof,) target vector in the embodiment's
    joint order. As in ros2_control, a joint has one commanding controller at a time: the one that
    accepted the latest command for it (controllers that share joints are alternatives). A
    controller taking over starts from the current targets, so switching never causes a jump."""

    def __init__(
        self,
        embodiment: Embodiment,
        *,
        allow_partial_joints_goal: bool = False,
        allow_nonzero_velocity_at_trajectory_end: bool = False,
        allow_trajectory_replacement: bool = True,
    ) -> None:
        self.embodiment = embodiment
        self.controllers: dict[str, Controller] = {}
        self._indices: dict[str, np.ndarray] = {}
        for spec in embodiment.controllers:
            if spec.trajectory:
                ctrl: Controller = JointTrajectoryFollower.from_embodiment(
                    embodiment,
                    spec,
                    allow_partial_joints_goal=allow_partial_joints_goal,
                    allow_nonzero_velocity_at_trajectory_end=allow_nonzero_velocity_at_trajectory_end,
                    allow_trajectory_replacement=allow_trajectory_replacement,
                )
            else:
                ctrl = ForwardPositionController.from_embodiment(embodiment, spec)
            self.controllers[spec.name] = ctrl
            self._indices[spec.name] = embodiment.joint_indices(spec.joints)
        self._owner = np.full(embodiment.dof, "", dtype=object)  # controller name per joint ("" = none)
        for name, idx in self._indices.items():  # first-listed controller owns a shared joint at start
            for i in idx:
                if not self._owner[i]:
                    self._owner[i] = name
        self._held = embodiment.home.copy()  # targets of joints no controller commands
        self._time = 0.0

    def controller(self, name: str) -> Controller:
        if name not in self.controllers:
            raise CommandError(
                f"embodiment {self.embodiment.name} has no controller {name!r}; "
                f"available controllers are {list(self.controllers)}"
            )
        return self.controllers[name]

    def reset(self, positions: np.ndarray, time: float) -> None:
        """Every controller holds ``positions`` ((dof,), embodiment order) from ``time`` on."""
        positions = np.asarray(positions, dtype=np.float64).reshape(-1)
        if positions.shape != (self.embodiment.dof,):
            raise CommandError(f"reset needs {self.embodiment.dof} positions, got shape {positions.shape}")
        self._held = np.clip(positions, self.embodiment.lower, self.embodiment.upper)
        self._time = float(time)
        for name, ctrl in self.controllers.items():
            ctrl.reset(self._held[self._indices[name]], time)

    def _take_over(self, name: str, now: float) -> None:
        idx = self._indices[name]
        if any(self._owner[i] != name for i in idx):
            current = self.targets(now)
            self.controllers[name].reset(current[idx], now)
            for i in idx:
                self._owner[i] = name

    def check_trajectory(self, name: str, cmd: TrajectoryCommand, now: float) -> JointTrajectoryFollower:
        """Raise CommandError if :meth:`command_trajectory` would refuse ``cmd``. Reads only the
        controllers' configuration, so any thread may ask while the physics runs."""
        ctrl = self.controller(name)
        if not isinstance(ctrl, JointTrajectoryFollower):
            raise CommandError(f"controller {name} is a forward position controller; send it a Float64MultiArray")
        ctrl.validate(cmd, now)
        return ctrl

    def check_positions(self, name: str, data: Sequence[float] | np.ndarray) -> ForwardPositionController:
        """Raise CommandError if :meth:`command_positions` would refuse ``data`` (any thread)."""
        ctrl = self.controller(name)
        if not isinstance(ctrl, ForwardPositionController):
            raise CommandError(f"controller {name} is a joint_trajectory_controller; send it a JointTrajectory")
        ctrl.validate(data)
        return ctrl

    def command_trajectory(self, name: str, cmd: TrajectoryCommand, now: float) -> None:
        ctrl = self.check_trajectory(name, cmd, now)  # before taking over, so a rejected command changes nothing
        self._take_over(name, now)
        ctrl.command(cmd, now)

    def command_positions(self, name: str, data: Sequence[float] | np.ndarray, now: float) -> None:
        ctrl = self.check_positions(name, data)
        self._take_over(name, now)
        ctrl.command(data, now)

    def targets(self, t: float) -> np.ndarray:
        """(dof,) position targets at time ``t`` in the embodiment's joint order."""
        out = self._held.copy()
        for name, ctrl in self.controllers.items():
            idx = self._indices[name]
            mine = np.array([self._owner[i] == name for i in idx])
            if mine.any():
                out[idx[mine]] = ctrl.sample(t).positions[mine]
        return out
