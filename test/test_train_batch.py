"""Batch preparation: the goal loss's keyframes (where the hand must be next) from gripper commands."""

from __future__ import annotations

import numpy as np
from model_fixtures import make_embodiment, make_episode

from gen0_policy.model.config import preset
from gen0_policy.model.language import language_encoder
from gen0_policy.model.processor import JointStats, Processor
from gen0_policy.train.batch import next_keyframes, prepare_episode

LOWER, UPPER = np.array([-1.0, 0.0]), np.array([1.0, 0.04])
GRIPPER = np.array([False, True])


def test_keyframe_is_the_next_grasp_then_the_release_then_the_end() -> None:
    actions = np.zeros((10, 2))
    actions[:, 1] = 0.04  # open
    actions[4:8, 1] = 0.0  # closed from step 4 (grasp) until step 8 (release)
    assert next_keyframes(actions, GRIPPER, LOWER, UPPER).tolist() == [4, 4, 4, 4, 4, 8, 8, 8, 8, 9]


def test_without_gripper_events_the_keyframe_is_the_episode_end() -> None:
    actions = np.zeros((6, 2))
    actions[:, 1] = 0.04
    assert next_keyframes(actions, GRIPPER, LOWER, UPPER).tolist() == [5] * 6
    assert next_keyframes(actions, np.zeros(2, bool), LOWER, UPPER).tolist() == [5] * 6  # a robot without gripper


def test_prepared_episode_carries_keyframes() -> None:
    episode = make_episode("panda", 0, steps=12)
    episode.actions[6:, -1] = 0.0  # the finger closes at step 6
    config = preset("test", language_encoder="hash")
    processor = Processor(
        config, [make_embodiment("panda")], {"panda": JointStats.from_arrays(episode.states, episode.actions)}
    )
    prepared = prepare_episode(episode, processor, language_encoder("hash", config.language_dim))
    assert prepared.keyframes.tolist() == [6] * 7 + [11] * 5
