"""One error for every checkpoint of a study: next-action error on fixed held-out episodes, in
units of the held-out data itself.

Each checkpoint normalizes actions with the statistics of its own training data, so its training
metric (``val/next_action_mse``) is in different units for every data size; a scaling curve needs
one ruler. Here: the deterministic chunk of ``Gen0Policy.infer`` against the demonstrated one, per
joint divided by that joint's std over the held-out actions, squared and averaged over the joints
that move and the chunk's steps. A joint moves when its std is above 1 % of the robot's largest:
an IK that holds a wrist "still" jitters it by 3e-4 rad, and divided by that, a prediction 5 mrad off
counted as 100 std (the UR5e's held-out error was 108 against 2 for the Panda).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gen0_policy.data.episode import Episode
from gen0_policy.errors import DatasetError

MOVING_FRACTION = 0.01  # of the robot's largest joint std: below it a joint counts as still


def heldout_scale(episodes: Sequence[Episode]) -> dict[str, np.ndarray]:
    """Per robot: the std of each joint's held-out actions (0 for joints that do not move)."""
    by_robot: dict[str, list[np.ndarray]] = {}
    for e in episodes:
        by_robot.setdefault(e.embodiment, []).append(e.actions)
    stds = {name: np.concatenate(a).std(0) for name, a in by_robot.items()}
    return {name: np.where(std > max(MOVING_FRACTION * std.max(), 1e-9), std, 0.0) for name, std in stds.items()}


def next_action_error(checkpoint: str | Path, episodes: Sequence[Episode], windows_per_episode: int = 8) -> float:
    """Mean normalized squared error of the predicted chunk over evenly spaced held-out windows."""
    from gen0_policy.model.policy import Gen0Policy

    if not episodes:
        raise DatasetError("no held-out episodes to measure the next-action error on")
    scale = heldout_scale(episodes)
    policy = Gen0Policy.load(checkpoint, precision="fp32")
    errors = []
    for episode in episodes:
        std = scale[episode.embodiment]
        moving = std > 0
        for t in np.unique(np.linspace(0, len(episode) - 2, windows_per_episode).round().astype(int)):
            observation = {
                "embodiment": episode.embodiment,
                "instruction": episode.instruction,
                "joint_positions": episode.states[t],
                "images": {cam: frames[t] for cam, frames in episode.images.items()},
            }
            predicted = policy.infer(observation)["actions"]
            true = episode.actions[t : t + policy.chunk_size]
            diff = (predicted[: len(true)] - true)[:, moving] / std[moving]
            errors.append(float(np.mean(diff**2)))
    return float(np.mean(errors))
