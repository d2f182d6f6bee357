"""The in-memory episode: what a simulator rollout, a recorded bag, or a LeRobot dataset
becomes before it is written or trained on. One obvious type shared by sim, data and train."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gen0_policy.errors import DatasetError


@dataclass
class Episode:
    """One demonstration at a fixed control rate.

    ``states[t]`` are measured joint positions and ``actions[t]`` the position targets commanded
    at step t, both in the embodiment's joint order (rad or m); ``images[cam][t]`` is the frame
    seen at step t (uint8 RGB, (H, W, 3)).
    """

    embodiment: str
    instruction: str
    fps: float
    states: np.ndarray  # (T, D) float32
    actions: np.ndarray  # (T, D) float32
    images: dict[str, np.ndarray] = field(default_factory=dict)  # cam -> (T, H, W, 3) uint8
    success: bool = True
    task: str = ""  # task id, e.g. "pick_place"; the instruction is the natural-language text
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.states = np.asarray(self.states, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        if self.states.ndim != 2 or self.actions.ndim != 2:
            raise DatasetError(
                f"episode states/actions must be (T, D); got {self.states.shape} and {self.actions.shape}"
            )
        if len(self.states) != len(self.actions):
            raise DatasetError(f"episode has {len(self.states)} states but {len(self.actions)} actions")
        if self.fps <= 0:
            raise DatasetError(f"episode fps must be positive, got {self.fps}")
        for cam, frames in self.images.items():
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
                raise DatasetError(
                    f"camera {cam}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}"
                )
            if len(frames) != len(self):
                raise DatasetError(f"camera {cam}: {len(frames)} frames for {len(self)} steps")

    def __len__(self) -> int:
        return len(self.states)

    @property
    def timestamps(self) -> np.ndarray:
        return np.arange(len(self), dtype=np.float32) / np.float32(self.fps)
