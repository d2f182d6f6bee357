"""Loading a checkpoint as a :class:`ChunkPolicy` for one robot, refusing a mismatch up front (so a
hot swap to the wrong checkpoint never replaces a working policy)."""

from __future__ import annotations

from pathlib import Path

from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import CheckpointError
from gen0_policy.runtime.policy import ChunkPolicy


def load_chunk_policy(
    checkpoint: str | Path, embodiment: Embodiment, device: str = "cpu", engine: str = "torch"
) -> ChunkPolicy:
    """``Gen0Policy.load(checkpoint)`` on ``engine`` (torch, onnxruntime or openvino), checked against
    ``embodiment`` (name and joint order). An end-effector robot's policy comes wrapped so that the
    runtime gets absolute targets in its state coordinates (runtime/end_effector.py)."""
    from gen0_policy.model.policy import Gen0Policy  # torch: only when a checkpoint is really loaded

    policy = Gen0Policy.load(checkpoint, device=device, engine=engine)
    if embodiment.name not in policy.embodiments:
        raise CheckpointError(
            f"checkpoint {checkpoint} was not trained on {embodiment.name}; it knows {policy.embodiments}"
        )
    policy.check_embodiment(embodiment)
    if not embodiment.joint_space:
        from gen0_policy.runtime.end_effector import EndEffectorPolicy

        return EndEffectorPolicy(policy, embodiment)
    return policy
