"""The action stream: at every tick of a fixed-rate clock it has a next command, whatever inference
is doing. New chunks are handed over (latest wins) and take effect at the next tick, anchored at
the commanded position and velocity; every command passes the safety filter."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from gen0_policy.errors import CommandError
from gen0_policy.runtime.safety import SafeState, SafetyFilter
from gen0_policy.runtime.trajectory import Chunk, Trajectory, sample_history


@dataclass(frozen=True)
class Command:
    """One command as it leaves the runtime."""

    t: float  # runtime clock time the command is for, s
    positions: np.ndarray  # (D,) absolute joint targets
    velocities: np.ndarray  # (D,) velocity of the command stream
    holding: bool  # True while braking to / holding the last safe position
    chunk_seq: int  # chunk the command was sampled from (-1: none)
    observation_stamp: float  # stamp of the observation that chunk was computed from (nan: none)
    clamped: bool  # the safety filter changed the target


class ActionStream:
    """Thread-safe: ``submit`` and ``plan`` are called by the inference worker, ``tick`` by the control
    clock. ``tick`` never waits on inference: it takes whatever chunk is newest."""

    def __init__(
        self, safety: SafetyFilter, period: float, swap_min_gap: float = 0.5, history_seconds: float = 2.0
    ) -> None:
        self.safety = safety
        self.period = period
        self.swap_min_gap = swap_min_gap
        self._lock = threading.Lock()
        # The commands sent in the last ``history_seconds``: a chunk computed from an observation
        # taken before now is conditioned on what was commanded since that observation.
        self._history: deque[tuple[float, np.ndarray]] = deque(maxlen=max(2, math.ceil(history_seconds / period)))
        self._pending: Chunk | None = None
        self._anchor: np.ndarray | None = None  # where a restart goes (at the limits) before anything else
        self._state: SafeState | None = None
        self._trajectory: Trajectory | None = None
        self._last_t = math.nan
        self._last_clamped = False
        self._holding = True
        self.swaps = 0

    @property
    def started(self) -> bool:
        return self._state is not None

    @property
    def executing(self) -> bool:
        """A chunk is being executed or is waiting to take over at the next tick."""
        with self._lock:
            has_plan = self._trajectory is not None and not self._trajectory.is_hold
            return has_plan or self._pending is not None

    @property
    def trajectory(self) -> Trajectory | None:
        return self._trajectory

    def reset(self, t: float, position: np.ndarray) -> None:
        """Start at rest at ``position`` at time ``t``; once started (a clock jump), keep the commanded
        position and velocity and brake from there: only the time base starts over."""
        with self._lock:
            if self._state is None:
                self._state = self.safety.start(position)
            self._trajectory = Trajectory.hold(t, self._state.position)
            self._last_t = t
            self._pending, self._anchor = None, None
            self._holding = True
            self._history.clear()

    def restart(self, t: float, position: np.ndarray) -> None:
        """Re-anchor at a new measured ``position`` (the robot was reset or moved externally). The
        command goes there through the safety filter like any other (never a jump), then rests."""
        with self._lock:
            if self._state is None:
                self._state = self.safety.start(position)
            self._anchor = self.safety.start(position).position
            self._trajectory = Trajectory.hold(t, self._anchor)
            self._pending, self._holding = None, True

    @property
    def settling(self) -> bool:
        """A re-anchor is still on its way to the measured position it was given."""
        with self._lock:
            return self._anchor is not None

    @property
    def at_rest(self) -> bool:
        with self._lock:
            return self._state is not None and not np.any(self._state.velocity)

    @property
    def stops_on_hold(self) -> bool:
        """Holding the last command is itself a stop within the acceleration limit (every ``|v| <= a *
        period``), as a controller does when commands pause: no braking ticks are needed first. True
        for Meta-World's Sawyer (a hand target reaches 0.8 m/s in one step), rarely for a joint arm."""
        with self._lock:
            if self._state is None:
                return True
            reach = self.safety.limits.acceleration * self.period * (1 + 1e-9)
            return bool(np.all(np.abs(self._state.velocity) <= reach))

    def clear(self) -> None:
        """Forget the stream: the next ``reset`` starts from the position it is given (a new activation)."""
        with self._lock:
            self._state = self._trajectory = self._pending = self._anchor = None
            self._history.clear()

    def rebase(self, t: float) -> None:
        """Pretend the last command was sent at ``t`` at rest: after a pause in the stream (synchronous
        inference) the controller has been holding still, so the next chunk starts from rest."""
        with self._lock:
            if self._state is not None:
                self._state = SafeState(self._state.position)
                self._trajectory = Trajectory.hold(t, self._state.position)
                self._last_t = t

    def submit(self, chunk: Chunk) -> None:
        """Hand over a chunk; it replaces the executing one at the next tick. A chunk with NaN/inf is
        refused with :class:`CommandError` (the executing one continues)."""
        if not np.all(np.isfinite(chunk.actions)) or not np.isfinite(chunk.t0) or not chunk.step_dt > 0:
            raise CommandError("chunk has non-finite actions or times; refused, the executing chunk continues")
        if chunk.actions.ndim != 2 or chunk.actions.shape[1] != self.safety.limits.dof:
            raise CommandError(f"chunk has shape {chunk.actions.shape}, expected (H, {self.safety.limits.dof})")
        with self._lock:
            self._pending = chunk

    def plan(self, times: np.ndarray) -> np.ndarray | None:
        """What the stream commands at ``times``: what it sent, for times up to its last tick (from its
        recent history), and what it will send if no new chunk arrives, after that."""
        times = np.asarray(times, dtype=np.float64)
        with self._lock:  # copy what is needed; interpolate outside, the control clock ticks on this lock
            if self._trajectory is None or self._state is None:
                return None
            trajectory, last_t, pending = self._trajectory, self._last_t, self._pending
            if pending is not None and np.isfinite(last_t):
                # A chunk handed over and not yet taken over commands from the next tick on: the worker
                # plans its next inference right after submitting, often before that tick, and a plan
                # from the replaced chunk conditioned it on rows that never ran (on Meta-World's Sawyer,
                # chunks alternated between two paths 3 cm apart and the hand shuttled between them).
                anchor = (self._state.position.copy(), self._anchor_velocity(self._state, trajectory))
            else:
                pending = None
            history = list(self._history) if np.any(times <= last_t) else []
        if pending is not None:  # the takeover the next tick makes, built off the lock
            trajectory = Trajectory.from_chunk(pending, last_t, *anchor, self.swap_min_gap)
        out = trajectory.position(times)
        if history:
            past = times <= last_t
            out[past] = sample_history(history, times[past])
        return out

    def position(self) -> np.ndarray | None:
        with self._lock:
            return None if self._state is None else self._state.position.copy()

    def tick(self, now: float, hold: bool = False, max_step_s: float | None = None) -> Command | None:
        """The command for time ``now``; ``hold`` brakes to a stop at the acceleration limit.

        A late tick advances the stream by one ``period`` at most (one point per tick: the controller
        reaches each point one period after it is sent, so a longer step would be faster than the
        limits). With ``max_step_s`` (command horizons) it advances by the time that passed, up to that:
        the controller kept moving along the horizon meanwhile, and a stream held to one period per
        tick fell behind it (through ROS at 65 Hz of ticks, 1 rad of wrist in one reach)."""
        with self._lock:
            state, trajectory = self._state, self._trajectory
            if state is None or trajectory is None:
                return None
            pending, self._pending = self._pending, None
            dt = now - self._last_t
            if dt <= 0:  # time stood still (paused simulation): repeat the last command
                return self._command(now, state, trajectory, clamped=self._last_clamped)
            # One point per tick: a late tick must not license a larger step, the command is reached one
            # period after it is sent (time_from_start). With horizons: the time that passed (docstring).
            dt = min(dt, self.period if max_step_s is None else max(max_step_s, self.period))
            if pending is not None and not hold:
                anchor_v = self._anchor_velocity(state, trajectory)
                trajectory = Trajectory.from_chunk(pending, self._last_t, state.position, anchor_v, self.swap_min_gap)
                self._anchor = None
                self.swaps += 1
            clamped = False
            if self._anchor is not None:  # re-anchoring: on the way to the measured position, at the limits
                state = self.safety.approach(state, self._anchor, dt)
                if np.allclose(state.position, self._anchor, rtol=0, atol=1e-9) and not np.any(state.velocity):
                    self._anchor = None
            elif hold:
                state = self.safety.stop(state, dt)
                trajectory = Trajectory.hold(now, state.position)
            elif now >= trajectory.end_t and np.any(state.velocity):
                # Past the last waypoint the target stands still: stop on it along the braking curve.
                # Greedy tracking overshot it and swung back and forth at the acceleration limit, 0.05 rad
                # either way for 0.6 s after every chunk that ended at speed (the spline's own stop at its
                # last waypoint is faster than the limits allow).
                state = self.safety.approach(state, trajectory.end_p, dt)
                clamped = not np.allclose(state.position, trajectory.end_p, rtol=0, atol=1e-9)
            else:
                state, clamped = self.safety.step(state, trajectory.position(now), dt)
            self._state, self._trajectory = state, trajectory
            self._last_t, self._last_clamped, self._holding = now, clamped, hold
            self._history.append((now, state.position.copy()))
            return self._command(now, state, trajectory, clamped)

    def _anchor_velocity(self, state: SafeState, trajectory: Trajectory) -> np.ndarray:
        """The velocity a chunk taking over from ``trajectory`` starts with (lock held)."""
        if not self._last_clamped and not self._holding and not trajectory.is_hold:
            return trajectory.velocity(self._last_t)  # the curve's own slope: exact C1
        return state.velocity

    def _command(self, now: float, state: SafeState, trajectory: Trajectory, clamped: bool) -> Command:
        source = trajectory.source
        return Command(
            t=now,
            positions=state.position.copy(),
            velocities=state.velocity.copy(),
            holding=self._holding or source is None,
            chunk_seq=-1 if source is None else source.seq,
            observation_stamp=math.nan if source is None else source.observation_stamp,
            clamped=clamped,
        )
