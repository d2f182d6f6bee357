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


MAX_INSTRUCTION_CHARS = 2000  # a sentence or a paragraph; megabytes are a mistake or an attack


def check_instruction(instruction: str) -> str:
    instruction = str(instruction)
    if len(instruction) > MAX_INSTRUCTION_CHARS:
        raise CommandError(f"instruction has {len(instruction)} characters; at most {MAX_INSTRUCTION_CHARS} accepted")
    return instruction


def check_timeout(timeout: float) -> float:
    """A goal's timeout in s: 0 or +inf mean none; negative or NaN is refused (it would never end)."""
    timeout = float(timeout)
    if math.isnan(timeout) or timeout < 0:
        raise CommandError(f"task timeout must be >= 0 s (0: no timeout), got {timeout}")
    return math.inf if timeout == 0 else timeout


@dataclass
class TaskMonitor:
    """Decides when one task goal ends. ``start`` and every ``now`` are on the runtime clock; the
    uncertainty timer uses ``wall`` (s, monotonic) so a paused simulation does not hide it."""

    start: float
    timeout: float  # s, validated by check_timeout
    uncertain_timeout: float  # s of continuous uncertainty that end the goal
    uncertain_since: float | None = None

    def step(
        self,
        now: float,
        wall: float,
        state: RuntimeState,
        reason: str,
        canceled: bool,
        succeeded_task: str | None,
    ) -> tuple[Outcome, str] | None:
        """The outcome and its message if the goal ends now, else None. ``succeeded_task`` names the
        task if the environment reported success after the goal started."""
        if state == RuntimeState.UNCERTAIN:
            self.uncertain_since = wall if self.uncertain_since is None else self.uncertain_since
        else:
            self.uncertain_since = None
        if canceled:
            return Outcome.CANCELED, "canceled"
        if state == RuntimeState.FAULT:
            return Outcome.FAULT, reason or "not active"
        if succeeded_task is not None:
            return Outcome.SUCCEEDED, f"task {succeeded_task} succeeded"
        if now - self.start > self.timeout:
            return Outcome.TIMED_OUT, f"no success within {self.timeout} s"
        if self.uncertain_since is not None and wall - self.uncertain_since > self.uncertain_timeout:
            return Outcome.UNCERTAIN, reason
        return None


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
