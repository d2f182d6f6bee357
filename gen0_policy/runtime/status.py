"""What the runtime is doing and why, as plain data; the ROS layer turns it into gen0_msgs/PolicyStatus."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any


class RuntimeState(enum.IntEnum):
    """Numbered exactly as the ``STATE_*`` constants of gen0_msgs/msg/PolicyStatus."""

    IDLE = 0  # sending no commands (not started, deactivated, or between run_task goals)
    RUNNING = 1  # executing model chunks
    HOLDING = 2  # holding the last safe position; ``reason`` says why
    UNCERTAIN = 3  # holding because the model's uncertainty is above the threshold
    FAULT = 4  # cannot run (dead worker, broken policy); ``reason`` says why
    LOADING = 5  # loading a checkpoint; the previous chunk keeps executing meanwhile

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class RuntimeStatus:
    """A snapshot with the fields of gen0_msgs/msg/PolicyStatus (times in s, rates in Hz)."""

    state: RuntimeState
    reason: str
    uncertainty: float  # the value of ``uncertainty_signal`` at the last inference (dimensionless)
    uncertainty_threshold: float
    inference_latency: float  # duration of the last chunk inference, s
    observation_age: float  # age of the newest observation at the last inference, s
    control_rate: float  # measured action-stream rate, Hz
    chunk_count: int  # chunks produced since start
    checkpoint_id: str
    embodiment: str
    instruction: str
    stamp: float  # runtime clock time of this snapshot, s
    warnings: tuple[str, ...] = ()  # conditions that degrade but do not stop the policy (camera mismatch, ...)
    uncertainty_signal: str = "sample_spread"  # which signal ``uncertainty`` is (runtime/uncertainty.py)
    awaiting_goal: bool = False  # between tasks and at rest: a begin_task starts it at once (Runtime.awaiting_goal)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.label
        return data
