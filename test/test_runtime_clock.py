"""Clocks and jump detection: one time base for stamps and commands, and a clock that goes backwards
(sim reset, NTP step) or leaps forwards is noticed, not silently trusted."""

from __future__ import annotations

import threading
import time

import pytest

from gen0_policy.runtime.clock import (
    Clock,
    ClockJump,
    FunctionClock,
    JumpDetector,
    ManualClock,
    MonotonicClock,
    SystemClock,
)


def test_every_clock_is_a_clock() -> None:
    clocks = [MonotonicClock(), SystemClock(), FunctionClock(lambda: 7), ManualClock(1.5)]
    assert all(isinstance(c, Clock) for c in clocks)
    assert FunctionClock(lambda: 7).now() == 7.0 and isinstance(FunctionClock(lambda: 7).now(), float)
    assert abs(SystemClock().now() - time.time()) < 1.0
    mono = MonotonicClock()
    readings = [mono.now() for _ in range(1000)]
    assert readings == sorted(readings)


def test_manual_clock_sets_advances_and_is_thread_safe() -> None:
    clock = ManualClock()
    assert clock.advance(0.25) == 0.25 and clock.now() == 0.25
    clock.set(-3.0)  # a simulator reset may go backwards
    assert clock.now() == -3.0
    clock.set(0.0)
    threads = [threading.Thread(target=lambda: [clock.advance(1.0) for _ in range(2000)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.now() == 8000.0  # no lost increments


def test_jump_detector_flags_backwards_and_large_forward_steps() -> None:
    detector = JumpDetector(backward_tolerance=1e-3, forward_limit=0.5)
    assert detector.check(10.0) is None  # first reading: nothing to compare
    assert detector.check(10.4) is None
    assert detector.check(10.3995) is None  # within the backward tolerance
    jump = detector.check(9.0)
    assert isinstance(jump, ClockJump) and jump.delta == pytest.approx(-1.3995)
    assert "backwards by 1.399 s (10.399 -> 9.000)" in jump.describe()
    leap = detector.check(12.0)
    assert leap is not None and leap.delta == pytest.approx(3.0) and "forwards" in leap.describe()
    assert detector.check(12.5) is None  # exactly the limit is fine
    detector.reset()
    assert detector.check(0.0) is None  # after a reset the next reading starts over
