"""Training data sources: LeRobot v3 folders filtered into the mixture (robot, tasks, successes, a
cap), the camera sizes they were recorded at, and per-robot statistics of exactly those episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from model_fixtures import make_embodiment

from gen0_policy.data.episode import Episode
from gen0_policy.data.lerobot import LeRobotWriter, is_dataset
from gen0_policy.errors import DatasetError
from gen0_policy.train.config import DatasetSpec
from gen0_policy.train.sources import joint_stats, load_sources

PANDA = make_embodiment("panda")


def episode(i: int, task: str, success: bool) -> Episode:
    rng = np.random.default_rng(i)
    states = rng.normal(size=(6, PANDA.dof)).astype(np.float32)
    frames = np.full((6, 24, 32, 3), 10 * i, np.uint8)  # 4:3 frames, as a robot's camera records
    images = {"scene": frames, "wrist": frames.copy()}
    return Episode("panda", f"do {task}", 10.0, states, states + 0.1, images, success=success, task=task)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sources") / "panda_mixed"
    with LeRobotWriter(root, PANDA, 10.0) as writer:
        for i, (task, success) in enumerate([("reach", True), ("push", True), ("reach", False), ("reach", True)]):
            writer.add_episode(episode(i, task, success))
    return root


def test_filters_and_camera_sizes(dataset: Path) -> None:
    assert is_dataset(dataset) and not is_dataset(dataset / "meta")
    sources, sizes = load_sources([DatasetSpec(str(dataset))], image_size=16)
    assert [len(s.episodes) for s in sources] == [3]  # the failed episode left out
    assert sources[0].name == "panda_mixed" and sizes == {"panda": {"scene": [32, 24], "wrist": [32, 24]}}
    assert sources[0].episodes[0].images["scene"].shape == (6, 16, 16, 3)  # resized for the model
    reach = load_sources([DatasetSpec(str(dataset), tasks=["reach"], weight=2.0)], 16)[0][0]
    assert [e.task for e in reach.episodes] == ["reach", "reach"] and reach.weight == 2.0
    everything = load_sources([DatasetSpec(str(dataset), only_success=False, max_episodes=4)], 16)[0][0]
    assert len(everything.episodes) == 4
    capped = load_sources([DatasetSpec(str(dataset), max_episodes=1)], 16)[0][0]
    assert len(capped.episodes) == 1


def test_unusable_sources_are_clear_errors(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a LeRobot v3 folder"):
        load_sources([DatasetSpec(str(tmp_path))], 16)
    with pytest.raises(DatasetError, match="no episodes left after filters"):
        load_sources([DatasetSpec(str(dataset), embodiment="ur5e")], 16)


def test_joint_stats_are_per_robot_over_exactly_the_given_episodes(dataset: Path) -> None:
    sources, _ = load_sources([DatasetSpec(str(dataset))], 16)
    episodes = sources[0].episodes
    stats = joint_stats(episodes)
    assert list(stats) == ["panda"]
    states = np.concatenate([e.states for e in episodes])
    np.testing.assert_allclose(stats["panda"].state_mean, states.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["panda"].action_mean, states.mean(0) + 0.1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["panda"].action_std, stats["panda"].state_std, rtol=1e-5)
