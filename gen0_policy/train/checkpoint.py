"""Training state beside a policy checkpoint, for exact resume, again without pickle:

    <ckpt>/train_state/weights.safetensors    raw (non-EMA) weights
    <ckpt>/train_state/optimizer.safetensors  AdamW moments and step counts, keyed by parameter name
    <ckpt>/train_state/optimizer.json         param groups (lr, betas, ... and parameter names)
    <ckpt>/train_state/ema.safetensors        EMA weights (when EMA is on)
    <ckpt>/train_state/trainer.json           step and the train config

Data order and flow noise are pure functions of (seed, step, sample), so no RNG state is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gen0_policy.errors import CheckpointError
from gen0_policy.model.checkpoint import read_json, sha256, write_json

STATE_DIR = "train_state"


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An FQN-keyed optimizer state dict -> (tensors, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for name, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}::{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(name, {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, dict[str, Any]] = {}
    for flat, value in tensors.items():
        name, key = flat.rsplit("::", 1)
        state.setdefault(name, {})[key] = value
    for name, entry in rest.get("scalars", {}).items():
        state.setdefault(name, {}).update(entry)
    groups = rest["param_groups"]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": groups}


def save_train_state(
    ckpt: Path,
    weights: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    ema: dict[str, torch.Tensor] | None,
    trainer: dict[str, Any],
) -> None:
    folder = Path(ckpt) / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(folder / "weights.safetensors"))
    tensors, rest = flatten_optimizer(optimizer)
    save_file(tensors, str(folder / "optimizer.safetensors"))
    write_json(folder / "optimizer.json", rest)
    files = ["weights.safetensors", "optimizer.safetensors", "optimizer.json", "trainer.json"]
    if ema is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in ema.items()}, str(folder / "ema.safetensors"))
        files.append("ema.safetensors")
    write_json(folder / "trainer.json", trainer)
    write_json(folder / "manifest.json", {name: sha256(folder / name) for name in files})


def load_train_state(ckpt: Path) -> dict[str, Any]:
    """{"weights", "optimizer", "ema" (or None), "trainer"}; CheckpointError on anything missing or corrupt."""
    folder = Path(ckpt) / STATE_DIR
    manifest = read_json(folder / "manifest.json")
    for name, digest in manifest.items():
        file = folder / name
        if not file.is_file():
            raise CheckpointError(f"{file} is missing: cannot resume exactly; start a new run or restore the file")
        if sha256(file) != digest:
            raise CheckpointError(f"{file} does not match manifest.json: it is corrupt; restore it or start anew")
    try:
        weights = load_file(str(folder / "weights.safetensors"))
        optimizer = unflatten_optimizer(
            load_file(str(folder / "optimizer.safetensors")), read_json(folder / "optimizer.json")
        )
        ema = load_file(str(folder / "ema.safetensors")) if "ema.safetensors" in manifest else None
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot read the training state in {folder}: {exc}") from exc
    return {"weights": weights, "optimizer": optimizer, "ema": ema, "trainer": read_json(folder / "trainer.json")}
