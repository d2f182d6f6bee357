"""Normalization statistics in LeRobot's format (min/max/mean/std/count/q01..q99 per feature).

The same numbers serve three readers: ``meta/episodes`` (per episode), ``meta/stats.json`` (whole
dataset, aggregated the way LeRobot aggregates) and the trainer, whose per-robot
:class:`~gen0_policy.model.processor.JointStats` (stored beside the weights) come from
:func:`compute_stats` too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from gen0_policy.errors import DatasetError

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_KEYS = ("min", "max", "mean", "std", "count", *QUANTILES)

Stats = dict[str, np.ndarray]  # stat name -> array (feature shape; count is (1,))


def compute_stats(values: np.ndarray) -> Stats:
    """Stats of a (T, ...) array over its first axis. Integer arrays keep integer min/max (as LeRobot)."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    if len(values) == 0:
        raise DatasetError("cannot compute statistics of an empty array (an episode with no steps?)")
    as_float = values.astype(np.float64)
    if not np.all(np.isfinite(as_float)):
        raise DatasetError("cannot compute statistics: values contain NaN or inf; clean the episode first")
    stats: Stats = {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": as_float.mean(axis=0),
        "std": as_float.std(axis=0),
        "count": np.array([len(values)], dtype=np.int64),
    }
    qs = np.quantile(as_float, list(QUANTILES.values()), axis=0)
    stats.update({k: qs[i] for i, k in enumerate(QUANTILES)})
    if not np.issubdtype(values.dtype, np.integer):
        stats["min"] = stats["min"].astype(np.float64)
        stats["max"] = stats["max"].astype(np.float64)
    return stats


def compute_image_stats(frames: np.ndarray, max_frames: int = 100, max_pixels: int = 4096) -> Stats:
    """Per-channel stats of uint8 (T, H, W, 3) frames scaled to [0, 1], shaped (3, 1, 1) like LeRobot's.

    Frames and pixels are subsampled evenly: image statistics only need to be representative,
    and an episode of 640x480 frames would otherwise cost seconds here.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise DatasetError(f"image stats need uint8 (T, H, W, 3) frames, got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise DatasetError("cannot compute image statistics of zero frames")
    idx = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), max_frames)).round().astype(int))
    h, w = frames.shape[1:3]
    stride = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
    sample = frames[idx, ::stride, ::stride].reshape(len(idx), -1, 3).astype(np.float64) / 255.0
    stats = compute_stats(sample.reshape(-1, 3))
    stats = {k: v.reshape(3, 1, 1) for k, v in stats.items() if k != "count"}
    stats["count"] = np.array([len(idx)], dtype=np.int64)
    return stats


def aggregate_stats(per_episode: Sequence[Mapping[str, Stats]]) -> dict[str, Stats]:
    """Dataset stats from per-episode stats: exact min/max/mean/std/count, count-weighted quantiles.

    Matches LeRobot's ``aggregate_stats``: the pooled variance adds each episode's spread around the
    global mean; quantiles cannot be pooled exactly, so they are averaged with count weights.
    """
    if not per_episode:
        raise DatasetError("no episode statistics to aggregate")
    keys = set(per_episode[0])
    out: dict[str, Stats] = {}
    for key in keys:
        parts = [ep[key] for ep in per_episode if key in ep]
        counts = np.array([float(p["count"][0]) for p in parts])
        weights = counts / counts.sum()

        def weighted(name: str, parts=parts, weights=weights) -> np.ndarray:
            stacked = np.stack([np.asarray(p[name], dtype=np.float64) for p in parts])
            return np.tensordot(weights, stacked, axes=1)

        mean = weighted("mean")
        second = sum(
            w * (np.asarray(p["std"]) ** 2 + (np.asarray(p["mean"]) - mean) ** 2)
            for w, p in zip(weights, parts, strict=True)
        )
        agg: Stats = {
            "min": np.min(np.stack([p["min"] for p in parts]), axis=0),
            "max": np.max(np.stack([p["max"] for p in parts]), axis=0),
            "mean": mean,
            "std": np.sqrt(second),
            "count": np.array([int(counts.sum())], dtype=np.int64),
        }
        agg.update({q: weighted(q) for q in QUANTILES})
        out[key] = agg
    return out


def stats_to_jsonable(stats: Mapping[str, Stats]) -> dict[str, dict[str, list]]:
    return {key: {name: np.asarray(v).tolist() for name, v in feature.items()} for key, feature in stats.items()}


def stats_from_jsonable(data: Mapping[str, Mapping[str, list]]) -> dict[str, Stats]:
    return {key: {name: np.asarray(v) for name, v in feature.items()} for key, feature in data.items()}


def save_stats(stats: Mapping[str, Stats], path: Path) -> None:
    path.write_text(json.dumps(stats_to_jsonable(stats), indent=4))


def load_stats(path: Path) -> dict[str, Stats]:
    """Read a ``stats.json`` (a dataset's ``meta/stats.json`` or a checkpoint's copy)."""
    path = Path(path)
    if path.is_dir():
        path = path / "meta" / "stats.json"
    if not path.is_file():
        raise DatasetError(f"no normalization stats at {path}; build the dataset with `gen0 data build` first")
    try:
        return stats_from_jsonable(json.loads(path.read_text()))
    except (json.JSONDecodeError, AttributeError, TypeError) as exc:
        raise DatasetError(f"{path} is not a stats.json file: {exc}") from exc
