"""Where training data comes from: LeRobot v3 dataset folders, filtered into the mixture's sources,
and what the trainer derives from the episodes (per-robot normalization statistics)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gen0_policy.data.episode import Episode
from gen0_policy.data.windows import MixtureSource
from gen0_policy.errors import DatasetError
from gen0_policy.model.processor import JointStats
from gen0_policy.train.config import DatasetSpec

if TYPE_CHECKING:
    from gen0_policy.model.novelty import ImageNovelty
    from gen0_policy.model.policy import Gen0Policy

CameraSizes = dict[str, dict[str, list[int]]]  # {robot: {camera: [width, height]}}


def load_sources(specs: Sequence[DatasetSpec], image_size: int) -> tuple[list[MixtureSource], CameraSizes]:
    """Read each dataset folder (LeRobot v3) and apply its filters. Also returns the camera sizes the
    datasets were recorded at, so a rollout can render what the policy was trained on (a 4:3 render
    squashed to a square is not)."""
    from gen0_policy.data.lerobot import LeRobotDataset, is_dataset

    sources: list[MixtureSource] = []
    sizes: CameraSizes = {}
    for spec in specs:
        path = Path(spec.path)
        if not is_dataset(path):
            raise DatasetError(
                f"dataset {path} is not a LeRobot v3 folder (no meta/info.json); "
                "make one with `gen0 sim collect --out DIR` or `gen0 data build`"
            )
        dataset = LeRobotDataset(path)
        robot = spec.embodiment or dataset.robot_type
        for camera, (width, height) in dataset.camera_sizes.items():
            sizes.setdefault(robot, {})[camera] = [width, height]
        episodes = [
            e
            for e in dataset.episodes(image_size=(image_size, image_size))
            if (not spec.embodiment or e.embodiment == spec.embodiment)
            and (not spec.tasks or e.task in spec.tasks)
            and (e.success or not spec.only_success)
        ]
        if spec.max_episodes:
            episodes = episodes[: spec.max_episodes]
        if not episodes:
            raise DatasetError(f"dataset {path}: no episodes left after filters (embodiment, tasks, only_success)")
        sources.append(MixtureSource(spec.name, episodes, spec.weight, spec.hold_after_end))
    return sources, sizes


def joint_stats(episodes: Sequence[Episode]) -> dict[str, JointStats]:
    """Per-robot normalization statistics of the training episodes (stored beside the weights)."""
    by_robot: dict[str, list[Episode]] = {}
    for e in episodes:
        by_robot.setdefault(e.embodiment, []).append(e)
    return {
        name: JointStats.from_arrays(np.concatenate([e.states for e in eps]), np.concatenate([e.actions for e in eps]))
        for name, eps in sorted(by_robot.items())
    }


def image_novelty(
    policy: Gen0Policy, paths: Sequence[str | Path], max_episodes: int = 40, every: int = 4
) -> ImageNovelty:
    """Feature statistics of the frames a checkpoint was trained on (model/novelty.py): up to
    ``max_episodes`` successful episodes per dataset, spread over it, every ``every``-th frame, through
    the one image path inference uses (images.model_image) and the policy's own vision encoder."""
    import torch

    from gen0_policy.data.lerobot import LeRobotDataset, is_dataset
    from gen0_policy.images import model_image
    from gen0_policy.model.novelty import ImageNovelty

    features: dict[str, list[np.ndarray]] = {}
    size = policy.config.image_size
    for path in paths:
        if not is_dataset(Path(path)):
            raise DatasetError(f"dataset {path} is not a LeRobot v3 folder (no meta/info.json)")
        dataset = LeRobotDataset(Path(path))
        picks = np.unique(np.linspace(0, dataset.num_episodes - 1, min(max_episodes, dataset.num_episodes)).astype(int))
        for index in picks:
            episode = dataset.episode(int(index))
            if not episode.success or episode.embodiment not in policy.embodiments:
                continue
            for camera, _ in policy.processor.camera_layout(episode.embodiment, list(episode.images)):
                pixels = torch.from_numpy(model_image(episode.images[camera][::every], size))[:, None]
                with torch.inference_mode():
                    described = policy.model.vision.describe(pixels.to(policy.device))[:, 0].cpu().numpy()
                features.setdefault(ImageNovelty.key(episode.embodiment, camera), []).append(described)
    if not features:
        raise DatasetError(f"no successful episode of {policy.embodiments} in {list(map(str, paths))}")
    return ImageNovelty.fit({key: np.concatenate(values) for key, values in features.items()})
