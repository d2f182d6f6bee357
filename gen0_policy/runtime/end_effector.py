"""An end-effector robot in the runtime's terms: absolute targets in the robot's own state coordinates.

The runtime plans, filters and streams absolute targets (a chunk of positions over time). A robot
whose actions are per-step end-effector displacements (``action_space: end_effector_delta``, e.g.
Meta-World's Sawyer) fits that unchanged once its chunks are turned into where the hand should be:

- a displacement entry (``scale > 0``) becomes a position: the running sum of the clipped
  displacements times the scale (m per action unit per step), row by row, from the target the
  stream commanded one step before the chunk's row 0 (``COMMANDED`` in the policy input; the
  measured state before the first command). Not from the measured hand: a hand held back by
  contact, or still accelerating, lags its target (2-3 cm on Meta-World's Sawyer at full speed),
  and the training data's displacements moved the target (Meta-World's mocap), so pushing a plate
  means a target that runs ahead and pulls. Re-based on the hand, every new chunk gave that lead
  up, and the committed rows' first action read the lag as a jump the model never made;
- the running sum stops at the workspace bounds row by row, as the robot's own target does (Meta-World
  clips its mocap to the task's box every step): the demonstrations press the hand down into the box's
  floor in the sliding tasks, and a sum that ran on past it wound up 10 cm below the table, so a later
  lift moved nothing for a dozen steps (docs/results/metaworld_ros_workspace.json). The bounds are the
  safety filter's (the embodiment's, tightened by a task's workspace: ``WORKSPACE`` in the policy input);
- the gripper effort (``scale == 0`` on a gripper joint, + closes) becomes an opening target, mapped
  linearly: the action's lower bound (fully open) to the joint's upper, its upper to the joint's lower.

The safety filter then limits hand speed in m/s and keeps it in the workspace bounds (the joints'
lower/upper), horizons carry the hand's planned path, and a Cartesian controller receives poses
(gen0_policy.ros.controller_outputs). Committed rows go back to the policy as the actions that produce
them, so the model sees what it was trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import EmbodimentError
from gen0_policy.runtime.perception import COMMANDED, WORKSPACE


class EndEffectorPlan:
    """Chunks of end-effector actions <-> absolute targets in the state coordinates, for one robot."""

    def __init__(self, embodiment: Embodiment) -> None:
        spec = embodiment.action
        if embodiment.joint_space or spec is None:
            raise EmbodimentError(f"embodiment {embodiment.name} takes joint positions; it needs no conversion")
        self.delta = spec.delta_mask
        absolute = ~self.delta
        if np.any(absolute & ~embodiment.gripper_mask):
            names = [n for n, a in zip(spec.names, absolute & ~embodiment.gripper_mask, strict=True) if a]
            raise EmbodimentError(
                f"embodiment {embodiment.name}: action entries {names} are neither displacements (scale > 0) "
                "nor a gripper command; the runtime cannot plan them"
            )
        self.scale = np.where(self.delta, spec.scale, 1.0)
        self.a_lower, self.a_upper = np.asarray(spec.lower, float), np.asarray(spec.upper, float)
        self.j_lower, self.j_upper = embodiment.lower, embodiment.upper

    def targets(
        self, state: np.ndarray, actions: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """(H, D) actions from ``state`` (or a target) -> (H, D) absolute targets (row k: after k + 1
        steps), each displacement row's sum held inside ``bounds`` (default: the embodiment's limits)."""
        a = np.clip(np.asarray(actions, np.float64), self.a_lower, self.a_upper)
        lower, upper = (self.j_lower, self.j_upper) if bounds is None else bounds
        moved = np.empty_like(a)
        position = np.asarray(state, np.float64)
        for k, step in enumerate(a * self.scale):  # a clipped integrator: what hits a bound stays there
            position = np.clip(position + step, lower, upper)
            moved[k] = position
        closing = (a - self.a_lower) / (self.a_upper - self.a_lower)  # 0 open .. 1 closed
        opening = self.j_upper - closing * (self.j_upper - self.j_lower)
        return np.where(self.delta, moved, opening)

    def actions(self, state: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The inverse: (P, D) absolute targets from ``state`` -> the actions that reach them."""
        t = np.asarray(targets, np.float64)
        previous = np.vstack([np.asarray(state, np.float64)[None], t[:-1]])
        steps = (t - previous) / self.scale
        closing = (self.j_upper - t) / (self.j_upper - self.j_lower)
        effort = self.a_lower + closing * (self.a_upper - self.a_lower)
        return np.clip(np.where(self.delta, steps, effort), self.a_lower, self.a_upper)


class EndEffectorPolicy:
    """A ChunkPolicy over absolute state targets, around a policy that returns end-effector actions."""

    def __init__(self, policy: Any, embodiment: Embodiment) -> None:
        self.policy = policy
        self.plan = EndEffectorPlan(embodiment)

    def __getattr__(self, name: str) -> Any:  # chunk_size, step_dt, checkpoint_id, warnings, ...
        return getattr(self.policy, name)

    def infer(
        self, observation: Mapping[str, Any], committed: np.ndarray | None = None, num_samples: int = 1
    ) -> dict[str, Any]:
        # Displacements continue from what was commanded (the module docstring), the measured state only
        # before the first command: both the committed rows' actions and a fresh plan start there.
        commanded = observation.get(COMMANDED)
        bounds = observation.get(WORKSPACE)  # the runtime's safety bounds now (None: the embodiment's)
        base = np.asarray(observation["joint_positions"] if commanded is None else commanded, np.float64)
        prefix = None if committed is None or len(committed) == 0 else self.plan.actions(base, committed)
        out = dict(self.policy.infer(observation, prefix, num_samples))
        P = 0 if prefix is None else len(committed)

        def plan(actions: np.ndarray) -> np.ndarray:
            if not P:
                return self.plan.targets(base, actions, bounds)
            # exactly what executes, then onward from the last committed target
            return np.vstack([committed, self.plan.targets(committed[-1], actions[P:], bounds)])

        out["actions"], out["action_space"] = plan(out["actions"]), "absolute_state_targets"
        if out.get("samples") is not None:
            out["samples"] = np.stack([plan(s) for s in out["samples"]])
        return out
