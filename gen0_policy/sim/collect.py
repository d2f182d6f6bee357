"""Expert demonstrations in parallel: worker processes (spawned, each with its own MuJoCo and EGL
context) roll out seeded episodes; the parent writes them in seed order with the LeRobot writer, so
the same command gives the same dataset whatever the number of workers."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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
    action_noise_rad: float = 0.0  # recoveries in the data (rollout.py, RolloutConfig.action_noise_rad)
    grasp_gate_m: float = 0.0  # grasps and releases wait for the measured hand (experts.py); 0 = on schedule
    funnel_slope: float = 0.0  # the hand goes down to a grasp or release only over it (experts.py); 0 = off

    def __post_init__(self) -> None:
        from gen0_policy.sim.tasks import task_class

        if not self.tasks:
            raise ConfigError("collect needs at least one task")
        for task in self.tasks:
            task_class(task, self.embodiment)  # raises naming the tasks this embodiment can do
        if self.episodes < 1 or self.workers < 1:
            raise ConfigError(f"episodes and workers must be >= 1, got {self.episodes} and {self.workers}")
        if not self.action_noise_rad >= 0:
            raise ConfigError(f"action noise must be >= 0 rad, got {self.action_noise_rad}")
        if not self.grasp_gate_m >= 0:
            raise ConfigError(f"grasp gate must be >= 0 m, got {self.grasp_gate_m}")
        if not self.funnel_slope >= 0:
            raise ConfigError(f"funnel slope must be >= 0, got {self.funnel_slope}")
        if not 100.0 % self.fps == 0:  # checked again against the embodiment's rate by the rollout
            raise ConfigError(f"--fps {self.fps} must divide the 100 Hz control rate (e.g. 10, 20, 25, 50)")


def _episode(
    job: tuple[str, str, int, float, tuple[int, int] | None, float, float, float],
) -> tuple[str, int, Episode | None, bool]:
    """Worker: one seeded expert episode, recorded."""
    from gen0_policy.sim.env import make_env
    from gen0_policy.sim.policies import ExpertController
    from gen0_policy.sim.rollout import RolloutConfig, run_episode

    embodiment, task, seed, fps, size, noise, gate_m, funnel = job
    key = (embodiment, task, gate_m, funnel)
    if key not in _ENVS:  # rendered at the embodiment's own camera resolution, as a robot records
        _ENVS[key] = (make_env(embodiment, task, seed=seed), ExpertController(gate_m, funnel))
    env, controller = _ENVS[key]
    result = run_episode(env, controller, seed, RolloutConfig(record_fps=fps, image_size=size, action_noise_rad=noise))
    return task, seed, result.episode, result.success


def _write_results(
    results: Iterable[tuple[str, int, Episode | None, bool]],
    writer: Any,
    tasks: tuple[str, ...],
    keep_failed: bool,
    total: int,
    progress: bool,
) -> dict[str, Any]:
    """Write (task, seed, episode, success) in the order given; count what was written and failed."""
    written, failed, frames = 0, [], 0
    per_task: dict[str, dict[str, int]] = {t: {"written": 0, "failed": 0} for t in tasks}
    for n, (task, seed, episode, success) in enumerate(results, 1):
        if success or keep_failed:
            writer.add_episode(episode)
            written += 1
            frames += len(episode)
            per_task[task]["written"] += 1
        if not success:
            failed.append({"task": task, "seed": seed})
            per_task[task]["failed"] += 1
        if progress:
            print(f"\r{n}/{total} episodes, {len(failed)} failed", end="", flush=True)
    if progress:
        print()
    return {
        "written": written,
        "frames": frames,
        "failed": len(failed),
        "failed_episodes": failed,
        "per_task": per_task,
    }


def _one_torch_thread() -> None:
    """A worker's image resizes on one thread: N workers already fill N cores, and torch's own pool in
    each made a 320x240 -> 64x64 resize take 17.6 ms instead of 0.4 ms (a third of an episode's time)."""
    import torch

    torch.set_num_threads(1)


@contextmanager
def _ordered(worker: Callable[[Any], Any], jobs: list[Any], workers: int) -> Iterator[Iterable[Any]]:
    """``worker`` over ``jobs``, results in job order, in this process or ``workers`` spawned ones."""
    if workers == 1:
        try:
            yield map(worker, jobs)
        finally:  # close this process's worlds now, not in a garbage collector after EGL is gone
            for value in _ENVS.values():
                (value[0] if isinstance(value, tuple) else value).close()
            _ENVS.clear()
        return
    pool = mp.get_context("spawn").Pool(workers, initializer=_one_torch_thread)
    try:
        yield pool.imap(worker, jobs)  # ordered: the dataset does not depend on scheduling
    finally:
        pool.terminate()
        pool.join()


def collect(config: CollectConfig, out: Path, progress: bool = False) -> dict[str, Any]:
    """Write ``config.episodes`` expert episodes per task into a new LeRobot v3 dataset at ``out``."""
    from gen0_policy.data.lerobot import LeRobotWriter
    from gen0_policy.embodiment import load_embodiment

    embodiment = load_embodiment(config.embodiment)
    jobs = [
        (
            config.embodiment,
            task,
            config.seed + i,
            config.fps,
            config.image_size and tuple(config.image_size),
            config.action_noise_rad,
            config.grasp_gate_m,
            config.funnel_slope,
        )
        for task in config.tasks
        for i in range(config.episodes)
    ]
    with (
        LeRobotWriter(Path(out), embodiment, config.fps) as writer,
        _ordered(_episode, jobs, config.workers) as results,
    ):
        counts = _write_results(results, writer, config.tasks, config.keep_failed, len(jobs), progress)
    return {
        "out": str(out),
        "embodiment": config.embodiment,
        "fps": config.fps,
        "image_size": list(config.image_size) if config.image_size else None,
        "action_noise_rad": config.action_noise_rad,
    } | counts


@dataclass(frozen=True)
class MetaWorldCollectConfig:
    tasks: tuple[str, ...]  # Meta-World task names, or one suite name (mt10, mt50, ml45_train, ml45_test)
    episodes: int = 10  # per task
    seed: int = 0
    camera_size: tuple[int, int] | None = None  # (W, H) rendered; None = the Sawyer description's
    image_size: tuple[int, int] | None = None  # (W, H) stored (images.py); None = as rendered
    keep_failed: bool = False
    max_steps: int | None = None  # cut episodes short (tests); None = the env's limit
    workers: int = 1
    action_noise: float = 0.0  # recoveries in the data (metaworld_env.run_episode), in action units

    def __post_init__(self) -> None:
        from gen0_policy.sim.metaworld_env import SUITES, task_name

        tasks = SUITES.get(self.tasks[0], self.tasks) if len(self.tasks) == 1 else self.tasks
        object.__setattr__(self, "tasks", tuple(task_name(t) for t in tasks))
        if not self.tasks:
            raise ConfigError("collect-metaworld needs at least one task")
        if self.episodes < 1 or self.workers < 1:
            raise ConfigError(f"episodes and workers must be >= 1, got {self.episodes} and {self.workers}")
        if not 0 <= self.action_noise <= 1:
            raise ConfigError(f"Meta-World action noise must be 0-1 action units, got {self.action_noise}")


def _metaworld_episode(job: tuple[str, int, MetaWorldCollectConfig]) -> tuple[str, int, Episode | None, bool]:
    """Worker: one seeded Meta-World expert episode, recorded (one env per task and process)."""
    from gen0_policy.sim.metaworld_env import MetaWorldEnv, MetaWorldExpert, run_episode

    task, seed, config = job
    key = ("metaworld", task)
    if key not in _ENVS:
        for old in [k for k in _ENVS if k[0] == "metaworld"]:  # one Meta-World env (and renderer) at a time
            _ENVS.pop(old).close()
        _ENVS[key] = MetaWorldEnv(task, camera_size=config.camera_size)
    env = _ENVS[key]
    if not config.keep_failed:
        # Episodes are seeded (the layout and the noise), so a run without cameras says whether this one
        # succeeds at a fraction of the cost; a failure (all 500 steps, rendered) would be thrown away.
        dry = run_episode(env, MetaWorldExpert(), seed, max_steps=config.max_steps, action_noise=config.action_noise)
        if not dry.success:
            return task, seed, None, False
    result = run_episode(
        env,
        MetaWorldExpert(),
        seed,
        record=True,
        image_size=config.image_size,
        max_steps=config.max_steps,
        action_noise=config.action_noise,
    )
    return task, seed, result.episode, result.success


def collect_metaworld(config: MetaWorldCollectConfig, out: Path, progress: bool = False) -> dict[str, Any]:
    """Meta-World scripted-expert demonstrations, every env step recorded (the actions are per-step
    deltas, so the dataset runs at the env's 80 Hz), into a new LeRobot v3 dataset of the Sawyer;
    failed expert episodes are dropped unless ``keep_failed``. Episode i of a task uses seed SEED+i."""
    import time

    from gen0_policy.data.lerobot import LeRobotWriter
    from gen0_policy.embodiment import load_embodiment
    from gen0_policy.sim.metaworld_env import EMBODIMENT

    embodiment = load_embodiment(EMBODIMENT)
    fps = embodiment.control_rate_hz  # one recorded frame per env step (one frame per env step)
    jobs = [(task, config.seed + i, config) for task in config.tasks for i in range(config.episodes)]
    start = time.perf_counter()
    with (
        LeRobotWriter(Path(out), embodiment, fps) as writer,
        _ordered(_metaworld_episode, jobs, config.workers) as results,
    ):
        counts = _write_results(results, writer, config.tasks, config.keep_failed, len(jobs), progress)
    return (
        {"out": str(out), "embodiment": EMBODIMENT, "fps": fps, "action_noise": config.action_noise}
        | counts
        | {"wall_seconds": round(time.perf_counter() - start, 2)}
    )
