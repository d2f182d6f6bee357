"""The one training configuration: file + overrides, validation with clear messages, and
post-training as the same config with its defaults in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from gen0_policy.errors import ConfigError
from gen0_policy.model.config import preset
from gen0_policy.train.config import (
    POST_TRAINING_DEFAULTS,
    DatasetSpec,
    TrainConfig,
    apply_override,
    load_train_config,
    post_training_config,
)

REPO = Path(__file__).resolve().parent.parent


def test_config_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("preset: small\nsteps: 10\ndatasets:\n  - {path: a, weight: 2}\n  - {path: b}\n")
    config = load_train_config(path, ["steps=20", "model.width=64", "datasets.1.weight=3", "freeze=[vision]"])
    assert config.steps == 20 and config.model == {"width": 64} and config.freeze == ["vision"]
    assert [d.weight for d in config.datasets] == [2, 3] and config.datasets[0].name == "a"
    assert load_train_config(path, ["lr=1e-3"]).lr == 1e-3  # YAML alone would read a string
    with pytest.raises(ConfigError, match="steps must be an integer"):
        load_train_config(path, ["steps=2.5"])
    with pytest.raises(ConfigError, match="known keys"):
        load_train_config(path, ["stpes=3"])
    with pytest.raises(ConfigError, match="freezable parts"):
        load_train_config(path, ["freeze=[eyes]"])
    with pytest.raises(ConfigError, match="key=value"):
        load_train_config(path, ["steps"])
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(tmp_path / "none.yaml")
    shipped = load_train_config(REPO / "config" / "train" / "multitask_small.yaml")
    assert {d.embodiment for d in shipped.datasets} >= {"ur5e", "panda", "g1"}


@pytest.mark.parametrize("path", sorted((REPO / "config" / "train").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_loads(path: Path) -> None:
    """The configs the README and result files name as reproduce commands: a typo in one that CI never
    trains would only show when a user runs it."""
    config = load_train_config(path)
    assert config.datasets, f"{path.name} names no datasets"
    if not config.init_from:  # from a preset: its model overrides must make a valid network
        preset(config.preset, **config.model)


def test_override_paths_into_lists_and_mappings() -> None:
    data: dict = {"datasets": [{"path": "a"}]}
    apply_override(data, "datasets.0.weight=2.5")
    apply_override(data, "model.width=128")
    apply_override(data, "run_name=")
    assert data == {"datasets": [{"path": "a", "weight": 2.5}], "model": {"width": 128}, "run_name": ""}
    with pytest.raises(ConfigError, match="not an index of a list of 1"):
        apply_override(data, "datasets.3.weight=1")


def test_round_trip_and_derived_names() -> None:
    config = TrainConfig(out_dir="runs/x", datasets=[{"path": "/data/ur5e_reach"}], betas=[0.8, 0.9], lr="2e-4")
    assert config.run_name == "x" and config.datasets[0].name == "ur5e_reach" and config.lr == 2e-4
    assert config.betas == (0.8, 0.9)
    assert TrainConfig(freeze=["language", "vision", ""]).freeze == ["language_projection", "vision"]
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"steps": 0}, "steps must be positive"),
        ({"lr": float("nan")}, "learning rate"),
        ({"lr": -1.0}, "learning rate"),
        ({"val_fraction": 1.0}, "val_fraction must be in [0, 1)"),
        ({"state_dropout": 1.0}, "state_dropout"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"strategy": "horovod"}, "strategy must be one of"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"min_lr_ratio": 2.0}, "min_lr_ratio"),
        ({"batch_size": "many"}, "batch_size must be an integer"),
        # Nested sections talk like the top level (issue 17).
        ({"model": {"widht": 64}}, "unknown model keys ['widht']; known keys are ['action_patch'"),
        ({"datasets": [{"path": "a", "wieght": 2}]}, "unknown datasets entry keys ['wieght']; known keys are"),
        ({"datasets": ["data/a"]}, "each datasets entry must be a mapping with a path"),
    ],
)
def test_invalid_settings_say_what_is_wrong(bad: dict, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**bad)
    assert words in str(info.value)


def test_dataset_spec_checks() -> None:
    with pytest.raises(ConfigError, match="needs a path"):
        DatasetSpec(path="")
    with pytest.raises(ConfigError, match="weight must be positive"):
        DatasetSpec(path="a", weight=0)


def test_post_training_is_the_train_config_with_its_defaults() -> None:
    config = post_training_config()
    assert isinstance(config, TrainConfig)
    assert {k: getattr(config, k) for k in POST_TRAINING_DEFAULTS} == POST_TRAINING_DEFAULTS
    assert config.validate_first and not config.resume  # before/after errors; a fresh run folder
    # The schedule follows the steps unless given: warmup 10% (at most 100), five validations, save at the end.
    for steps, warmup, val_every in [(200, 20, 40), (4, 0, 1), (5000, 100, 1000)]:
        c = post_training_config(steps=steps)
        assert (c.warmup_steps, c.val_every, c.save_every) == (warmup, val_every, steps)
    given = post_training_config(steps=50, warmup_steps=7, val_every=3, save_every=10, lr=1e-3)
    assert (given.warmup_steps, given.val_every, given.save_every, given.lr) == (7, 3, 10, 1e-3)
    with pytest.raises(ConfigError, match="steps must be positive"):
        post_training_config(steps=0)
    with pytest.raises(ConfigError, match="unknown train config keys"):
        post_training_config(stpes=5)
