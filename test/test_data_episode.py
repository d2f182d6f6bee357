"""An episode is checked where it is made: (T, D) states and actions of one length, uint8 frames
for every step, a positive rate; its timestamps are k / fps."""

from __future__ import annotations

import numpy as np
import pytest

from gen0_policy.data.episode import Episode
from gen0_policy.errors import DatasetError


def make(**overrides) -> Episode:
    fields = dict(
        embodiment="panda",
        instruction="reach",
        fps=20.0,
        states=np.zeros((5, 3)),
        actions=np.ones((5, 3)),
        images={"scene": np.zeros((5, 4, 6, 3), np.uint8)},
    )
    return Episode(**{**fields, **overrides})


def test_valid_episode() -> None:
    episode = make()
    assert len(episode) == 5 and episode.states.dtype == np.float32 and episode.actions.dtype == np.float32
    np.testing.assert_allclose(episode.timestamps, np.arange(5) / 20.0)
    assert episode.success and episode.task == "" and episode.metadata == {}


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"states": np.zeros(5)}, "must be (T, D)"),
        ({"actions": np.zeros((4, 3))}, "5 states but 4 actions"),
        ({"fps": 0.0}, "fps must be positive"),
        ({"images": {"scene": np.zeros((5, 4, 6, 3), np.float32)}}, "frames must be uint8 (T, H, W, 3)"),
        ({"images": {"wrist": np.zeros((4, 4, 6, 3), np.uint8)}}, "camera wrist: 4 frames for 5 steps"),
    ],
)
def test_malformed_episodes_are_refused(overrides: dict, words: str) -> None:
    with pytest.raises(DatasetError) as info:
        make(**overrides)
    assert words in str(info.value)
