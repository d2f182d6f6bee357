"""Training state for exact resume without pickle: a real AdamW state after real steps survives the
round trip bit for bit, and the restored optimizer takes the same next step; damage is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

from gen0_policy.errors import CheckpointError
from gen0_policy.train.checkpoint import STATE_DIR, load_train_state, save_train_state


def trained(steps: int = 3) -> tuple[torch.nn.Module, torch.optim.AdamW]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.9))
    for i in range(steps):
        step(model, optimizer, i)
    return model, optimizer


def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(seed))
    loss = model(x).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_round_trip_resumes_the_same_step(tmp_path: Path) -> None:
    model, optimizer = trained()
    ema = {k: v.clone() * 0.5 for k, v in model.state_dict().items()}
    optim = get_optimizer_state_dict(model, optimizer)  # keyed by parameter name, as the trainer saves it
    save_train_state(tmp_path, model.state_dict(), optim, ema, {"step": 3, "note": "x"})
    state = load_train_state(tmp_path)
    assert state["trainer"] == {"step": 3, "note": "x"}
    assert all(torch.equal(state["weights"][k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(state["ema"][k], v) for k, v in ema.items())
    assert state["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.9)

    fresh, fresh_optimizer = trained(steps=0)
    fresh.load_state_dict(state["weights"])
    set_optimizer_state_dict(fresh, fresh_optimizer, state["optimizer"])
    step(model, optimizer, 99)
    step(fresh, fresh_optimizer, 99)
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)  # the restored moments give the identical update


def test_no_ema_and_damage(tmp_path: Path) -> None:
    model, optimizer = trained()
    for name in ("flipped", "missing"):
        save_train_state(tmp_path / name, model.state_dict(), get_optimizer_state_dict(model, optimizer), None, {})
    assert load_train_state(tmp_path / "flipped")["ema"] is None
    optim = tmp_path / "flipped" / STATE_DIR / "optimizer.safetensors"
    data = bytearray(optim.read_bytes())
    data[-1] ^= 1
    optim.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors does not match manifest\.json"):
        load_train_state(tmp_path / "flipped")
    (tmp_path / "missing" / STATE_DIR / "trainer.json").unlink()
    with pytest.raises(CheckpointError, match=r"trainer\.json is missing"):
        load_train_state(tmp_path / "missing")
