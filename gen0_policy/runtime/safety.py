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

    @classmethod
    def from_embodiment(cls, embodiment: Embodiment, scale: float = 1.0) -> SafetyLimits:
        if not 0 < scale <= 1:
            raise ConfigError(f"limit scale must be in (0, 1], got {scale}")
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
