"""Image novelty: does a camera show something the training data never did (a lens cap, a hand in
front of it, a scene it was never trained in)? A policy's own indecision (chunk disagreement, sample
spread) notices a wrong instruction well and a covered camera hardly at all: a blind policy can be a
confident one. This measures the input instead, as out-of-distribution detectors on a network's
features do: how many standard deviations each of the vision encoder's features
(:meth:`VisionEncoder.describe`) is from its mean over the training frames of that robot's camera.

    <checkpoint>/novelty.json   {"format": ..., "cameras": {"panda/scene": {"mean": [...], "std": [...], "frames": n}}}

The score is the mean squared z-score over the features (about 1 on training-like frames; each term
clipped so one dead feature cannot decide), the signal the maximum over the cameras present.
``gen0 model novelty --checkpoint DIR`` writes the file from the datasets the checkpoint was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gen0_policy.errors import CheckpointError

FORMAT = "gen0-image-novelty"
FILE = "novelty.json"
Z2_CLIP = 25.0  # a feature 5 std off counts as 5 std off, however far it is
STD_FLOOR = 0.1  # of the median std: features that hardly vary in training must not divide by ~0


@dataclass(frozen=True)
class FeatureStats:
    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,) floored
    frames: int


class ImageNovelty:
    """Per ``robot/camera`` feature statistics and the score of a new frame's features."""

    def __init__(self, cameras: Mapping[str, FeatureStats]) -> None:
        self.cameras = dict(cameras)

    @staticmethod
    def key(robot: str, camera: str) -> str:
        return f"{robot}/{camera}"

    @classmethod
    def fit(cls, features: Mapping[str, np.ndarray]) -> ImageNovelty:
        """``features``: {robot/camera: (n, F) features of n training frames} -> statistics."""
        cameras = {}
        for key, values in features.items():
            values = np.asarray(values, np.float64)
            if values.ndim != 2 or len(values) < 2:
                raise CheckpointError(f"image novelty of {key} needs (n >= 2, F) features, got {values.shape}")
            std = values.std(axis=0)
            floor = STD_FLOOR * float(np.median(std)) + 1e-6
            cameras[key] = FeatureStats(values.mean(axis=0), np.maximum(std, floor), len(values))
        return cls(cameras)

    def score(self, robot: str, camera: str, features: np.ndarray) -> float:
        """Mean clipped squared z-score of one frame's (F,) features; NaN if this camera has no statistics."""
        stats = self.cameras.get(self.key(robot, camera))
        features = np.asarray(features, np.float64)
        if stats is None or features.shape != stats.mean.shape:
            return math.nan
        z2 = np.square((features - stats.mean) / stats.std)
        return float(np.minimum(z2, Z2_CLIP).mean())

    def to_dict(self) -> dict[str, Any]:
        def rounded(x: np.ndarray) -> list[float]:
            return [float(f"{v:.6g}") for v in x]

        cameras = {
            k: {"mean": rounded(s.mean), "std": rounded(s.std), "frames": s.frames} for k, s in self.cameras.items()
        }
        return {"format": FORMAT, "z2_clip": Z2_CLIP, "cameras": cameras}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str | Path = FILE) -> ImageNovelty:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT or not isinstance(data.get("cameras"), dict):
            raise CheckpointError(f"{where} is not a {FORMAT} file; write it again with `gen0 model novelty`")
        cameras = {}
        for key, item in data["cameras"].items():
            try:
                mean, std = np.asarray(item["mean"], np.float64), np.asarray(item["std"], np.float64)
                frames = int(item["frames"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"{where}: camera {key} is malformed ({exc})") from exc
            if mean.ndim != 1 or mean.shape != std.shape or not (np.all(np.isfinite(mean)) and np.all(std > 0)):
                raise CheckpointError(f"{where}: camera {key} needs finite means and positive stds of one length")
            cameras[key] = FeatureStats(mean, std, frames)
        return cls(cameras)
