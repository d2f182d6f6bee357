"""Command horizons: the action stream's planned future as one trajectory for a controller that
interpolates (joint_trajectory_controller), so a late Python process never leaves the robot at the end
of its trajectory.

A horizon starts a little ahead of now (``lead``, so it is still in the future when it arrives) where
the previous horizon says the controller will be, follows the executing plan for ``horizon`` seconds
and then brakes to rest at the acceleration limit. It is built by a tracker that steps at the control
period with constant acceleration per step (positions advance by the trapezoid of the velocities), so
a cubic Hermite curve through its points, which is what the controller executes, reproduces it
exactly; every step is bounded like the safety filter's (velocity, acceleration, and a velocity toward
a position limit that can still stop before it: ``v^2 / (2 a) <= distance``). A controller's message
(:meth:`Horizon.select`, for its joints) keeps one point per chunk step where the Hermite curve through
those alone stays within every limit, and every step where it would not;
:meth:`SafetyFilter.check_trajectory` checks the curve that leaves, not only its points. A horizon
always ends at rest, so a controller that hears nothing more stops smoothly, where the safety filter
said it may. Holding, uncertainty and faults send the brake alone."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from gen0_policy.errors import ConfigError
from gen0_policy.runtime.action_stream import Command
from gen0_policy.runtime.safety import SafetyFilter, SafetyLimits
from gen0_policy.runtime.trajectory import Trajectory, hermite_sample

# Position feedback per step of the tracker: critically damped for trapezoidal steps (both error modes
# shrink by sqrt(2) - 1 per step), so it rejoins the plan without ringing after a limit held it back.
FEEDBACK_GAIN = 2 * (3 - 2 * math.sqrt(2))


@dataclass(frozen=True)
class Horizon:
    """Points a trajectory controller interpolates: ``positions[k]``, ``velocities[k]`` at
    ``start + times[k]``; from the planner, every control step of all joints of the embodiment (in its
    order), from :meth:`select`, one controller's message."""

    start: float  # absolute time of point 0 (the message's header stamp), s
    times: np.ndarray  # (N,) s from start; times[0] == 0
    positions: np.ndarray  # (N, D)
    velocities: np.ndarray  # (N, D); the last row is zero: a horizon ends at rest
    stopping: bool  # a brake to rest (hold, uncertainty, fault), not a plan
    plan_end: float  # absolute time until which it follows the plan (braking after), s
    limits: SafetyLimits | None = None  # of all joints, for select
    stride: int = 1  # points per chunk step
    tolerance: float = 1e-3  # rad or m the message's curve may leave the planned steps (else more points)
    keep: np.ndarray | None = None  # indices of the points every controller's message holds (see kept)

    @property
    def end(self) -> float:
        return self.start + float(self.times[-1])

    def select(self, joints: np.ndarray) -> Horizon:
        """The message for one controller's ``joints``: the points :meth:`kept` (all joints' choice, so
        every controller executes the same curve per joint as :meth:`executed` describes), point 0 left
        out; without limits, every point."""
        idx = np.asarray(joints)
        p, v = self.positions[:, idx], self.velocities[:, idx]
        if self.limits is None:
            return replace(self, positions=p, velocities=v)
        keep = self.kept() if self.keep is None else self.keep
        return replace(self, times=self.times[keep], positions=p[keep], velocities=v[keep], limits=None)

    def executed(self) -> Horizon:
        """What a controller executes of its message: from point 0 (where it is at the stamp, as the
        previous horizon put it) through the kept points. The next horizon starts on this curve, not on
        the plan between the points: a curve the controller never follows would hand over with a jump."""
        if self.limits is None:
            return self
        rest = self.kept() if self.keep is None else self.keep
        keep = rest if len(rest) and rest[0] == 0 else np.concatenate([[0], rest]).astype(int)
        return replace(self, times=self.times[keep], positions=self.positions[keep], velocities=self.velocities[keep],
                       limits=None, keep=None)  # fmt: skip

    def kept(self) -> np.ndarray:
        """Indices after point 0 of the points a message holds: one per chunk step where the cubic
        Hermite curve through those points (from point 0) keeps every joint inside its limits and
        within ``tolerance`` of the planned steps, every control step where it would not (each step
        is exact). Without limits: every point."""
        p, v, lim = self.positions, self.velocities, self.limits
        if lim is None:
            return np.arange(1, len(self.times)) if len(self.times) > 1 else np.arange(1)
        safety = SafetyFilter(lim)
        n = len(self.times)
        coarse = np.array(sorted(set(range(0, n, self.stride)) | {n - 1}))
        bad = safety.segment_violations(self.times[coarse], p[coarse], v[coarse])
        curve = hermite_sample(self.times[coarse], p[coarse], v[coarse], self.times)[0]
        off = np.maximum.reduceat(np.max(np.abs(curve - p), axis=1), coarse[:-1])  # per segment
        bad |= off > self.tolerance
        keep: list[int] = [int(coarse[0])]
        for k in range(len(coarse) - 1):
            i, j = int(coarse[k]), int(coarse[k + 1])
            keep.extend(range(i + 1, j + 1) if bad[k] else [j])
        if safety.check_trajectory(self.times[keep], p[keep], v[keep])[0] >= 0:
            keep = list(range(n))  # every step: constant acceleration each, limits hold by construction
        # Point 0 is where the controller already is at the stamp: leave it out and the controller bridges
        # from its executing state there (a first point at 0 would make it drop that bridge, and a late
        # message would then step back to it; ros2_controllers places a policy's first point ahead too).
        return np.asarray(keep[1:] if len(keep) > 1 else keep)

    def sample(self, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position, velocity, acceleration the controller executes at ``t`` (before the start: point 0)."""
        return hermite_sample(self.start + self.times, self.positions, self.velocities, t)


def _toward_limit(v_new: np.ndarray, v: np.ndarray, distance: np.ndarray, a: np.ndarray, dt: float) -> np.ndarray:
    """Bound the next velocity ``v_new`` so a constant-acceleration step from ``v`` never passes a
    limit ``distance`` >= 0 ahead (in the + direction) and ends where it can still stop before it.

    Ending with v_new >= 0, the step covers ``(v + v_new) dt / 2`` and must leave ``v_new^2 / (2a)``;
    ending with v_new < 0 after moving toward the limit (v > 0), its turning point ``v^2 dt / (2 (v -
    v_new))`` ahead must not pass it. Full braking (``v - a dt``) satisfies both whenever the state
    could stop in time (``v^2 / (2a) <= distance``), which every step preserves."""
    rest = distance - v * dt / 2
    ahead_ok = rest >= 0  # some v_new >= 0 is allowed
    cap = -a * dt / 2 + np.sqrt((a * dt / 2) ** 2 + 2 * a * np.maximum(rest, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        turn = np.where(v > 0, v - v**2 * dt / (2 * distance), np.inf)
    turn = np.where(np.isnan(turn), -np.inf, turn)
    out = np.where((v_new >= 0) & ahead_ok, np.minimum(v_new, cap), v_new)
    out = np.where((v_new >= 0) & ~ahead_ok, turn, out)
    gap = (v_new < 0) & (v_new > turn)  # would turn too late: stop at the step's end, or turn sooner
    return np.where(gap, np.where(ahead_ok, 0.0, turn), out)


def track_step(limits: SafetyLimits, p: np.ndarray, v: np.ndarray, v_desired: np.ndarray, dt: float) -> tuple:
    """One tracker step: the velocity nearest ``v_desired`` that every limit allows; position by the
    trapezoid (constant acceleration over the step). Returns (position, velocity)."""
    a = limits.acceleration
    v_new = np.clip(v_desired, np.maximum(v - a * dt, -limits.velocity), np.minimum(v + a * dt, limits.velocity))
    v_new = _toward_limit(v_new, v, np.maximum(limits.upper - p, 0.0), a, dt)
    v_new = -_toward_limit(-v_new, -v, np.maximum(p - limits.lower, 0.0), a, dt)
    v_new = np.clip(v_new, v - a * dt, v + a * dt)  # the limit rules only ever ask for braking
    return p + (v + v_new) * dt / 2, v_new


class HorizonPlanner:
    """Decides when a horizon is due (a new chunk, a change between acting and holding, every
    ``refresh`` seconds) and builds it from the action stream's command and executing plan."""

    def __init__(
        self,
        safety: SafetyFilter,
        period: float,
        horizon: float = 0.5,
        refresh: float = 0.05,
        step: float = 0.05,
        lead: float = 0.02,
    ) -> None:
        if not (period > 0 and horizon >= period and refresh > 0 and step >= period and lead >= 0):
            raise ConfigError(
                f"command horizon needs period > 0, horizon >= period, step >= period, refresh > 0 and lead >= 0; "
                f"got period {period}, horizon {horizon}, step {step}, refresh {refresh}, lead {lead}"
            )
        self.safety, self.period, self.horizon, self.refresh, self.step = safety, period, horizon, refresh, step
        # Steps from now to a horizon's start: it must still lie in the future when the controller gets it.
        self.lead_steps = max(1, math.ceil(lead / period - 1e-9))
        self.last: Horizon | None = None
        self._generation = 0
        self._key: tuple[int, bool] | None = None
        self._published = -math.inf

    def reset(self) -> None:
        """Forget the previous horizon (the next one starts from the stream's state)."""
        self.last, self._key, self._published = None, None, -math.inf

    def due(self, command: Command) -> bool:
        key = (command.chunk_seq, command.holding)
        late = command.t - self._published >= self.refresh - 1e-9
        return key != self._key or late or command.t < self._published

    def update(self, command: Command, trajectory: Trajectory | None, generation: int = 0) -> Horizon | None:
        """The horizon to publish after ``command``, or None when none is due. A new ``generation``
        (the stream restarted from a measured position, the clock jumped) starts from the stream."""
        if generation != self._generation:
            self.reset()
            self._generation = generation
        if not self.due(command):
            return None
        horizon = self.plan(command, trajectory)
        if horizon.limits is not None:
            horizon = replace(horizon, keep=horizon.kept())  # one choice of points for every controller
        self.last, self._key, self._published = horizon.executed(), (command.chunk_seq, command.holding), command.t
        return horizon

    def plan(self, command: Command, trajectory: Trajectory | None) -> Horizon:
        """A horizon from the command at ``command.t``: follow ``trajectory`` (brake if ``command.holding``
        or None) from where the previous horizon puts the controller at the new start."""
        dt = self.period
        now = command.t
        start = now + self.lead_steps * dt
        stopping = command.holding or trajectory is None
        t, p, v = now, command.positions.astype(np.float64), command.velocities.astype(np.float64)
        last = self.last
        # Where the controller will be: the previous horizon's curve at the new start (also after a
        # stall, when the stream's own state lags behind it), unless there is none or time went back.
        if last is not None and last.start - 1e-9 <= start <= last.end + 10.0:
            (p,), (v,), _ = last.sample(start)
            t = start
        if t < start:  # from the stream's state at now to the start, as the tracker would go
            p, v, _ = self._track(t, p, v, trajectory, stopping, self.lead_steps, brake=False)
            p, v, t = p[-1], v[-1], start
        n_plan = max(1, round(self.horizon / dt))
        plan_p, plan_v, plan_end_steps = self._track(t, p, v, trajectory, stopping, n_plan, brake=True)
        times = np.arange(len(plan_p)) * dt
        if times[-1] < self.horizon:  # at rest early (a brake, the plan's end): say so until the horizon
            times = np.append(times, self.horizon)
            plan_p, plan_v = np.vstack([plan_p, plan_p[-1:]]), np.vstack([plan_v, np.zeros_like(plan_v[-1:])])
        stride = max(1, round(self._step(trajectory) / dt))
        plan_end = start + plan_end_steps * dt
        return Horizon(start, times, plan_p, plan_v, stopping, plan_end, self.safety.limits, stride)

    def _track(
        self,
        t: float,
        p: np.ndarray,
        v: np.ndarray,
        trajectory: Trajectory | None,
        stopping: bool,
        steps: int,
        brake: bool,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Tracker states at t, t + dt, ... : ``steps`` following the plan, then (``brake``) to rest.
        Returns positions (K, D), velocities (K, D) and the number of plan steps taken.

        Fast path: run the tracker's law unbounded, then check in one vectorized call that every
        bound would have let each step through unchanged; only from the first step a bound changes
        does it step with the bounds (rare: a plan out of reach or a limit near)."""
        dt, limits = self.period, self.safety.limits
        follow = not stopping and trajectory is not None
        n_plan = steps if follow else 0
        if follow:
            ticks = t + dt * np.arange(steps + 1)
            targets, feedforward = trajectory.position(ticks), trajectory.velocity(ticks)

        def desired(k: int, position: np.ndarray) -> np.ndarray:  # velocity wanted for step k -> k + 1
            if k < n_plan:
                return feedforward[k + 1] - FEEDBACK_GAIN * (position - targets[k]) / dt
            return np.zeros_like(position)

        positions, velocities, wanted = [p], [v], []
        for k in range(n_plan):
            w = desired(k, p)
            p, v = p + (v + w) * dt / 2, w
            positions.append(p)
            velocities.append(v)
            wanted.append(w)
        n_brake = math.ceil(float(np.max(np.abs(v) / limits.acceleration)) / dt) + 1 if brake else 0
        step_dv = limits.acceleration * dt
        for _ in range(n_brake):
            w = np.sign(v) * np.maximum(np.abs(v) - step_dv, 0.0)
            p, v = p + (v + w) * dt / 2, w
            positions.append(p)
            velocities.append(v)
            wanted.append(np.zeros_like(v))
        P, V = np.array(positions), np.array(velocities)
        if wanted and n_brake:  # drop the steps at rest after the first
            moving = np.flatnonzero(np.any(V != 0, axis=1))
            last = max(n_plan, int(moving[-1]) + 1 if len(moving) else 0)
            P, V, wanted = P[: last + 1], V[: last + 1], wanted[:last]
        if wanted:
            _, bounded = track_step(limits, P[:-1], V[:-1], np.array(wanted), dt)
            changed = np.flatnonzero(np.any(bounded != V[1:], axis=1))
            if len(changed):  # from the first step a bound changes, step with the bounds
                k0 = int(changed[0])
                p, v = P[k0], V[k0]
                positions, velocities = list(P[: k0 + 1]), list(V[: k0 + 1])
                k = k0
                limit = n_plan + math.ceil(float(np.max(limits.velocity / limits.acceleration)) / dt) + 3
                while k < limit and (k < n_plan or (brake and np.any(v))):
                    p, v = track_step(limits, p, v, desired(k, p), dt)
                    positions.append(p)
                    velocities.append(v)
                    k += 1
                P, V = np.array(positions), np.array(velocities)
        return P, V, n_plan

    def _step(self, trajectory: Trajectory | None) -> float:
        source = None if trajectory is None else trajectory.source
        return float(source.step_dt) if source is not None else self.step
