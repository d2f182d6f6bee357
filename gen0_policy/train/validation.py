"""Validation: GEN-0's next-action error on held-out episodes, and optionally the spread of flow samples."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch

from gen0_policy.data.windows import Window
from gen0_policy.train.batch import BatchBuilder


@torch.no_grad()
def next_action_error(
    net: torch.nn.Module,
    builder: BatchBuilder,
    windows: Sequence[Window],
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[Any]],
    samples: int = 0,
) -> dict[str, float]:
    """Normalized MSE of the deterministic chunk estimate (Euler steps from zero noise) over the
    non-committed, valid steps and joints; with ``samples`` > 1 also the mean std of that many flow
    samples (seeded per batch, so the number is reproducible)."""
    errors, spreads = [], []
    for start in range(0, len(windows), batch_size):
        part = windows[start : start + batch_size]
        indices = list(range(start, start + len(part)))
        batch = {k: v.to(device) for k, v in builder(part, 999, 0, indices).items()}
        weight = batch["dof_mask"][:, None, :] & (batch["action_mask"] & ~batch["committed"])[..., None]  # (B, H, D)
        with autocast():
            pred = net({**batch, "noise": torch.zeros_like(batch["noise"])}, task="sample")
            err = ((pred.float() - batch["actions"]) ** 2 * weight).sum((1, 2)) / weight.sum((1, 2)).clamp_min(1)
            errors.append(err.cpu())
            if samples > 1:
                rep = {k: v.repeat_interleave(samples, 0) for k, v in batch.items()}
                gen = torch.Generator().manual_seed(start)
                rep["noise"] = torch.randn(rep["noise"].shape, generator=gen).to(device)
                x = net(rep, task="sample").float()
                x = x.view(len(part), samples, *x.shape[1:]).std(1)
                spreads.append(((x * weight).sum((1, 2)) / weight.sum((1, 2)).clamp_min(1)).cpu())
    out = {"val/next_action_mse": float(torch.cat(errors).mean())}
    if spreads:
        out["val/sample_spread"] = float(torch.cat(spreads).mean())
    return out


@torch.no_grad()
def predicted_chunks(
    net: torch.nn.Module,
    builder: BatchBuilder,
    windows: Sequence[Window],
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[Any]],
) -> dict[str, Any]:
    """The deterministic chunk of each window beside its demonstration (normalized units), for pictures:
    predicted and demonstrated (B, H, D), committed (B, H) and the valid joints (B, D), as numpy."""
    indices = list(range(len(windows)))
    batch = {k: v.to(device) for k, v in builder(list(windows), 999, 0, indices).items()}
    with autocast():
        pred = net({**batch, "noise": torch.zeros_like(batch["noise"])}, task="sample")
    valid = batch["action_mask"]
    return {
        "predicted": pred.float().cpu().numpy(),
        "demonstrated": batch["actions"].float().cpu().numpy(),
        "committed": batch["committed"].cpu().numpy(),
        "steps": valid.sum(1).cpu().numpy(),  # valid steps: a window at the end of an episode has few
        "joints": batch["dof_mask"].cpu().numpy(),
    }
