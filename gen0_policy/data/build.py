"""Recorded bags -> a LeRobot v3 dataset: each bag read into an episode (:mod:`gen0_policy.data.bags`),
checked, optionally filtered to successes, written; a quality report beside it. One unusable bag is
reported, not fatal."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gen0_policy.data.bags import BuildConfig, read_bag
from gen0_policy.data.quality import EpisodeQuality
from gen0_policy.embodiment import load_embodiment
from gen0_policy.errors import DatasetError


@dataclass
class BuildReport:
    written: list[str] = field(default_factory=list)  # bags that became episodes
    filtered: list[str] = field(default_factory=list)  # failed episodes left out (--only-success)
    rejected: dict[str, str] = field(default_factory=dict)  # bag -> why it could not be used
    quality: list[EpisodeQuality] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "filtered": self.filtered,
            "rejected": self.rejected,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "episodes": [q.to_dict() for q in self.quality],
        }


def build_dataset(
    bags: Sequence[Path],
    out: Path,
    config: BuildConfig | None = None,
    *,
    only_success: bool = False,
    on_episode: Callable[[EpisodeQuality], None] | None = None,
) -> BuildReport:
    """Bags -> a LeRobot v3 dataset at ``out`` plus ``out/quality.json``. Unusable bags are reported, not fatal."""
    from gen0_policy.data.lerobot import LeRobotWriter

    if (Path(out) / "meta" / "info.json").exists():  # refuse before reading any bag, not after the first
        raise DatasetError(f"{out} already holds a dataset; choose a new output folder or delete it")
    config = config or BuildConfig()
    report = BuildReport()
    writer: LeRobotWriter | None = None
    began = time.perf_counter()
    try:
        for bag in bags:
            try:
                episode, quality = read_bag(bag, config)
            except DatasetError as exc:
                report.rejected[str(bag)] = str(exc)
                quality = EpisodeQuality(source=str(bag), errors=[str(exc)])
                report.quality.append(quality)
                if on_episode:
                    on_episode(quality)
                continue
            report.quality.append(quality)
            if on_episode:
                on_episode(quality)
            if not quality.ok:
                report.rejected[str(bag)] = "; ".join(quality.errors)
                continue
            if only_success and not episode.success:
                report.filtered.append(str(bag))
                continue
            if writer is None:
                writer = LeRobotWriter(out, load_embodiment(episode.embodiment), config.fps)
            try:
                writer.add_episode(episode)
            except DatasetError as exc:
                report.rejected[str(bag)] = str(exc)
                continue
            report.written.append(str(bag))
            report.frames += len(episode)
    finally:
        if writer is not None and writer.episodes:
            writer.close()
    report.seconds = time.perf_counter() - began
    if writer is None or not report.written:
        raise DatasetError(
            f"no episode could be built from {len(bags)} bags "
            f"({len(report.rejected)} rejected, {len(report.filtered)} filtered as failed): "
            + "; ".join(f"{Path(b).name}: {why}" for b, why in list(report.rejected.items())[:3])
        )
    (Path(out) / "quality.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report
