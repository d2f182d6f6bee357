"""Expert demonstrations in parallel: worker processes (spawned, each with its own MuJoCo and EGL
context) roll out seeded episodes; the parent writes them in seed order with the LeRobot writer, so
the same command gives the same dataset whatever the number of workers."""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gen0_policy.data.episode import Episode
from gen0_policy.errors import ConfigError

_ENVS: dict[tuple[str, str], Any] = {}  # per worker process: (embodiment, task) -> env


@dataclass(frozen=True)
class CollectConfig:
    embodiment: str
    tasks: tuple[str, ...]
    episodes: int = 10  # per task
    seed: int = 0
    workers: int = 1
    fps: float = 20.0
    image_size: tuple[int, int] | None = None  # (W, H) to downscale to (images.py); None = the cameras' own
    keep_failed: bool = False

    def __post_init__(self) -> None:
        from gen0_policy.sim.tasks import task_class

        if not self.tasks:
            raise ConfigError("collect needs at least one task")
        for task in self.tasks:
            task_class(task, self.embodiment)  # raises naming the tasks this embodiment can do
        if self.episodes < 1 or self.workers < 1:
            raise ConfigError(f"episodes and workers must be >= 1, got {self.episodes} and {self.workers}")
        if not 100.0 % self.fps == 0:  # checked again against the embodiment's rate by the rollout
            raise ConfigError(f"--fps {self.fps} must divide the 100 Hz control rate (e.g. 10, 20, 25, 50)")


def _episode(job: tuple[str, str, int, float, tuple[int, int] | None]) -> tuple[str, int, Episode | None, bool]:
    """Worker: one seeded expert episode, recorded."""
    from gen0_policy.sim.env import make_env
    from gen0_policy.sim.policies import ExpertController
    from gen0_policy.sim.rollout import RolloutConfig, run_episode

    embodiment, task, seed, fps, size = job
    key = (embodiment, task)
    if key not in _ENVS:  # rendered at the embodiment's own camera resolution, as a robot records
        _ENVS[key] = (make_env(embodiment, task, seed=seed), ExpertController())
    env, controller = _ENVS[key]
    result = run_episode(env, controller, seed, RolloutConfig(record_fps=fps, image_size=size))
    return task, seed, result.episode, result.success


def collect(config: CollectConfig, out: Path, progress: bool = False) -> dict[str, Any]:
    """Write ``config.episodes`` expert episodes per task into a new LeRobot v3 dataset at ``out``."""
    from gen0_policy.data.lerobot import LeRobotWriter
    from gen0_policy.embodiment import load_embodiment

    embodiment = load_embodiment(config.embodiment)
    jobs = [
        (config.embodiment, task, config.seed + i, config.fps, config.image_size and tuple(config.image_size))
        for task in config.tasks
        for i in range(config.episodes)
    ]
    written, failed, frames = 0, [], 0
    per_task: dict[str, dict[str, int]] = {t: {"written": 0, "failed": 0} for t in config.tasks}
    with LeRobotWriter(Path(out), embodiment, config.fps) as writer:
        if config.workers == 1:
            results = map(_episode, jobs)
            pool = None
        else:
            pool = mp.get_context("spawn").Pool(config.workers)
            results = pool.imap(_episode, jobs)  # ordered: the dataset does not depend on scheduling
        try:
            for n, (task, seed, episode, success) in enumerate(results, 1):
                if success or config.keep_failed:
                    writer.add_episode(episode)
                    written += 1
                    frames += len(episode)
                    per_task[task]["written"] += 1
                if not success:
                    failed.append({"task": task, "seed": seed})
                    per_task[task]["failed"] += 1
                if progress:
                    print(f"\r{n}/{len(jobs)} episodes, {len(failed)} failed", end="", flush=True)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    if progress:
        print()
    return {
        "out": str(out),
        "embodiment": config.embodiment,
        "fps": config.fps,
        "image_size": list(config.image_size) if config.image_size else None,
        "written": written,
        "frames": frames,
        "failed": len(failed),
        "failed_episodes": failed,
        "per_task": per_task,
    }
