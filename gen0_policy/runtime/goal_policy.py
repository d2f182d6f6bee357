"""A deterministic :class:`ChunkPolicy`: move in a straight line toward a joint-space goal at a fixed
speed, taking a configurable time to "think". It lets the runtime, its tests and its benchmark be
exercised (continuity, latency, abstention) without a trained network."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gen0_policy.errors import ConfigError


class GoalPolicy:
    """``infer`` continues from the last committed row (or the measured position) toward ``goal``.

    ``goal`` may be a callable of the observation, so a test can move the goal by changing what the
    robot sees. ``uncertainty`` (a number or a callable of the observation) sets the spread of the
    returned samples, so abstention can be tested.
    """

    def __init__(
        self,
        goal: np.ndarray | Callable[[Mapping[str, Any]], np.ndarray],
        speed: float = 0.5,
        chunk_size: int = 16,
        step_dt: float = 0.05,
        max_prefix: int = 8,
        delay_s: float = 0.0,
        uncertainty: float | Callable[[Mapping[str, Any]], float] = 0.0,
        checkpoint_id: str = "goal-policy",
    ) -> None:
        if speed <= 0 or chunk_size < 2 or step_dt <= 0 or not 0 <= max_prefix < chunk_size or delay_s < 0:
            raise ConfigError("GoalPolicy needs speed > 0, chunk_size >= 2, step_dt > 0, 0 <= max_prefix < chunk_size")
        self.goal = goal
        self.speed = float(speed)
        self.chunk_size = int(chunk_size)
        self.step_dt = float(step_dt)
        self.max_prefix = int(max_prefix)
        self.delay_s = float(delay_s)
        self.uncertainty = uncertainty
        self.checkpoint_id = checkpoint_id
        self.calls = 0

    def infer(
        self, observation: Mapping[str, Any], committed: np.ndarray | None = None, num_samples: int = 1
    ) -> dict[str, Any]:
        started = time.monotonic()
        self.calls += 1
        goal = np.asarray(self.goal(observation) if callable(self.goal) else self.goal, dtype=np.float64)
        prefix = np.zeros((0, goal.shape[0])) if committed is None else np.asarray(committed, dtype=np.float64)
        position = prefix[-1] if len(prefix) else np.asarray(observation["joint_positions"], dtype=np.float64)
        rows = [*prefix]
        step = self.speed * self.step_dt
        for _ in range(self.chunk_size - len(prefix)):
            offset = goal - position
            distance = float(np.linalg.norm(offset))
            position = goal.copy() if distance <= step else position + offset * (step / distance)
            rows.append(position)
        actions = np.asarray(rows, dtype=np.float32)
        spread = float(self.uncertainty(observation) if callable(self.uncertainty) else self.uncertainty)
        signs = np.where(np.arange(num_samples) % 2 == 0, 1.0, -1.0)[:, None, None] if num_samples > 1 else 0.0
        samples = actions[None] + np.float32(spread) * signs * np.ones_like(actions)[None]
        remaining = self.delay_s - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)
        return {"actions": actions, "uncertainty": spread if num_samples > 1 else float("nan"), "samples": samples}
