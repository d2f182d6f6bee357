"""A task goal ("reach the cube" until success, a timeout, a fault, lasting uncertainty or a cancel) as
plain data: the ROS action server only feeds it the time and the policy's state and reports what it
decides. Nothing here waits: a goal is checked at each status tick, so goals never hold a thread."""

from __future__ import annotations

import enum
import math
import threading
from dataclasses import dataclass

from gen0_policy.errors import CommandError
from gen0_policy.runtime.status import RuntimeState


class Outcome(enum.IntEnum):
    """Numbered exactly as the ``OUTCOME_*`` constants of gen0_msgs/action/RunTask."""

    SUCCEEDED = 0
    TIMED_OUT = 1
    CANCELED = 2
    FAULT = 3
    UNCERTAIN = 4


WAITING_FOR_GOAL = "waiting for a run_task goal"  # why a node activated with act_on_activate false sends nothing
MAX_INSTRUCTION_CHARS = 2000  # a sentence or a paragraph; megabytes are a mistake or an attack


def check_instruction(instruction: str) -> str:
    instruction = str(instruction)
    if len(instruction) > MAX_INSTRUCTION_CHARS:
        raise CommandError(f"instruction has {len(instruction)} characters; at most {MAX_INSTRUCTION_CHARS} accepted")
    return instruction


MIN_TIMEOUT_S = 0.01  # a shorter goal ends before its first command: a mistake (5e-324 s was seen from a client)


def check_timeout(timeout: float) -> float:
    """A goal's timeout in s: 0 or +inf mean none; negative or NaN is refused (it would never end), and
    so is one too short to act at all (it would end at once, looking like a policy that failed)."""
    timeout = float(timeout)
    if math.isnan(timeout) or timeout < 0 or 0 < timeout < MIN_TIMEOUT_S:
        raise CommandError(f"task timeout must be 0 (none) or at least {MIN_TIMEOUT_S} s, got {timeout!r}")
    return math.inf if timeout == 0 else timeout


@dataclass(frozen=True)
class TaskReport:
    """The environment's latest word on its task (a simulator's /task_status)."""

    task: str
    success: bool
    stamp: float  # s, runtime clock


@dataclass
class TaskMonitor:
    """Decides when one task goal ends. ``start`` and every ``now`` are on the runtime clock; the
    uncertainty timer uses ``wall`` (s, monotonic) so a paused simulation does not hide it."""

    start: float
    timeout: float  # s, validated by check_timeout
    uncertain_timeout: float  # s of continuous uncertainty that end the goal
    feedback_period: float = 0.1  # s (wall) between feedback messages
    uncertain_since: float | None = None
    next_feedback: float = -math.inf

    def step(
        self,
        now: float,
        wall: float,
        state: RuntimeState | None,
        reason: str,
        canceled: bool,
        report: TaskReport | None,
    ) -> tuple[Outcome, str] | None:
        """The outcome and its message if the goal ends now, else None. ``state`` None: no runtime (not
        configured, or cleaned up), a fault. Success counts only if reported after the goal started:
        an older report is about an earlier episode."""
        if state == RuntimeState.UNCERTAIN:
            self.uncertain_since = wall if self.uncertain_since is None else self.uncertain_since
        else:
            self.uncertain_since = None
        if canceled:
            return Outcome.CANCELED, "canceled"
        if state is None or state == RuntimeState.FAULT:
            return Outcome.FAULT, reason or "not active"
        if report is not None and report.success and report.stamp > self.start:
            return Outcome.SUCCEEDED, f"task {report.task} succeeded"
        if now - self.start > self.timeout:
            return Outcome.TIMED_OUT, f"no success within {self.timeout} s"
        if self.uncertain_since is not None and wall - self.uncertain_since > self.uncertain_timeout:
            return Outcome.UNCERTAIN, reason
        return None

    def elapsed(self, now: float) -> float:
        return now - self.start

    def feedback_due(self, wall: float) -> bool:
        """True at most once per ``feedback_period``: feedback is for people, not a firehose."""
        if wall < self.next_feedback:
            return False
        self.next_feedback = wall + self.feedback_period
        return True


class Slots:
    """At most ``limit`` holders at once; ``acquire`` answers at once (never queues) whether one was free."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self._used >= self.limit:
                return False
            self._used += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._used = max(0, self._used - 1)

    @property
    def used(self) -> int:
        return self._used
