"""Self-describing policy checkpoints: weights, model config, normalization stats and embodiment
descriptions in one folder, plain data only (safetensors + JSON), so loading never runs code.

    <dir>/model.safetensors   weights used for inference (the EMA weights when EMA was on)
    <dir>/config.json         model config, embodiment order, chunk timing, provenance
    <dir>/normalization.json  per-embodiment state/action mean and std
    <dir>/embodiments.json    Embodiment.to_dict() of every robot the policy was trained on
    <dir>/novelty.json        optional: image feature statistics of the training data (model/novelty.py)
    <dir>/manifest.json       sha256 of each file above: a flipped byte is caught, not executed

A training run's folder may hold many checkpoints; its ``latest`` file names the newest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import CheckpointError, Gen0Error
from gen0_policy.model.config import ModelConfig
from gen0_policy.model.processor import JointStats

FORMAT = "gen0-policy"
VERSION = 1
POLICY_FILES = ("model.safetensors", "config.json", "normalization.json", "embodiments.json")
OPTIONAL_FILES = ("novelty.json",)  # added after training (`gen0 model novelty`); verified when listed


@dataclass
class PolicyFiles:
    """The parsed content of a checkpoint folder."""

    path: Path
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    embodiments: list[Embodiment]
    stats: dict[str, JointStats]
    meta: dict[str, Any]
    novelty: dict[str, Any] | None = None  # novelty.json's content, if the checkpoint has one


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing; the checkpoint is incomplete, save it again")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint file {path} is not valid JSON ({exc}); the checkpoint is corrupt") from exc


def resolve(path: str | Path) -> Path:
    """A checkpoint folder, or a training run folder whose ``latest`` file (or link) names one."""
    path = Path(path)
    latest = path / "latest"
    if latest.is_file() or latest.is_symlink():
        target = path / latest.read_text().strip() if latest.is_file() else latest
        if not target.exists() or target.resolve() == path.resolve():
            what = "missing" if not target.exists() else "the run folder itself"
            raise CheckpointError(f"{latest} names {target}, which is {what}; point it at one of the run's checkpoints")
        path = target
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint at {path}; pass a folder holding model.safetensors and config.json")
    return path


CONTENT_FILES = ("model.safetensors", "normalization.json", "embodiments.json")  # what the policy computes with


def content_id(path: Path, meta: Mapping[str, Any]) -> str:
    """``<run>-step<step>-<hash>``, the hash over the weights, normalization statistics, embodiments and
    (when present) novelty statistics: a checkpoint whose content differs has a different id, however
    it was made (a threshold calibrated on one set of statistics does not carry to another)."""
    names = [*CONTENT_FILES, *(n for n in OPTIONAL_FILES if (path / n).is_file())]
    digest = hashlib.sha256("".join(sha256(path / name) for name in names).encode()).hexdigest()
    return f"{meta.get('run', 'gen0')}-step{int(meta.get('step', 0)):07d}-{digest[:8]}"


def save_policy(
    path: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    config: ModelConfig,
    embodiments: list[Embodiment],
    stats: Mapping[str, JointStats],
    meta: Mapping[str, Any],
) -> str:
    """Write a checkpoint folder; returns its checkpoint id (run name, step and weight hash)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": FORMAT})
    write_json(path / "normalization.json", {name: s.to_dict() for name, s in stats.items()})
    write_json(path / "embodiments.json", [e.to_dict() for e in embodiments])
    checkpoint_id = content_id(path, meta)
    write_json(
        path / "config.json",
        {
            "format": FORMAT,
            "version": VERSION,
            "checkpoint_id": checkpoint_id,
            "model": config.to_dict(),
            "embodiments": [e.name for e in embodiments],  # index = embodiment token id
            **dict(meta),
        },
    )
    write_json(path / "manifest.json", {name: sha256(path / name) for name in POLICY_FILES})
    return checkpoint_id


def add_optional_file(path: str | Path, name: str, data: Any) -> str:
    """Write one of OPTIONAL_FILES into a checkpoint folder, list it in the manifest and update the
    content id in config.json; returns the new checkpoint id."""
    if name not in OPTIONAL_FILES:
        raise CheckpointError(f"{name} is not an optional checkpoint file; those are {OPTIONAL_FILES}")
    files = load_policy(path)  # verified before anything changes
    write_json(files.path / name, data)
    meta = read_json(files.path / "config.json")
    meta["checkpoint_id"] = content_id(files.path, meta)
    write_json(files.path / "config.json", meta)
    manifest = read_json(files.path / "manifest.json")
    manifest.update({n: sha256(files.path / n) for n in ("config.json", name)})
    write_json(files.path / "manifest.json", manifest)
    return str(meta["checkpoint_id"])


def load_policy(path: str | Path) -> PolicyFiles:
    """Read and verify a checkpoint folder; every problem is a CheckpointError naming the file."""
    path = resolve(path)
    manifest = read_json(path / "manifest.json")
    for name in POLICY_FILES:
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint file {file} is missing; the checkpoint is incomplete, save it again")
        if manifest.get(name) != sha256(file):
            raise CheckpointError(
                f"checkpoint file {file} does not match its sha256 in manifest.json: it is corrupt or was edited; "
                "restore it from a copy or save the checkpoint again"
            )
    optional: dict[str, Any] = {}
    for name in OPTIONAL_FILES:
        file = path / name
        if name not in manifest and not file.exists():
            continue
        if name not in manifest or not file.is_file() or manifest[name] != sha256(file):
            raise CheckpointError(
                f"checkpoint file {file} is {'missing' if not file.is_file() else 'not the one its manifest lists'}; "
                f"write it again with `gen0 model novelty --checkpoint {path}` or remove it and its manifest entry"
            )
        optional[name] = read_json(file)
    meta = read_json(path / "config.json")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path} is not a {FORMAT} v{VERSION} checkpoint (format={meta.get('format')!r}, "
            f"version={meta.get('version')!r})"
        )
    try:
        config = ModelConfig.from_dict(meta["model"])
        embodiments = [Embodiment.from_dict(e) for e in read_json(path / "embodiments.json")]
        stats = {k: JointStats.from_dict(v) for k, v in read_json(path / "normalization.json").items()}
    except (Gen0Error, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} has an invalid description: {exc}") from exc
    order = [e.name for e in embodiments]
    if order != meta.get("embodiments"):
        raise CheckpointError(f"{path}: embodiments.json lists {order} but config.json lists {meta.get('embodiments')}")
    try:
        state_dict = load_file(str(path / "model.safetensors"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path / 'model.safetensors'}: {exc}") from exc
    meta["checkpoint_id"] = content_id(path, meta)  # what was loaded, not what config.json claims
    return PolicyFiles(path, config, state_dict, embodiments, stats, meta, optional.get("novelty.json"))
