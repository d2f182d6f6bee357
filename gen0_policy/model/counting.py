"""Parameter and FLOP counts next to the model, done on the meta device so a 10 B-parameter
configuration is counted on a laptop without allocating a byte of weights."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from gen0_policy.model.config import ModelConfig
from gen0_policy.model.modeling import Gen0Model

COMPONENTS = {
    "vision": ("vision.", "image_pos", "camera_role.", "camera_slot"),
    "proprio": ("proprio.",),
    "language_projection": ("language.",),
    "embodiment": ("embodiment.", "obs_type"),
    "backbone": ("backbone.", "ln_context."),
    "expert": ("action_in.", "time_mlp.", "action_pos", "expert.", "ln_out.", "action_out."),
    "goal_head": ("goal_head.",),  # auxiliary, training only
}
# The frozen sentence encoder (all-MiniLM-L6-v2) lives outside the network; its size, for reference.
MINILM_PARAMS = 22_713_216


def component_of(name: str) -> str:
    for component, prefixes in COMPONENTS.items():
        if name.startswith(prefixes):
            return component
    raise KeyError(f"parameter {name} belongs to no component; add it to COMPONENTS")


def parameter_counts(model: Gen0Model) -> dict[str, int]:
    counts = dict.fromkeys(COMPONENTS, 0)
    for name, p in model.named_parameters():
        counts[component_of(name)] += p.numel()
    counts["total"] = sum(counts[c] for c in COMPONENTS)
    return counts


def dummy_batch(config: ModelConfig, batch: int, device: str | torch.device = "meta") -> dict[str, torch.Tensor]:
    """A batch of the right shapes (values are meaningless); all cameras present, full prefix."""
    B, N, S, H, D = batch, config.max_cameras, config.image_size, config.chunk_size, config.max_dof

    def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.zeros(*shape, dtype=dtype, device=device)

    committed = zeros(B, H, dtype=torch.bool)
    committed[:, : config.max_prefix] = True
    return {
        "images": zeros(B, N, 3, S, S, dtype=torch.uint8),
        "camera_roles": zeros(B, N, dtype=torch.long),
        "state": zeros(B, D),
        "dof_mask": torch.ones(B, D, dtype=torch.bool, device=device),
        "language": zeros(B, config.language_dim),
        "embodiment": zeros(B, dtype=torch.long),
        "actions": zeros(B, H, D),
        "action_mask": torch.ones(B, H, dtype=torch.bool, device=device),
        "committed": committed,
        "noise": zeros(B, H, D),
        "flow_t": zeros(B),
    }


def flop_counts(model: Gen0Model) -> dict[str, int]:
    """Forward FLOPs per training sample, training FLOPs (forward + backward ~ 3x forward) per
    sample, and FLOPs of one chunk at inference (encode once + ``flow_steps`` expert passes)."""
    config = model.config
    device = next(model.parameters()).device
    batch = dummy_batch(config, 1, device)
    counter = FlopCounterMode(display=False)
    with counter:
        model.per_sample_loss(batch)
    forward = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with counter:
        model.sample(batch, batch["actions"], batch["committed"], batch["noise"])
    infer = counter.get_total_flops()
    return {"train_forward_per_sample": forward, "train_per_sample": 3 * forward, "inference_per_chunk": infer}


def describe(config: ModelConfig) -> dict[str, Any]:
    """Counts for ``gen0 model info``: built on the meta device, never allocated."""
    with torch.device("meta"):
        model = Gen0Model(config)
    params = parameter_counts(model)
    return {
        "parameters": params,
        "parameters_millions": round(params["total"] / 1e6, 3),
        "frozen_language_encoder_parameters": MINILM_PARAMS if config.language_encoder == "minilm" else 0,
        "flops": flop_counts(model),
        "tokens": {"observation": config.observation_tokens, "action": config.action_tokens},
        "config": config.to_dict(),
    }
