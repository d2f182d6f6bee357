"""The last gate before a command leaves the runtime: every command it returns is finite, inside the
joint position limits, and reachable from the previous one within the velocity and acceleration
limits of the embodiment. It is applied to every tick, whatever produced the target.

Braking is planned, not hoped for: the velocity toward a limit is capped so that the joint can
still stop before it at the acceleration limit (``v*dt + v^2/(2a) <= distance``), which keeps the
position and acceleration guarantees compatible."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import ConfigError
from gen0_policy.runtime.trajectory import hermite_coefficients

# Relative slack of the trajectory check: float round-off, never a licence to exceed a limit.
CHECK_SLACK = 1e-9


@dataclass
class SafetyLimits:
    """Per-joint limits (rad or m; per s; per s^2). ``scale`` < 1 derates velocity and acceleration."""

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray

    def __post_init__(self) -> None:
        arrays = [np.asarray(a, dtype=np.float64) for a in (self.lower, self.upper, self.velocity, self.acceleration)]
        self.lower, self.upper, self.velocity, self.acceleration = arrays
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
            raise ConfigError(f"safety limits must be equal-length vectors, got shapes {[a.shape for a in arrays]}")
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise ConfigError("safety limits must be finite")
        if np.any(self.lower >= self.upper) or np.any(self.velocity <= 0) or np.any(self.acceleration <= 0):
            raise ConfigError("safety limits need lower < upper and positive velocity and acceleration limits")

    def within(self, lower: np.ndarray, upper: np.ndarray) -> SafetyLimits:
        """These limits with their bounds tightened to ``[lower, upper]`` (a task's workspace inside the
        robot's); raises ConfigError for bounds that are not finite (D,) vectors or leave no room."""
        lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        if lower.shape != (self.dof,) or upper.shape != (self.dof,):
            raise ConfigError(f"workspace bounds must be {self.dof} numbers each, got {lower.shape} and {upper.shape}")
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
            raise ConfigError("workspace bounds must be finite")
        tight_lower, tight_upper = np.maximum(self.lower, lower), np.minimum(self.upper, upper)
        empty = np.flatnonzero(tight_lower >= tight_upper)
        if empty.size:
            i = int(empty[0])
            raise ConfigError(
                f"workspace [{lower[i]:.4g}, {upper[i]:.4g}] of entry {i} leaves nothing of its limits "
                f"[{self.lower[i]:.4g}, {self.upper[i]:.4g}]"
            )
        return SafetyLimits(tight_lower, tight_upper, self.velocity, self.acceleration)

    @classmethod
    def from_embodiment(cls, embodiment: Embodiment, scale: float = 1.0) -> SafetyLimits:
        if not 0 < scale <= 1:
            raise ConfigError(f"limit scale must be in (0, 1], got {scale}")
        # An end-effector robot's state coordinates (hand position in m, gripper opening) have bounds and
        # speed limits like joints: the runtime plans them as such (runtime/end_effector.py).
        return cls(
            embodiment.lower,
            embodiment.upper,
            embodiment.velocity_limits * scale,
            embodiment.acceleration_limits * scale,
        )

    @property
    def dof(self) -> int:
        return int(self.lower.shape[0])


@dataclass
class SafeState:
    """The last command that left the runtime and its velocity."""

    position: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.position = np.asarray(self.position, dtype=np.float64).copy()
        if self.velocity.shape != self.position.shape:
            self.velocity = np.zeros_like(self.position)


class SafetyFilter:
    """Turns a desired next position into the nearest safe one."""

    def __init__(self, limits: SafetyLimits) -> None:
        self.limits = limits

    def start(self, position: np.ndarray) -> SafeState:
        """Initial state at a measured position, clipped into the limits, at rest."""
        position = np.asarray(position, dtype=np.float64)
        if position.shape != (self.limits.dof,) or not np.all(np.isfinite(position)):
            raise ConfigError(f"start position must be {self.limits.dof} finite numbers, got {position}")
        return SafeState(np.clip(position, self.limits.lower, self.limits.upper))

    def velocity_bounds(self, state: SafeState, dt: float) -> tuple[np.ndarray, np.ndarray]:
        lim = self.limits
        a = lim.acceleration
        up = np.maximum(lim.upper - state.position, 0.0)
        down = np.maximum(state.position - lim.lower, 0.0)
        brake_up = -a * dt + np.sqrt((a * dt) ** 2 + 2 * a * up)
        brake_down = -a * dt + np.sqrt((a * dt) ** 2 + 2 * a * down)
        window_high = np.minimum(lim.velocity, brake_up)  # 0 is always inside this window
        window_low = np.maximum(-lim.velocity, -brake_down)
        high = np.minimum(window_high, state.velocity + a * dt)
        low = np.maximum(window_low, state.velocity - a * dt)
        # Only a state that already broke a bound (a start outside them) makes this empty: then
        # position safety wins over the acceleration limit, as close to it as possible.
        infeasible = low > high
        nearest = np.clip(state.velocity, window_low, window_high)
        return np.where(infeasible, nearest, low), np.where(infeasible, nearest, high)

    def step(self, state: SafeState, target: np.ndarray | None, dt: float) -> tuple[SafeState, bool]:
        """Next safe state toward ``target`` (``None`` or non-finite: brake to a stop).

        Returns the new state and whether the target had to be changed."""
        low, high = self.velocity_bounds(state, dt)
        if target is None or not np.all(np.isfinite(target)):
            desired = np.zeros_like(state.position)
            modified = target is not None
        else:
            desired = (np.asarray(target, dtype=np.float64) - state.position) / dt
            modified = False
        velocity = np.clip(desired, low, high)
        modified = modified or not np.allclose(velocity, desired, rtol=0, atol=1e-9)
        position = np.clip(state.position + velocity * dt, self.limits.lower, self.limits.upper)
        velocity = (position - state.position) / dt
        return SafeState(position, velocity), modified

    def approach(self, state: SafeState, target: np.ndarray, dt: float) -> SafeState:
        """Next safe state on the way to rest at ``target`` (a re-anchor after the robot was moved): the
        speed that can still stop there at the acceleration limit (``v^2 <= 2 a d``), never overshooting
        by more than one step."""
        error = np.asarray(target, dtype=np.float64) - state.position
        speed = np.minimum(np.sqrt(2 * self.limits.acceleration * np.abs(error)), np.abs(error) / dt)
        return self.step(state, state.position + np.sign(error) * speed * dt, dt)[0]

    def stop(self, state: SafeState, dt: float) -> SafeState:
        """Decelerate toward rest at the acceleration limit (holding the last safe position)."""
        return self.step(state, None, dt)[0]

    def check_trajectory(self, times: np.ndarray, positions: np.ndarray, velocities: np.ndarray) -> tuple[int, str]:
        """Check the cubic Hermite curve through the points (what a trajectory controller executes
        between them) against every limit, everywhere, not only at the points. Returns ``(-1, "")``
        when the curve is safe, else the first offending segment (0 for a lone bad point) and why."""
        bad = self.segment_violations(times, positions, velocities)
        if not np.any(bad):
            return -1, ""
        k = int(np.argmax(bad))
        times = np.asarray(times, dtype=np.float64)
        if len(times) < 2:
            return 0, "the point is outside the position or velocity limits"
        return k, (
            f"the curve between points {k} and {k + 1} ({times[k]:.3f}-{times[k + 1]:.3f} s) leaves the "
            "position, velocity or acceleration limits"
        )

    def segment_violations(self, times: np.ndarray, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        """(N-1,) whether each cubic Hermite segment through the points breaks a limit ((1,) for one
        point). Exact, no sampling: acceleration is linear on a segment (extremes at its ends),
        velocity quadratic (ends and vertex), position cubic (ends and where the velocity is zero)."""
        lim = self.limits
        times, p, v = (np.asarray(a, dtype=np.float64) for a in (times, positions, velocities))
        if p.ndim != 2 or p.shape[1] != lim.dof or v.shape != p.shape or times.shape != (p.shape[0],):
            raise ConfigError(f"trajectory check needs times (N,) and (N, {lim.dof}) positions and velocities")
        lo, hi = lim.lower - CHECK_SLACK, lim.upper + CHECK_SLACK
        vmax, amax = lim.velocity * (1 + CHECK_SLACK), lim.acceleration * (1 + CHECK_SLACK)
        finite = np.isfinite(p) & np.isfinite(v)
        bad_point = np.any(~finite | (p < lo) | (p > hi) | (np.abs(v) > vmax), axis=1)
        if len(times) < 2:
            return bad_point
        span1 = np.diff(times)
        if np.any(span1 <= 0) or not np.all(np.isfinite(times)):
            return np.ones(len(span1), dtype=bool)
        c = hermite_coefficients(times, p, v)  # (K, 4, D)
        span = span1[:, None]
        c0, c1, c2, c3 = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
        bad = np.abs(2 * c2) > amax
        bad |= np.abs(2 * c2 + 6 * c3 * span) > amax
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            vertex = -c2 / (3 * c3)
            inside = np.isfinite(vertex) & (vertex > 0) & (vertex < span)
            bad |= inside & (np.abs(c1 + vertex * (2 * c2 + 3 * c3 * vertex)) > vmax)
            root = np.sqrt(np.maximum(c2**2 - 3 * c3 * c1, 0.0))
            linear = -c1 / (2 * c2)  # c3 == 0: the velocity is linear
            for s in ((-c2 + root) / (3 * c3), (-c2 - root) / (3 * c3)):
                s = np.where(c3 == 0, linear, s)
                inside = np.isfinite(s) & (s > 0) & (s < span)
                q = c0 + s * (c1 + s * (c2 + s * c3))
                bad |= inside & ((q < lo) | (q > hi))
        return np.any(bad, axis=1) | bad_point[:-1] | bad_point[1:]
