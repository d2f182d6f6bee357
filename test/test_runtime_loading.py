"""Loading a checkpoint for a robot: the shipped one loads for each of its robots, and with
``warm_up_samples`` one inference runs first on the graph the runtime will run (native camera sizes,
a committed prefix, the runtime's sample count), so the first real chunk does not pay for it."""

from __future__ import annotations

import numpy as np
import pytest

from gen0_policy.embodiment import load_embodiment
from gen0_policy.paths import shipped_checkpoint
from gen0_policy.runtime.loading import load_chunk_policy, warm_up


class Recorder:
    """Records what it is asked to infer."""

    max_prefix = 8

    def __init__(self) -> None:
        self.calls: list[tuple[dict, np.ndarray, int]] = []

    def infer(self, observation, committed=None, num_samples=1):
        self.calls.append((observation, committed, num_samples))
        return {}


def test_warm_up_infers_once_on_the_robots_own_frames_with_a_prefix() -> None:
    panda, recorder = load_embodiment("panda"), Recorder()
    warm_up(recorder, panda, num_samples=3)
    ((observation, committed, samples),) = recorder.calls
    assert samples == 3 and committed.shape == (4, panda.dof) and np.allclose(committed, panda.home)
    assert observation["embodiment"] == "panda" and np.allclose(observation["joint_positions"], panda.home)
    assert {name: image.shape for name, image in observation["images"].items()} == {
        cam.name: (cam.height, cam.width, 3) for cam in panda.cameras
    }


@pytest.mark.parametrize("robot", ["panda", "ur5e", "g1"])
def test_the_shipped_checkpoint_loads_warmed_up_and_then_infers(robot: str) -> None:
    embodiment = load_embodiment(robot)
    policy = load_chunk_policy(shipped_checkpoint(), embodiment, warm_up_samples=1)
    observation = {
        "embodiment": robot,
        "instruction": "press the button",
        "joint_positions": embodiment.home.copy(),
        "images": {cam.name: np.full((cam.height, cam.width, 3), 90, np.uint8) for cam in embodiment.cameras},
    }
    out = policy.infer(observation, None, 1)
    assert out["actions"].shape == (policy.chunk_size, embodiment.dof) and np.isfinite(out["actions"]).all()
