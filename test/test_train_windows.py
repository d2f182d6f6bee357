"""Training windows and weighted mixtures (gen0_policy/data/windows.py) and their collation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_fixtures import ROBOTS, make_embodiment, make_episode, make_episodes

from gen0_policy.data.windows import MixtureSource, Window, WindowSampler, action_chunk, split_episodes
from gen0_policy.errors import ConfigError, DatasetError
from gen0_policy.model.config import ModelConfig, preset
from gen0_policy.model.language import HashEncoder
from gen0_policy.model.processor import JointStats, Processor
from gen0_policy.train.batch import BatchBuilder
from gen0_policy.train.config import TrainConfig


def test_chunk_pads_past_the_end_with_the_last_action_and_masks_it() -> None:
    actions = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    chunk, valid = action_chunk(actions, 7, 5)
    np.testing.assert_array_equal(chunk[:, 0], [7, 8, 9, 9, 9])
    np.testing.assert_array_equal(valid, [True, True, True, False, False])


def test_hold_after_end_learns_the_padding_of_successful_episodes_only() -> None:
    """A demonstration that ends at the goal, at rest, says what to do there: stay. With
    hold_after_end the padded steps are learned, not masked; a failed episode's end is no goal."""
    config = preset("test", language_encoder="hash")
    robots = [make_embodiment(n) for n in ROBOTS]
    stats = {
        e.name: JointStats.from_arrays(*(lambda ep: (ep.states, ep.actions))(make_episode(e.name, 0))) for e in robots
    }
    processor = Processor(config, robots, stats)
    reached, failed = make_episode("panda", 3), make_episode("panda", 4)
    failed.success = False
    H = config.chunk_size
    windows = [Window(0, 0, t=20, delay=0), Window(0, 1, t=20, delay=0)]

    def masks(hold: bool) -> list[list[bool]]:
        source = MixtureSource("p", [reached, failed], hold_after_end=hold)
        return BatchBuilder(config, [source], processor, HashEncoder())(windows, 0, 0, [0, 1])["action_mask"].tolist()

    ends = [True] * 4 + [False] * (H - 4)  # 24-step episodes
    assert masks(False) == [ends, ends]
    assert masks(True) == [[True] * H, ends]
    chunk, valid = action_chunk(np.arange(10.0)[:, None], 8, 4, hold_after_end=True)
    assert chunk[:, 0].tolist() == [8, 9, 9, 9] and valid.all()


def test_mixture_weights_and_determinism() -> None:
    a = MixtureSource("a", make_episodes("ur5e", 2, seed=0), weight=3.0)
    b = MixtureSource("b", make_episodes("panda", 2, seed=1), weight=1.0)
    sampler = WindowSampler([a, b], max_prefix=3, seed=7)
    windows = sampler.sample(0, range(4000))
    share = np.mean([w.source == 0 for w in windows])
    assert 0.72 < share < 0.78  # 3:1
    assert {w.delay for w in windows} == {0, 1, 2, 3}
    assert all(0 <= w.t < len(sampler.sources[w.source].episodes[w.episode]) for w in windows)
    # Same (seed, step, index) -> same window, in any process and after any resume.
    assert WindowSampler([a, b], max_prefix=3, seed=7).window(5, 11) == sampler.window(5, 11)
    assert sampler.window(5, 11) != sampler.window(6, 11) or sampler.window(5, 12) != sampler.window(6, 12)


def test_bad_mixtures_are_refused() -> None:
    with pytest.raises(DatasetError, match="no episodes"):
        MixtureSource("empty", [])
    with pytest.raises(ConfigError, match="weight"):
        MixtureSource("neg", make_episodes("ur5e", 1), weight=-1)
    with pytest.raises(DatasetError, match="empty"):
        WindowSampler([], max_prefix=2)


def test_split_keeps_one_of_each() -> None:
    episodes = make_episodes("panda", 5)
    train, val = split_episodes(episodes, 0.2, seed=0)
    assert len(train) == 4 and len(val) == 1
    assert split_episodes(episodes[:2], 0.01)[1] != []
    assert split_episodes(episodes, 0.0)[1] == []


