"""Small synthetic robots and episodes for the model and training tests: 6+1, 7+1 and 31 DoF,
built in code so the tests do not depend on the sim's YAML files or on rendering."""

from __future__ import annotations

import numpy as np

from gen0_policy.data.episode import Episode
from gen0_policy.embodiment import CameraSpec, Embodiment, JointSpec

ROBOTS = {"ur5e": (6, 1), "panda": (7, 1), "g1": (31, 0)}


def make_embodiment(name: str) -> Embodiment:
    arm, grippers = ROBOTS[name]
    joints = [JointSpec(f"{name}_j{i}", -3.0, 3.0, 2.0, 50.0, 0.0) for i in range(arm)]
    joints += [JointSpec(f"{name}_finger{i}", 0.0, 0.04, 0.2, 20.0, 0.0, gripper=True) for i in range(grippers)]
    cameras = [CameraSpec("scene", "scene", 64, 48)]
    if name != "g1":
        cameras.append(CameraSpec("wrist", "wrist", 64, 48))
    return Embodiment(name, f"synthetic {name}", tuple(joints), tuple(cameras), ())


def make_episode(name: str, seed: int, steps: int = 24, image: int = 32, fps: float = 10.0) -> Episode:
    """A smooth reach from a random start to one of two goals; the goal's side is drawn in the
    image and named in the instruction, so the whole chunk is predictable from the observation."""
    rng = np.random.default_rng(seed)
    embodiment = make_embodiment(name)
    D = embodiment.dof
    side = int(rng.integers(2))
    base = np.random.default_rng(D).uniform(-0.5, 0.5, D).astype(np.float32)
    goal = base + (0.6 if side else -0.6)
    start = rng.uniform(-0.3, 0.3, D).astype(np.float32)
    s = np.linspace(0, 1, steps, dtype=np.float32)[:, None]
    actions = start + (goal - start) * (3 * s**2 - 2 * s**3)
    states = np.concatenate([start[None], actions[:-1]])
    frames = np.zeros((steps, image, image, 3), dtype=np.uint8)
    px = image - 12 if side else 4
    frames[:, 4:12, px : px + 8, 0] = 255
    images = {cam.name: frames.copy() for cam in embodiment.cameras}
    return Episode(name, f"reach to the {'right' if side else 'left'}", fps, states, actions, images, task="reach")


def make_episodes(name: str, count: int, seed: int = 0, **kwargs) -> list[Episode]:
    return [make_episode(name, seed * 1000 + i, **kwargs) for i in range(count)]
