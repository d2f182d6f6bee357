"""The harmonic executor: perception stream, inference worker, action stream, safety, abstention.

No ROS here: the ROS node feeds ``Runtime.perception`` and publishes what ``on_command`` receives."""

from gen0_policy.runtime.action_stream import ActionStream, Command
from gen0_policy.runtime.clock import Clock, FunctionClock, JumpDetector, ManualClock, MonotonicClock, SystemClock
from gen0_policy.runtime.config import RuntimeConfig
from gen0_policy.runtime.goal_policy import GoalPolicy
from gen0_policy.runtime.perception import Observation, PerceptionStream
from gen0_policy.runtime.policy import ChunkPolicy, validate_output
from gen0_policy.runtime.runtime import Runtime
from gen0_policy.runtime.safety import SafetyFilter, SafetyLimits
from gen0_policy.runtime.status import RuntimeState, RuntimeStatus
from gen0_policy.runtime.trajectory import Chunk, Trajectory

__all__ = [
    "ActionStream",
    "Chunk",
    "ChunkPolicy",
    "Clock",
    "Command",
    "FunctionClock",
    "GoalPolicy",
    "JumpDetector",
    "ManualClock",
    "MonotonicClock",
    "Observation",
    "PerceptionStream",
    "Runtime",
    "RuntimeConfig",
    "RuntimeState",
    "RuntimeStatus",
    "SafetyFilter",
    "SafetyLimits",
    "SystemClock",
    "Trajectory",
    "validate_output",
]