def test_batch_holds_the_harmonic_window() -> None:
    config = preset("test", language_encoder="hash")
    robots = [make_embodiment(n) for n in ROBOTS]
    stats = {
        e.name: JointStats.from_arrays(*(lambda ep: (ep.states, ep.actions))(make_episode(e.name, 0))) for e in robots
    }
    processor = Processor(config, robots, stats)
    episode = make_episode("panda", 3)
    builder = BatchBuilder(config, [MixtureSource("p", [episode])], processor, HashEncoder())
    window = Window(0, 0, t=20, delay=2)
    batch = builder([window], seed=0, step=0, indices=[0])
    H = config.chunk_size
    assert batch["actions"].shape == (1, H, config.max_dof)
    expected = processor.normalize_actions("panda", episode.actions[np.minimum(np.arange(20, 20 + H), 23)])
    np.testing.assert_allclose(batch["actions"][0].numpy(), expected, rtol=1e-6)
    assert batch["committed"][0].tolist() == [True, True] + [False] * (H - 2)  # actions t..t+d-1 are given
    assert batch["action_mask"][0].tolist() == [True] * 4 + [False] * (H - 4)  # 24-step episode ends
    np.testing.assert_allclose(
        batch["state"][0, :8].numpy(), processor.normalize_state("panda", episode.states[20])[:8]
    )
    assert batch["dof_mask"][0].sum() == 8 and batch["camera_mask"][0].all()
    # Flow noise and time are per sample and reproducible.
    again = builder([window], seed=0, step=0, indices=[0])
    assert torch.equal(batch["noise"], again["noise"]) and torch.equal(batch["flow_t"], again["flow_t"])


def one_panda_episode(random_pixels: bool = False) -> tuple[ModelConfig, Processor, list[MixtureSource]]:
    """What a BatchBuilder takes, for one Panda episode (its pictures random noise if asked)."""
    config = preset("test", language_encoder="hash")
    episode = make_episode("panda", 3)
    if random_pixels:
        rng = np.random.default_rng(0)
        episode.images = {cam: rng.integers(0, 256, im.shape, dtype=np.uint8) for cam, im in episode.images.items()}
    stats = {"panda": JointStats.from_arrays(episode.states, episode.actions)}
    return config, Processor(config, [make_embodiment("panda")], stats), [MixtureSource("p", [episode])]


def test_state_dropout_hides_the_joint_state_of_a_reproducible_fraction() -> None:
    config, processor, source = one_panda_episode()
    windows = [Window(0, 0, t=t % 20, delay=0) for t in range(200)]
    kept = BatchBuilder(config, source, processor, HashEncoder())(windows, seed=0, step=0, indices=range(200))
    builder = BatchBuilder(config, source, processor, HashEncoder(), state_dropout=0.5)
    batch = builder(windows, seed=0, step=0, indices=range(200))
    hidden = (batch["state"] == 0).all(dim=1)
    assert 70 < int(hidden.sum()) < 130  # about half
    assert torch.equal(batch["state"][~hidden], kept["state"][~hidden])
    assert torch.equal(batch["noise"], kept["noise"]) and torch.equal(batch["actions"], kept["actions"])
    again = builder(windows, seed=0, step=0, indices=range(200))
    assert torch.equal(batch["state"], again["state"])


def test_image_shift_moves_each_picture_reproducibly_and_touches_nothing_else() -> None:
    """image_shift_px (DrQ's random shift): every camera's picture is the same picture moved by a whole
    number of pixels within the bound, the same for the same (seed, step, index), and the rest of the
    batch (noise, actions, state) is that of no shift."""
    config, processor, source = one_panda_episode(random_pixels=True)
    windows = [Window(0, 0, t=t % 20, delay=0) for t in range(40)]
    plain = BatchBuilder(config, source, processor, HashEncoder())(windows, seed=0, step=3, indices=range(40))
    builder = BatchBuilder(config, source, processor, HashEncoder(), image_shift_px=4)
    batch = builder(windows, seed=0, step=3, indices=range(40))
    for key in ("noise", "actions", "state", "flow_t"):
        assert torch.equal(batch[key], plain[key]), key
    assert torch.equal(batch["images"], builder(windows, seed=0, step=3, indices=range(40))["images"])
    assert not torch.equal(batch["images"], builder(windows, seed=0, step=4, indices=range(40))["images"])
    S, offsets = config.image_size, set()
    for row in range(40):
        for cam in range(int(plain["camera_mask"][row].sum())):
            before, after = plain["images"][row, cam], batch["images"][row, cam]
            # the interior of the shifted picture is the original, moved by (dy, dx) with |dy|, |dx| <= 4
            found = [
                (dy, dx)
                for dy in range(-4, 5)
                for dx in range(-4, 5)
                if torch.equal(after[:, 4 : S - 4, 4 : S - 4], before[:, 4 + dy : S - 4 + dy, 4 + dx : S - 4 + dx])
            ]
            assert len(found) == 1, (row, cam)
            offsets.add(found[0])
    assert len(offsets) > 10  # offsets differ from picture to picture
    with pytest.raises(ConfigError, match="image_shift_px must be >= 0"):
        TrainConfig(image_shift_px=-1)
