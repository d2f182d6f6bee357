"""The one interface the runtime needs from a policy, so it depends on ``infer``, not on the network.

``gen0_policy.model.Gen0Policy`` satisfies it; so does :class:`gen0_policy.runtime.goal_policy.GoalPolicy`,
a deterministic stand-in for tests and benchmarks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gen0_policy.errors import CommandError


@runtime_checkable
class ChunkPolicy(Protocol):
    """A policy that maps one observation (plus the actions already committed) to a chunk.

    ``observation``: ``{"embodiment": str, "instruction": str, "joint_positions": (D,),
    "images": {cam: (H, W, 3) uint8}}``.
    ``committed``: ``(P, D)`` absolute targets that execute while inference runs (``P <= max_prefix``);
    row ``k`` executes ``k * step_dt`` after step 0 of the chunk.
    Returns ``{"actions": (H, D) absolute targets whose first P rows are ``committed``, "uncertainty": float,
    "samples": optional (num_samples, H, D)}``.
    """

    chunk_size: int
    step_dt: float
    max_prefix: int
    checkpoint_id: str

    def infer(
        self, observation: Mapping[str, Any], committed: np.ndarray | None = None, num_samples: int = 1
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PolicyOutput:
    """A validated ``infer`` result."""

    actions: np.ndarray  # (H, D) float64
    uncertainty: float  # NaN: not measured (fewer than two samples)


def validate_output(out: Mapping[str, Any], dof: int) -> PolicyOutput:
    """Check an ``infer`` result; raise :class:`CommandError` (never execute) on wrong shape or NaN/inf."""
    if "actions" not in out:
        raise CommandError(f"policy output has no 'actions' (keys {sorted(out)}); check the policy's infer()")
    if out.get("action_space") == "end_effector_delta":
        raise CommandError(
            "policy returned end-effector displacements; the runtime streams absolute targets: wrap it in "
            "gen0_policy.runtime.end_effector.EndEffectorPolicy (load_chunk_policy does)"
        )
    actions = np.asarray(out["actions"], dtype=np.float64)
    if actions.ndim != 2 or actions.shape[1] != dof or actions.shape[0] < 1:
        raise CommandError(f"policy actions have shape {actions.shape}, expected (H, {dof}); wrong embodiment?")
    if not np.all(np.isfinite(actions)):
        bad = np.argwhere(~np.isfinite(actions))[0]
        raise CommandError(
            f"policy produced non-finite actions (first at step {bad[0]}, joint {bad[1]}); chunk rejected"
        )
    uncertainty = out.get("uncertainty")
    if uncertainty is None and out.get("samples") is not None:
        uncertainty = sample_spread(np.asarray(out["samples"], dtype=np.float64))
    # NaN means "not measured" (a single sample); infinity is a broken policy.
    uncertainty = float(uncertainty) if uncertainty is not None else math.nan
    if math.isinf(uncertainty):
        raise CommandError("policy reported an infinite uncertainty; chunk rejected")
    return PolicyOutput(actions, uncertainty)


def sample_spread(samples: np.ndarray) -> float:
    """Mean per-element standard deviation over samples ``(S, H, D)``; 0 for a single sample."""
    if samples.ndim != 3 or samples.shape[0] < 2:
        return 0.0
    return float(samples.std(axis=0).mean())
