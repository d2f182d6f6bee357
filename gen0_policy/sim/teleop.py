"""The scripted expert as a simulated teleoperator: it decides at the control rate and its joint
targets are split into one command per ros2_control controller, exactly what a person's teleop
(or a leader-arm mirror) would send, so recordings of expert demonstrations contain real command
messages. The expert needs the simulator's privileged state (object poses), so it runs next to the
MuJoCo world (in the sim node); this module knows nothing about ROS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen0_policy.sim.env import SimEnv
from gen0_policy.sim.experts import ScriptedExpert, make_expert


@dataclass(frozen=True)
class ControllerCommand:
    """One controller's share of the expert's targets.

    ``trajectory`` is True for joint_trajectory_controllers (send ``positions`` as a one-point
    trajectory reached ``horizon`` s after it arrives), False for forward position controllers
    (send ``positions`` as the new command)."""

    controller: str
    trajectory: bool
    joints: tuple[str, ...]
    positions: np.ndarray
    horizon: float


class ExpertTeleop:
    """Steps ``make_expert(env)`` at the embodiment's control rate, whatever the physics tick is."""

    def __init__(self, env: SimEnv) -> None:
        self.env = env
        self.expert: ScriptedExpert = make_expert(env)
        self.period = env.control_dt  # s
        emb = env.embodiment
        self._split = [(c.name, c.trajectory, tuple(c.joints), emb.joint_indices(c.joints)) for c in emb.controllers]
        self._next = 0.0  # env time of the next decision, s

    def reset(self) -> None:
        """Re-plan for the episode the environment was just reset into."""
        self.expert.reset()
        self._next = 0.0

    def step(self) -> list[ControllerCommand]:
        """The commands due at the environment's current time: one per controller once per control
        period, none in between (call it every physics tick)."""
        now = self.env.time
        if now < self._next - 1e-9:
            return []
        self._next = max(self._next + self.period, now + 0.5 * self.period)  # no burst after a stall
        env = self.env
        obs = {"time": now, "joint_positions": env.joint_positions(), "joint_velocities": env.joint_velocities()}
        q = np.asarray(self.expert.act(obs), dtype=np.float64)
        return [
            ControllerCommand(name, trajectory, joints, q[idx].copy(), self.period)
            for name, trajectory, joints, idx in self._split
        ]
