"""Where a training run computes: one process or several (``torchrun``), on which device, at which
precision. Read from the environment ``torchrun`` sets, so the same command trains anywhere."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gen0_policy.errors import ConfigError
from gen0_policy.model.policy import bf16_fast
from gen0_policy.train.config import TrainConfig


@dataclass(frozen=True)
class Placement:
    strategy: str  # single, ddp or fsdp
    device: torch.device
    rank: int
    world: int  # processes
    bf16: bool  # autocast to bfloat16


def place(config: TrainConfig) -> Placement:
    """The run's placement; joins the process group (NCCL on GPUs, gloo on CPUs) when launched as
    several processes. Raises ConfigError for a strategy or batch size the launch cannot honour."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    strategy = config.strategy
    if strategy == "auto":
        strategy = "ddp" if world > 1 else "single"
    if world > 1 and strategy == "single":
        raise ConfigError("launched with several processes but strategy=single; use ddp or fsdp")
    if config.device == "auto":
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    else:
        name = config.device
    device = torch.device(name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if config.batch_size % world:
        raise ConfigError(f"batch_size {config.batch_size} must be divisible by {world} processes")
    bf16 = config.precision == "bf16" or (config.precision == "auto" and bf16_fast(device))
    return Placement(strategy, device, rank, world, bf16)
