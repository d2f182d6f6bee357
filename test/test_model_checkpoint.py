"""Self-describing checkpoints: a bit-exact round trip of weights, config, statistics and robot
descriptions; run folders resolved through ``latest``; every damaged file a CheckpointError."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from model_fixtures import make_embodiment

from gen0_policy.errors import CheckpointError
from gen0_policy.model.checkpoint import CONTENT_FILES, POLICY_FILES, load_policy, resolve, save_policy, sha256
from gen0_policy.model.config import preset
from gen0_policy.model.modeling import Gen0Model
from gen0_policy.model.processor import JointStats

CONFIG = preset("test", language_encoder="hash")
ROBOTS = [make_embodiment("panda"), make_embodiment("g1")]


def save(path: Path, step: int = 3) -> tuple[dict[str, torch.Tensor], str]:
    torch.manual_seed(step)
    weights = Gen0Model(CONFIG).state_dict()
    rng = np.random.default_rng(step)
    stats = {e.name: JointStats(rng.normal(size=e.dof), rng.uniform(0.1, 1, e.dof), rng.normal(size=e.dof),
                                rng.uniform(0.1, 1, e.dof)) for e in ROBOTS}  # fmt: skip
    return weights, save_policy(path, weights, CONFIG, ROBOTS, stats, {"run": "unit", "step": step, "fps": 10.0})


def test_round_trip_is_exact(tmp_path: Path) -> None:
    weights, checkpoint_id = save(tmp_path / "ckpt")
    files = load_policy(tmp_path / "ckpt")
    assert files.config == CONFIG
    assert files.state_dict.keys() == weights.keys()
    assert all(torch.equal(files.state_dict[k], weights[k]) for k in weights)
    assert [e.to_dict() for e in files.embodiments] == [e.to_dict() for e in ROBOTS]  # order = token ids
    assert set(files.stats) == {"panda", "g1"} and files.stats["g1"].dof == 31
    assert files.meta["fps"] == 10.0 and files.meta["checkpoint_id"] == checkpoint_id
    # The id follows the content the policy computes with: weights, statistics and embodiments.
    content = "".join(sha256(tmp_path / "ckpt" / name) for name in CONTENT_FILES)
    assert checkpoint_id == f"unit-step0000003-{hashlib.sha256(content.encode()).hexdigest()[:8]}"
    manifest = json.loads((tmp_path / "ckpt" / "manifest.json").read_text())
    assert set(manifest) == set(POLICY_FILES)


def test_run_folder_resolves_to_latest(tmp_path: Path) -> None:
    save(tmp_path / "run" / "ckpt-0000001", step=1)
    save(tmp_path / "run" / "ckpt-0000002", step=2)
    (tmp_path / "run" / "latest").write_text("ckpt-0000002\n")
    assert resolve(tmp_path / "run") == tmp_path / "run" / "ckpt-0000002"
    assert load_policy(tmp_path / "run").meta["step"] == 2
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        resolve(tmp_path / "nowhere")


@pytest.mark.parametrize("damage", ["flip_weight_byte", "edit_stats", "drop_config", "bad_json", "wrong_version"])
def test_damaged_checkpoints_are_refused(tmp_path: Path, damage: str) -> None:
    save(tmp_path / "ckpt")
    folder = tmp_path / "ckpt"
    if damage == "flip_weight_byte":
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (folder / "model.safetensors").write_bytes(bytes(data))
        words = "does not match its sha256"
    elif damage == "edit_stats":
        stats = json.loads((folder / "normalization.json").read_text())
        stats["panda"]["action_std"][0] *= 2
        (folder / "normalization.json").write_text(json.dumps(stats))
        words = "normalization.json does not match"
    elif damage == "drop_config":
        (folder / "config.json").unlink()
        words = "config.json is missing"
    elif damage == "bad_json":
        (folder / "manifest.json").write_text("{")
        words = "not valid JSON"
    else:  # a future format, re-hashed so only the version is wrong
        meta = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**meta, "version": 99}))
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps({**manifest, "config.json": sha256(folder / "config.json")}))
        words = "is not a gen0-policy v1 checkpoint"
    with pytest.raises(CheckpointError, match=words):
        load_policy(folder)
