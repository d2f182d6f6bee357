"""Training windows and weighted mixtures.

A window is (episode, t, delay d): the model sees the observation at step t, is given the d
actions committed during its (simulated) thinking time, actions[t : t+d], and learns to continue
them up to actions[t+H-1]. Steps past the episode's end repeat the last action and are masked,
unless the source says its episodes end at the goal, at rest (``hold_after_end``): then the repeats
are what the robot should do there, stay, and are learned like any other step.

Sampling is a pure function of (seed, step, sample index), so any process of a distributed run
and any resumed run draws exactly the same windows without saving a random state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gen0_policy.data.episode import Episode
from gen0_policy.errors import ConfigError, DatasetError


@dataclass(frozen=True)
class Window:
    source: int  # index of the mixture source
    episode: int  # index of the episode within the source
    t: int  # observation step
    delay: int  # committed steps (0..max_prefix)


@dataclass
class MixtureSource:
    """A set of episodes (a dataset, one embodiment, one task...) and its share of each batch."""

    name: str
    episodes: list[Episode]
    weight: float = 1.0
    # Successful episodes end at rest at the goal (a scripted demonstration lingers there): the chunk
    # past the end is "stay", a target like any other. Masked instead, no window ever shows the model
    # what to do once there, and a policy that reached the target drifted off it again (a G1 reach
    # came within 3 cm on 18 of 20 held-out seeds and ended there on 2).
    hold_after_end: bool = False

    def __post_init__(self) -> None:
        if not self.episodes:
            raise DatasetError(f"mixture source {self.name!r} has no episodes; check its path and filters")
        if not (self.weight > 0 and np.isfinite(self.weight)):
            raise ConfigError(f"mixture source {self.name!r}: weight must be positive, got {self.weight}")
        empty = [i for i, e in enumerate(self.episodes) if len(e) == 0]
        if empty:
            raise DatasetError(f"mixture source {self.name!r}: episodes {empty} have no steps")


def action_chunk(
    actions: np.ndarray, t: int, horizon: int, hold_after_end: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """actions[t : t+horizon] padded with the last action; returns (chunk (H, D), valid (H,)). The
    padding is valid (learned) with ``hold_after_end``, else masked."""
    T = len(actions)
    idx = np.arange(t, t + horizon)
    valid = np.ones(horizon, dtype=bool) if hold_after_end else idx < T
    return actions[np.minimum(idx, T - 1)], valid


def sample_rng(seed: int, step: int, index: int, stream: int = 0) -> np.random.Generator:
    """The random stream of one sample of one step (stream separates windows from flow noise)."""
    return np.random.default_rng([seed, step, index, stream])


class WindowSampler:
    """Weighted mixture: source by weight, episode by length within the source, t and delay uniform."""

    def __init__(self, sources: Sequence[MixtureSource], max_prefix: int, seed: int = 0) -> None:
        if not sources:
            raise DatasetError("the training mixture is empty; give at least one dataset")
        if max_prefix < 0:
            raise ConfigError(f"max_prefix must be >= 0, got {max_prefix}")
        self.sources = list(sources)
        self.max_prefix = max_prefix
        self.seed = seed
        weights = np.array([s.weight for s in self.sources], dtype=np.float64)
        self.source_p = weights / weights.sum()
        self.episode_p = []
        for s in self.sources:
            lengths = np.array([len(e) for e in s.episodes], dtype=np.float64)
            self.episode_p.append(lengths / lengths.sum())

    def window(self, step: int, index: int) -> Window:
        rng = sample_rng(self.seed, step, index)
        source = int(rng.choice(len(self.sources), p=self.source_p))
        episode = int(rng.choice(len(self.episode_p[source]), p=self.episode_p[source]))
        t = int(rng.integers(len(self.sources[source].episodes[episode])))
        delay = int(rng.integers(self.max_prefix + 1))
        return Window(source, episode, t, delay)

    def sample(self, step: int, indices: Sequence[int]) -> list[Window]:
        return [self.window(step, i) for i in indices]

    def fixed(self, count: int, seed: int = 1234) -> list[Window]:
        """A deterministic spread of windows for validation (same every evaluation)."""
        rng = np.random.default_rng(seed)
        all_eps = [(s, e) for s, src in enumerate(self.sources) for e in range(len(src.episodes))]
        windows = []
        for i in range(count):
            s, e = all_eps[i % len(all_eps)]
            T = len(self.sources[s].episodes[e])
            windows.append(Window(s, e, int(rng.integers(T)), int(rng.integers(self.max_prefix + 1))))
        return windows


def split_episodes(episodes: Sequence[Episode], val_fraction: float, seed: int = 0) -> tuple[list, list]:
    """(train, held-out) episodes; at least one of each when there are two or more and val_fraction > 0."""
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(episodes))
    n_val = round(len(episodes) * val_fraction)
    if val_fraction > 0 and len(episodes) >= 2:
        n_val = min(max(n_val, 1), len(episodes) - 1)
    val = sorted(order[:n_val].tolist())
    train = sorted(order[n_val:].tolist())
    return [episodes[i] for i in train], [episodes[i] for i in val]
