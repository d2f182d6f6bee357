"""Clocks the runtime reads time from. Observation stamps, chunk times and command times must share
one time base: wall time for a real robot, the simulator's clock under ``use_sim_time``. Every clock
is just ``now() -> seconds``; the ROS node wraps its node clock in :class:`FunctionClock`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Current time in seconds, in the same base as observation stamps."""
        ...


class MonotonicClock:
    """Wall time that never goes backwards: the default for the core and the benchmark."""

    def now(self) -> float:
        return time.monotonic()


class SystemClock:
    """``time.time()``: matches ROS wall-time stamps, but NTP can step it (the runtime detects that)."""

    def now(self) -> float:
        return time.time()


class FunctionClock:
    """Any callable as a clock, e.g. ``lambda: node.get_clock().now().nanoseconds * 1e-9``."""

    def __init__(self, fn: Callable[[], float]) -> None:
        self._fn = fn

    def now(self) -> float:
        return float(self._fn())


class ManualClock:
    """A clock someone else advances: simulated time (``/clock``) and tests. It may be set backwards,
    as a simulator reset does; :class:`JumpDetector` is what notices."""

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def set(self, t: float) -> None:
        with self._lock:
            self._t = float(t)

    def advance(self, dt: float) -> float:
        with self._lock:
            self._t += float(dt)
            return self._t


@dataclass
class ClockJump:
    """A detected discontinuity: ``delta`` < 0 went backwards, > 0 leapt forward."""

    previous: float
    current: float

    @property
    def delta(self) -> float:
        return self.current - self.previous

    def describe(self) -> str:
        direction = "backwards" if self.delta < 0 else "forwards"
        return f"clock jumped {direction} by {abs(self.delta):.3f} s ({self.previous:.3f} -> {self.current:.3f})"


class JumpDetector:
    """Watches successive readings of a clock. Time going backwards (sim reset, NTP step) invalidates
    every stamp and every planned chunk time, so the runtime must hold and start over; a leap forward
    much larger than expected (sim fast-forward, suspended process) does the same."""

    def __init__(self, backward_tolerance: float = 1e-6, forward_limit: float = 1.0) -> None:
        self.backward_tolerance = backward_tolerance
        self.forward_limit = forward_limit
        self._last: float | None = None

    def check(self, now: float) -> ClockJump | None:
        last, self._last = self._last, now
        if last is None:
            return None
        if now < last - self.backward_tolerance or now - last > self.forward_limit:
            return ClockJump(last, now)
        return None

    def reset(self) -> None:
        self._last = None
