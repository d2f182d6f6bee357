"""Meta-World's Sawyer behind the simulator server (gen0_policy.sim.server), as SimEnv is for our
MuJoCo worlds: so ``gen0_sim_node`` serves it with the same topics, and the policy node drives it
through the controllers that config/embodiments/sawyer.yaml names.

Its controllers hold position targets in the robot's state coordinates (hand x, y, z in m; gripper
opening 0..1), as a Cartesian motion controller and a gripper position controller would. Each
Meta-World step (80 Hz) turns them into Meta-World's own action: the hand's mocap target moves toward
the commanded position by at most 0.01 m per axis (Meta-World's action scale, the arm's speed limit),
and the opening target becomes the gripper effort (open 1 -> -1, closed 0 -> +1): both through
gen0_policy.runtime.end_effector's EndEffectorPlan, the map the policy side uses the other way round.

The targets are in the frame the state reports (Meta-World's tcp_center, between the finger pads),
and the controller brings that frame there, as a Cartesian controller tracks its own tool frame. The
mocap pulls the hand body, whose weld point rests 3.8 mm above tcp_center: targets handed to the
mocap as they are put the hand that much lower than commanded, pressed harder into the table in the
sliding tasks than in the demonstrations (docs/results/metaworld_ros_gap.json).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gen0_policy.errors import CommandError, ConfigError
from gen0_policy.runtime.end_effector import EndEffectorPlan
from gen0_policy.sim.metaworld_env import MetaWorldEnv, plain_scene, task_name, upright

SETTLE_STEPS = 60  # Meta-World steps (0.75 s) after which the resting hand moves less than 0.1 mm


class MetaWorldWorld:
    """One Meta-World task with the SimEnv interface the server needs. Not thread-safe (the server
    holds its lock)."""

    def __init__(self, task: str, seed: int = 0, camera_size: tuple[int, int] | None = None) -> None:
        self._mw = MetaWorldEnv(task_name(task), camera_size=camera_size)
        self.embodiment = self._mw.embodiment
        self.task_name = self._mw.task
        self.instruction = self._mw.instruction
        self.model, self.data = self._mw._env.model, self._mw._env.data
        self.control_dt = self._mw.control_dt
        self._plan = EndEffectorPlan(self.embodiment)  # targets <-> actions, as the policy side converts them
        self.seed = int(seed)
        self._tool_offset_m = self._settled_tool_offset()
        self._box = self._task_box()
        self.reset(seed)

    def _settled_tool_offset(self) -> np.ndarray:
        """tcp_center minus the mocap position with the hand at rest (m): Meta-World's reset leaves the
        hand still moving, so let it settle under a held target first; the next reset starts afresh."""
        self._mw.reset(self.seed, images=False)
        tcp = self._mw.settle_hand(SETTLE_STEPS, images=False)["joint_positions"][:3]
        return tcp - np.asarray(self.data.mocap_pos[0], np.float64)

    # --- episode -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = int(seed)
        self._mw.reset(self.seed, images=False)
        # Meta-World's reset returns with the hand still 4.6 mm from where its target holds it. The policy's
        # targets start from the measured hand, so mapped to the mocap by the settled offset the whole
        # episode's mocap path ran that far beside the one the same actions give in Meta-World (plate-slide-
        # back: 2 of 10 in the one-process loop, 9 once the hand had settled). The episode starts settled.
        obs = self._mw.settle_hand(SETTLE_STEPS, images=False)
        self._positions = obs["joint_positions"].copy()
        self._velocities = np.zeros_like(self._positions)
        self._targets = self._positions.copy()
        self._success, self._steps = False, 0

    @property
    def time(self) -> float:
        return self._steps * self.control_dt

    def success(self) -> bool:
        return self._success

    def _task_box(self) -> tuple[np.ndarray, np.ndarray]:
        """The box this task's controller clamps the hand target to, in state coordinates (m; the
        gripper opening's 0..1): Meta-World clips the mocap to the task's own ``mocap_low``/``mocap_high``
        (z >= 0.05 m in 40 tasks, -0.15 in those that reach into holes), moved to the reported hand frame."""
        env = self._mw._env
        lower = np.append(np.asarray(env.mocap_low, np.float64) + self._tool_offset_m, self.embodiment.lower[3])
        upper = np.append(np.asarray(env.mocap_high, np.float64) + self._tool_offset_m, self.embodiment.upper[3])
        return lower, upper

    def workspace(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper): the task's box (:meth:`_task_box`), fixed for the world's life."""
        return self._box[0].copy(), self._box[1].copy()

    # --- control ---------------------------------------------------------------------------------
    def set_targets(self, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self.embodiment.dof,) or not np.all(np.isfinite(q)):
            raise CommandError(f"sawyer expects 4 finite targets (hand x, y, z, gripper opening), got {q}")
        self._targets = np.clip(q, *self._box)  # as a Cartesian controller clamps to its box

    def action(self) -> np.ndarray:
        """Meta-World's action that moves toward the targets this step."""
        # the hand frame's target as the mocap's; the gripper entry is absolute
        mocap = np.append(np.asarray(self.data.mocap_pos[0], np.float64) + self._tool_offset_m, 0.0)
        return self._plan.actions(mocap, self._targets[None])[0]

    def step(self, duration: float | None = None) -> None:
        """Whole Meta-World steps covering ``duration`` s (at least one): its physics cannot step finer.
        Past the episode's step limit the hand still follows its targets, and success stays as the limit
        left it (the benchmark's verdict) until a reset."""
        if duration is not None and duration < 0:
            raise ConfigError(f"step duration must be >= 0, got {duration}")
        n = max(1, round((self.control_dt if duration is None else float(duration)) / self.control_dt))
        for _ in range(n):
            if self._mw.steps < self._mw.max_steps:
                obs, success = self._mw.step(self.action(), images=False)
                self._success = self._success or success
            else:
                obs = self._mw.step_after_limit(self.action(), images=False)
            positions = obs["joint_positions"]
            self._velocities = (positions - self._positions) / self.control_dt
            self._positions = positions.copy()
            self._steps += 1

    # --- state -------------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        return self._positions.copy()

    def joint_velocities(self) -> np.ndarray:
        return self._velocities.copy()

    def joint_efforts(self) -> np.ndarray:
        return np.zeros_like(self._positions)

    # --- cameras -------------------------------------------------------------------------------------
    def prepare_scene(self, scene: Any) -> None:
        """Render as the demonstrations were rendered (metaworld_env.render)."""
        plain_scene(scene)

    def finish_frame(self, camera: str, rgb: np.ndarray) -> np.ndarray:
        """A rendered frame as the camera sees it: the corner cameras are mounted upside down."""
        return upright(rgb, camera in self._mw.upside_down)

    def render(self, camera: str, width: int | None = None, height: int | None = None) -> np.ndarray:
        """The camera's frame at its configured size (Meta-World's renderer is sized when the world is made)."""
        return self._mw.render(camera)

    def close(self) -> None:
        self._mw.close()
