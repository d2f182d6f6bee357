"""Loading a checkpoint as a :class:`ChunkPolicy` for one robot, refusing a mismatch up front (so a
hot swap to the wrong checkpoint never replaces a working policy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import CheckpointError
from gen0_policy.runtime.policy import ChunkPolicy


def load_chunk_policy(
    checkpoint: str | Path,
    embodiment: Embodiment,
    device: str = "cpu",
    engine: str = "auto",
    warm_up_samples: int = 0,
    precision: str = "auto",
    threads: int = 0,
) -> ChunkPolicy:
    """``Gen0Policy.load(checkpoint)`` on ``engine`` (auto, torch, onnxruntime or openvino) at ``precision``
    (auto: bf16 where the device runs it fast, else fp32; fp32; bf16; int8) with ``threads`` intra-op
    threads (0: all cores but one, ``rate.inference_threads``), checked against
    ``embodiment`` (name and joint order). An end-effector robot's policy comes wrapped so that the
    runtime gets absolute targets in its state coordinates (runtime/end_effector.py). With
    ``warm_up_samples`` (the runtime's num_samples), one inference on a blank observation pays the
    first call's costs here: through ROS the first chunk took 208 ms against 40 ms for the next ones,
    and a harmonic runtime skips the rows that time covers."""
    from gen0_policy.model.policy import Gen0Policy  # torch: only when a checkpoint is really loaded
    from gen0_policy.runtime.rate import inference_threads

    threads = inference_threads(threads)
    policy = Gen0Policy.load(checkpoint, device=device, precision=precision, engine=engine, threads=threads)
    if embodiment.name not in policy.embodiments:
        raise CheckpointError(
            f"checkpoint {checkpoint} was not trained on {embodiment.name}; it knows {policy.embodiments}"
        )
    policy.check_embodiment(embodiment)
    if not embodiment.joint_space:
        from gen0_policy.runtime.end_effector import EndEffectorPolicy

        policy = EndEffectorPolicy(policy, embodiment)
    if warm_up_samples > 0:
        warm_up(policy, embodiment, warm_up_samples)
    return policy


def warm_up(policy: ChunkPolicy, embodiment: Embodiment, num_samples: int) -> None:
    """One inference at the robot's home with blank camera frames and a half-length committed prefix
    (the graph a harmonic runtime runs), its output discarded."""
    observation = {
        "embodiment": embodiment.name,
        "instruction": "",
        "joint_positions": embodiment.home.copy(),
        "images": {cam.name: np.zeros((cam.height, cam.width, 3), np.uint8) for cam in embodiment.cameras},
    }
    committed = np.repeat(embodiment.home[None].astype(np.float32), max(1, int(policy.max_prefix) // 2), axis=0)
    policy.infer(observation, committed, num_samples)
