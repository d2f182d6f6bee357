"""Controllers for the per-step rollout loop (sim/rollout.py): the scripted expert, or a trained
checkpoint behind the same ``reset(env)`` / ``act(observation)`` calls (see experts.Controller).

The checkpoint controller plays chunks straight into the simulated servos: ``gen0 sim rollout
--executor direct`` and the diagnostic benchmarks that read its every step. ``gen0 sim rollout``
itself runs a checkpoint through the policy node's runtime (sim/lockstep.py), which scores what the
node does through ROS; this controller infers at once from a moving arm's frame, where the runtime
looks once the arm has come to rest, and stacks and pushes less for it."""

from __future__ import annotations

from typing import Any

import numpy as np

from gen0_policy.errors import CheckpointError, ConfigError
from gen0_policy.runtime.safety import SafeState, SafetyFilter, SafetyLimits
from gen0_policy.runtime.uncertainty import SignalMonitor
from gen0_policy.sim.env import SimEnv
from gen0_policy.sim.experts import Controller, ScriptedExpert, make_expert


class ExpertController:
    """The scripted expert, re-made when the environment changes."""

    def __init__(self, grasp_gate_m: float = 0.0, funnel_slope: float = 0.0) -> None:
        self.expert: ScriptedExpert | None = None
        self.grasp_gate_m = grasp_gate_m  # experts.py: grasp and release only with the hand this close
        self.funnel_slope = funnel_slope  # experts.py: go down to a grasp or release only over it

    def reset(self, env: SimEnv) -> None:
        if self.expert is None or self.expert.env is not env:
            self.expert = make_expert(env, self.grasp_gate_m, self.funnel_slope)
        else:
            self.expert.reset(env)

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        return self.expert.act(observation)

    @property
    def settling(self) -> bool:
        """The expert waits at a grasp or release for the arm (the rollout calms its perturbation)."""
        return self.expert is not None and self.expert.settling


class CheckpointController:
    """Runs a trained Gen0Policy synchronously: infer a chunk, play ``execute`` of its steps (linearly
    interpolated from the policy's step to the control rate), infer again. Targets pass the runtime's
    safety filter (position, velocity and acceleration limits), as they do through the policy node:
    a rollout that let the simulated servos move faster than the robot can counted grasps that
    the node, and the robot, could not make.

    ``num_samples >= 2`` also draws samples for the spread (the executed chunk is the deterministic
    estimate either way, so outcomes do not change); every candidate uncertainty signal of each
    inference is kept in ``signals`` as (sim time, {signal: value}) for the episode."""

    needs_images = True

    def __init__(self, path: str, execute: int | None = None, num_samples: int = 1) -> None:
        try:
            from gen0_policy.model.policy import Gen0Policy
        except ImportError as exc:
            raise CheckpointError(f"checkpoint rollout needs gen0_policy.model ({exc})") from exc
        self.policy = Gen0Policy.load(path)
        # None: the robot's own share of the chunk (Embodiment.sync_execute_fraction), set at reset. For
        # the arms three quarters: each re-plan from the robot's own motion invites the copycat drift.
        # Measured on held-out seeds (100-119) with checkpoints/multitask_cpu, 12 of 16 steps beat 8 and
        # 4 (reach 90/80/45 %, push 45/30/10 %); all 16 did worse on reach.
        if execute is not None and not 1 <= execute <= self.policy.chunk_size:
            raise ConfigError(f"execute must be in [1, {self.policy.chunk_size}] (the chunk), got {execute}")
        self._execute_asked = execute
        self.execute = execute or 0  # rows played between inferences; the robot's own set at reset
        self.num_samples = num_samples
        self.env: SimEnv | None = None
        self.signals: list[tuple[float, dict[str, float]]] = []

    def reset(self, env: SimEnv) -> None:
        self.policy.check_embodiment(env.embodiment)
        self.env = env
        self.execute = self._execute_asked or env.embodiment.sync_execute_steps(self.policy.chunk_size)
        self._chunk: np.ndarray | None = None
        self._chunk_start = 0.0
        self._monitor = SignalMonitor(env.embodiment.upper - env.embodiment.lower)
        self.signals = []
        self._safety = SafetyFilter(SafetyLimits.from_embodiment(env.embodiment))
        self._commanded: SafeState | None = None  # from the measured position at the first step

    @property
    def commanded(self) -> np.ndarray | None:
        """The last target sent to the robot (None before the episode's first step)."""
        return None if self._commanded is None else self._commanded.position.copy()

    def hold(self, target: np.ndarray, now: float) -> None:
        """Do not act on the chunk just inferred (too uncertain): keep ``target`` and think again one
        policy step later, as the runtime holds and re-infers."""
        self._chunk = np.repeat(np.asarray(target, np.float64)[None], self.policy.chunk_size, axis=0)
        self._chunk_start = now - (self.execute - 1) * self.policy.step_dt
        self._monitor.held()

    def wants_images(self, now: float) -> bool:
        """Images are rendered only for the steps that run inference."""
        return self._chunk is None or now - self._chunk_start >= self.execute * self.policy.step_dt - 1e-9

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        env = self.env
        now = float(observation["time"])
        step_dt = self.policy.step_dt
        if self.wants_images(now):
            out = self.policy.infer(
                {
                    "embodiment": env.embodiment.name,
                    "instruction": env.instruction,
                    "joint_positions": observation["joint_positions"],
                    "images": observation["images"],
                },
                num_samples=self.num_samples,
            )
            self.signals.append((now, self._monitor.update(out, now, step_dt)))
            # Row k is the target for k policy steps from now (the recorded data's convention).
            self._chunk = np.asarray(out["actions"], np.float64)
            self._chunk_start = now
        s = (now - self._chunk_start) / step_dt
        i = min(int(s), len(self._chunk) - 2) if len(self._chunk) > 1 else 0
        frac = min(1.0, s - i)
        nxt = self._chunk[min(i + 1, len(self._chunk) - 1)]
        target = (1 - frac) * self._chunk[i] + frac * nxt
        if self._commanded is None:
            self._commanded = self._safety.start(observation["joint_positions"])
        self._commanded, _ = self._safety.step(self._commanded, target, env.control_dt)
        return self._commanded.position.copy()


def make_controller(policy: str, execute: int | None = None) -> Controller:
    """``expert`` or a checkpoint folder (``execute``: chunk steps played between inferences)."""
    if policy == "expert":
        return ExpertController()
    return CheckpointController(policy, execute=execute)
