"""A task goal's rules without ROS: which reason ends it first, what counts as success, how long
uncertainty may last, how often feedback goes out, and which goals are refused at once."""

from __future__ import annotations

import math

import pytest

from gen0_policy.errors import CommandError
from gen0_policy.runtime.status import RuntimeState
from gen0_policy.runtime.task import (
    MAX_INSTRUCTION_CHARS,
    Outcome,
    Slots,
    TaskMonitor,
    TaskReport,
    check_instruction,
    check_timeout,
)

RUNNING = RuntimeState.RUNNING


def test_timeouts_and_instructions_are_checked_before_a_goal_is_accepted() -> None:
    assert check_timeout(0.0) == math.inf and check_timeout(math.inf) == math.inf and check_timeout(3) == 3.0
    for bad in (-1.0, math.nan, -math.inf, 5e-324, 0.001):  # 5e-324 s came from a client: it would end at once
        with pytest.raises(CommandError, match=r"timeout must be 0 \(none\) or at least 0\.01 s"):
            check_timeout(bad)
    assert check_instruction("reach the cube") == "reach the cube"
    with pytest.raises(CommandError, match=f"at most {MAX_INSTRUCTION_CHARS}"):
        check_instruction("x" * (MAX_INSTRUCTION_CHARS + 1))


def test_only_a_success_reported_after_the_goal_started_counts() -> None:
    monitor = TaskMonitor(start=10.0, timeout=5.0, uncertain_timeout=2.0)
    old = TaskReport("reach", success=True, stamp=9.0)  # the previous episode's success
    assert monitor.step(11.0, 0.0, RUNNING, "", False, old) is None
    assert monitor.step(11.0, 0.0, RUNNING, "", False, TaskReport("reach", False, 11.0)) is None
    ended = monitor.step(11.5, 0.0, RUNNING, "", False, TaskReport("reach", True, 11.2))
    assert ended == (Outcome.SUCCEEDED, "task reach succeeded") and monitor.elapsed(11.5) == 1.5


def test_the_first_reason_to_end_wins_cancel_then_fault_then_success_then_timeout() -> None:
    success = TaskReport("reach", True, 20.0)
    fault = RuntimeState.FAULT
    assert TaskMonitor(0.0, 5.0, 2.0).step(30.0, 0, fault, "dead", True, success) == (Outcome.CANCELED, "canceled")
    assert TaskMonitor(0.0, 5.0, 2.0).step(30.0, 0, fault, "dead", False, success) == (Outcome.FAULT, "dead")
    assert TaskMonitor(0.0, 5.0, 2.0).step(30.0, 0, None, "", False, None) == (Outcome.FAULT, "not active")
    assert TaskMonitor(0.0, 5.0, 2.0).step(30.0, 0, RUNNING, "", False, success)[0] == Outcome.SUCCEEDED
    ended = TaskMonitor(0.0, 5.0, 2.0).step(30.0, 0, RUNNING, "", False, None)
    assert ended == (Outcome.TIMED_OUT, "no success within 5.0 s")


def test_uncertainty_ends_the_goal_only_when_it_lasts_in_wall_time() -> None:
    monitor = TaskMonitor(start=0.0, timeout=math.inf, uncertain_timeout=2.0)
    uncertain = RuntimeState.UNCERTAIN
    assert monitor.step(0.0, 100.0, uncertain, "spread 0.3", False, None) is None
    assert monitor.step(0.0, 101.5, uncertain, "spread 0.3", False, None) is None  # sim time stood still
    assert monitor.step(0.0, 101.9, RUNNING, "", False, None) is None  # confident again: the timer restarts
    assert monitor.step(0.0, 102.0, uncertain, "spread 0.4", False, None) is None
    assert monitor.step(0.0, 104.1, uncertain, "spread 0.4", False, None) == (Outcome.UNCERTAIN, "spread 0.4")


def test_feedback_goes_out_at_most_once_per_period() -> None:
    monitor = TaskMonitor(start=0.0, timeout=1.0, uncertain_timeout=1.0, feedback_period=0.1)
    due = [monitor.feedback_due(wall) for wall in (5.0, 5.05, 5.1, 5.15, 5.3)]
    assert due == [True, False, True, False, True]


def test_slots_answer_at_once_and_never_queue() -> None:
    slots = Slots(1)
    assert slots.acquire() and not slots.acquire() and slots.used == 1
    slots.release()
    slots.release()  # a second release never frees a slot that was not taken
    assert slots.used == 0 and slots.acquire()
