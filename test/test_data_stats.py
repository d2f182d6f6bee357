"""Normalization statistics in LeRobot's format: exact against numpy, and aggregation over episodes
equal to the statistics of all frames at once (what LeRobot's aggregate_stats promises)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gen0_policy.data.stats import (
    QUANTILES,
    STAT_KEYS,
    aggregate_stats,
    compute_image_stats,
    compute_stats,
    load_stats,
    save_stats,
)
from gen0_policy.errors import DatasetError


def test_compute_stats_matches_numpy() -> None:
    values = np.random.default_rng(0).normal(2.0, 3.0, (500, 4)).astype(np.float32)
    stats = compute_stats(values)
    assert set(stats) == set(STAT_KEYS)
    as64 = values.astype(np.float64)
    np.testing.assert_array_equal(stats["mean"], as64.mean(0))
    np.testing.assert_array_equal(stats["std"], as64.std(0))
    np.testing.assert_array_equal(stats["min"], values.min(0))
    np.testing.assert_array_equal(stats["max"], values.max(0))
    assert stats["count"].tolist() == [500]
    for name, q in QUANTILES.items():
        np.testing.assert_allclose(stats[name], np.quantile(as64, q, axis=0))
    assert np.all(stats["q01"] <= stats["q50"]) and np.all(stats["q50"] <= stats["q99"])
    # Integers keep integer min/max (LeRobot's index columns); 1-D columns become (T, 1).
    ints = compute_stats(np.arange(10))
    assert ints["min"].dtype.kind == "i" and ints["min"].tolist() == [0] and ints["max"].tolist() == [9]
    assert ints["mean"].tolist() == [4.5]


def test_compute_stats_rejects_empty_and_non_finite() -> None:
    with pytest.raises(DatasetError, match="empty"):
        compute_stats(np.zeros((0, 3)))
    with pytest.raises(DatasetError, match="NaN or inf"):
        compute_stats(np.array([[1.0, np.inf]]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=6), st.integers(0, 2**16))
def test_aggregated_episode_stats_equal_stats_of_all_frames(lengths: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    episodes = [rng.normal(rng.uniform(-5, 5), rng.uniform(0.1, 3), (n, 3)) for n in lengths]
    pooled = aggregate_stats([{"x": compute_stats(e)} for e in episodes])["x"]
    exact = compute_stats(np.concatenate(episodes))
    for name in ("mean", "std", "min", "max"):
        np.testing.assert_allclose(pooled[name], exact[name], rtol=1e-9, atol=1e-9)
    assert pooled["count"].tolist() == [sum(lengths)]
    # Quantiles cannot be pooled exactly: a count-weighted mean, between the episodes' own.
    per_episode = np.stack([compute_stats(e)["q50"] for e in episodes])
    assert np.all(pooled["q50"] >= per_episode.min(0) - 1e-12) and np.all(pooled["q50"] <= per_episode.max(0) + 1e-12)


def test_aggregate_needs_episodes() -> None:
    with pytest.raises(DatasetError, match="no episode statistics"):
        aggregate_stats([])


def test_image_stats_are_per_channel_in_unit_range() -> None:
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    frames[..., 0] = 255  # red saturated, green 0, blue half
    frames[..., 2] = 128
    stats = compute_image_stats(frames)
    assert stats["mean"].shape == (3, 1, 1) and stats["count"].tolist() == [4]
    np.testing.assert_allclose(stats["mean"].ravel(), [1.0, 0.0, 128 / 255])
    np.testing.assert_allclose(stats["std"].ravel(), 0.0, atol=1e-12)
    big = np.random.default_rng(1).integers(0, 256, (120, 96, 128, 3), dtype=np.uint8)
    sampled = compute_image_stats(big)  # subsampled frames and pixels: representative, not exact
    assert sampled["count"].tolist() == [100]
    np.testing.assert_allclose(sampled["mean"].ravel(), 127.5 / 255, atol=0.01)
    with pytest.raises(DatasetError, match="uint8"):
        compute_image_stats(np.zeros((2, 4, 4, 3), np.float32))


def test_save_load_round_trip_and_clear_errors(tmp_path: Path) -> None:
    stats = {"action": compute_stats(np.random.default_rng(2).normal(size=(20, 2)))}
    (tmp_path / "meta").mkdir()
    save_stats(stats, tmp_path / "meta" / "stats.json")
    loaded = load_stats(tmp_path)  # a dataset folder finds meta/stats.json
    for name, value in stats["action"].items():
        np.testing.assert_array_equal(loaded["action"][name], value)
    with pytest.raises(DatasetError, match="no normalization stats"):
        load_stats(tmp_path / "nowhere")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"not a stats\.json"):
        load_stats(tmp_path / "bad.json")
