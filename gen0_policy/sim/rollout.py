"""Headless episodes: a controller (scripted expert or trained policy) drives an environment until
the task succeeds or time runs out; optionally the episode is recorded at a fixed frame rate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gen0_policy.data.episode import Episode
from gen0_policy.errors import ConfigError
from gen0_policy.images import fit_image
from gen0_policy.sim.env import SimEnv
from gen0_policy.sim.experts import Controller


@dataclass(frozen=True)
class RolloutConfig:
    max_duration: float | None = None  # s of sim time; None = the task's own limit
    linger: float = 0.3  # s kept running after success, so demonstrations end at rest
    stop_at_success: bool = True  # False: run to max_duration (what a hand does once at the goal)
    record_fps: float | None = None  # record an Episode at this rate (None: do not record)
    image_size: tuple[int, int] | None = None  # (W, H) recorded frames are fitted to (images.py); None = as rendered
    # Demonstrations with recoveries (DART, Laskey et al. 2017): the arm executes the expert's targets plus
    # a smooth random offset of this standard deviation (rad, arm joints only), while the recorded action
    # stays the expert's own target. The data then shows what to command from states and views off the
    # expert's path, which is where a learned policy finds itself. 0 = the expert's path exactly.
    action_noise_rad: float = 0.0
    action_noise_time_constant_s: float = 0.4  # correlation time of the offset (Ornstein-Uhlenbeck)

    def __post_init__(self) -> None:
        if self.max_duration is not None and self.max_duration <= 0:
            raise ConfigError(f"max_duration must be > 0, got {self.max_duration}")
        if self.linger < 0:
            raise ConfigError(f"linger must be >= 0, got {self.linger}")
        if self.record_fps is not None and self.record_fps <= 0:
            raise ConfigError(f"record_fps must be > 0, got {self.record_fps}")
        if not self.action_noise_rad >= 0 or not self.action_noise_time_constant_s > 0:
            raise ConfigError(
                f"action noise must be >= 0 rad with a time constant > 0 s, got {self.action_noise_rad} "
                f"and {self.action_noise_time_constant_s}"
            )


@dataclass
class RolloutResult:
    seed: int
    success: bool
    steps: int  # control steps until success (or the time limit)
    seconds: float  # sim time until success (or the time limit)
    instruction: str
    episode: Episode | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        return {"seed": self.seed, "success": self.success, "steps": self.steps, "seconds": round(self.seconds, 3)}


def run_episode(
    env: SimEnv,
    controller: Controller,
    seed: int,
    config: RolloutConfig | None = None,
    on_step: Callable[[SimEnv], None] | None = None,
) -> RolloutResult:
    """Reset ``env`` with ``seed`` and let ``controller`` act every control step; ``on_step(env)`` after
    each physics step (a benchmark's own measurements)."""
    config = config or RolloutConfig()
    env.reset(seed)
    controller.reset(env)
    limit = config.max_duration or env.task.max_duration
    n_max = round(limit / env.control_dt)
    record_every = None if config.record_fps is None else env.embodiment.control_rate_hz / config.record_fps
    if record_every is not None and abs(record_every - round(record_every)) > 1e-6:
        raise ConfigError(
            f"record fps {config.record_fps} must divide the control rate {env.embodiment.control_rate_hz} Hz"
        )
    states, actions, images = [], [], {c.name: [] for c in env.embodiment.cameras}
    success_step: int | None = None
    linger_steps = round(config.linger / env.control_dt)
    perturb = ActionNoise.for_arm(env, config, seed) if config.action_noise_rad > 0 else None
    step = 0
    while step < n_max:
        record = record_every is not None and step % round(record_every) == 0
        wants = getattr(controller, "wants_images", None)  # (time) -> bool: render only when it will look
        looks = record or (wants(env.time) if callable(wants) else getattr(controller, "needs_images", False))
        obs = env.observation() if looks else _proprio(env)
        targets = np.asarray(controller.act(obs), dtype=np.float64)
        # An expert waiting for the arm to settle before it grasps lets the perturbation die away.
        env.set_targets(targets if perturb is None else perturb(targets, calm=getattr(controller, "settling", False)))
        if record:
            states.append(obs["joint_positions"])
            actions.append(targets)
            for cam, frame in obs["images"].items():
                images[cam].append(frame if config.image_size is None else fit_image(frame, *config.image_size))
        env.step()
        if on_step is not None:
            on_step(env)
        step += 1
        if success_step is None and env.success():
            success_step = step
        if config.stop_at_success and success_step is not None and step >= success_step + linger_steps:
            break
    success = success_step is not None
    steps = success_step if success else step
    episode = None
    if record_every is not None:
        episode = Episode(
            embodiment=env.embodiment.name,
            instruction=env.instruction,
            fps=float(config.record_fps),
            states=np.stack(states),
            actions=np.stack(actions),
            images={cam: np.stack(frames) for cam, frames in images.items()},
            success=success,
            task=env.task_name,
            metadata={"seed": seed, "source": "sim_expert", "action_noise_rad": config.action_noise_rad},
        )
    return RolloutResult(seed, success, steps, steps * env.control_dt, env.instruction, episode)


class ActionNoise:
    """A seeded Ornstein-Uhlenbeck offset added to the perturbed entries of each command (an arm's
    joint targets, never its grippers'; Meta-World's hand displacements, not its gripper effort), so
    the same seed and settings give the same demonstration; clipped to ``lower``/``upper``. ``calm``
    steps add no new noise, so the offset decays with its time constant (an expert waiting at a grasp
    for the arm to come to where the fingers close on the object)."""

    def __init__(
        self,
        perturbed: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        control_dt_s: float,
        sigma: float,
        time_constant_s: float,
        seed: int,
    ) -> None:
        self.rng = np.random.default_rng([seed, 0x0D15])  # apart from the scene's own seeded draws
        self.perturbed = np.asarray(perturbed, bool)
        self.lower, self.upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
        self.decay = float(np.exp(-control_dt_s / time_constant_s))
        self.sigma = sigma
        self.offset = np.zeros(int(self.perturbed.sum()))

    @classmethod
    def for_arm(cls, env: SimEnv, config: RolloutConfig, seed: int) -> ActionNoise:
        """Our MuJoCo robots: the arm joints' position targets, in rad, within the joint limits."""
        emb = env.embodiment
        arm = ~np.asarray(emb.gripper_mask, bool)
        sigma_rad, tau_s = config.action_noise_rad, config.action_noise_time_constant_s
        return cls(arm, emb.lower, emb.upper, env.control_dt, sigma_rad, tau_s, seed)

    def __call__(self, targets: np.ndarray, calm: bool = False) -> np.ndarray:
        kick = 0.0 if calm else self.sigma * np.sqrt(1.0 - self.decay**2)  # keeps the stationary std at sigma
        self.offset = self.decay * self.offset + kick * self.rng.standard_normal(self.offset.shape)
        out = targets.copy()
        out[self.perturbed] += self.offset
        return np.clip(out, self.lower, self.upper)


def _proprio(env: SimEnv) -> dict[str, Any]:
    """An observation without images, for controllers that do not look (scripted experts)."""
    return {"time": env.time, "joint_positions": env.joint_positions(), "joint_velocities": env.joint_velocities()}
