"""The training configuration: one YAML file plus ``key=value`` overrides from the command line.

The same config serves pretraining (``preset`` + ``datasets``) and post-training (``init_from``
a checkpoint, optionally ``freeze`` some parts).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from gen0_policy.errors import ConfigError, check_keys, coerce_numbers
from gen0_policy.model.config import ModelConfig

FREEZABLE = ("vision", "proprio", "language_projection", "embodiment", "backbone", "expert")
FREEZE_ALIASES = {"language": "language_projection"}  # the text encoder itself is frozen anyway
STRATEGIES = ("auto", "single", "ddp", "fsdp")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class DatasetSpec:
    """One source of the mixture: a LeRobot v3 folder (``gen0 sim collect`` output), filtered."""

    path: str
    weight: float = 1.0
    name: str = ""
    embodiment: str = ""  # keep only episodes of this robot ("" = all)
    tasks: list[str] = field(default_factory=list)  # keep only these task ids ([] = all)
    max_episodes: int = 0  # 0 = all
    only_success: bool = True
    # Its successful episodes end at the goal, at rest (``gen0 sim collect`` lingers 0.3 s there): the
    # chunk past an episode's end is learned as "stay" instead of masked (data/windows.py).
    hold_after_end: bool = False

    def __post_init__(self) -> None:
        coerce_numbers(self)
        if not self.path:
            raise ConfigError("every dataset needs a path")
        if not self.weight > 0:
            raise ConfigError(f"dataset {self.path}: weight must be positive, got {self.weight}")
        self.name = self.name or Path(self.path).name


@dataclass
class TrainConfig:
    out_dir: str = "runs/gen0"
    run_name: str = ""
    # Model: a preset plus overrides, or the config of the checkpoint in init_from.
    preset: str = "small"
    model: dict[str, Any] = field(default_factory=dict)
    init_from: str = ""  # post-training: start from this checkpoint's weights (and config)
    freeze: list[str] = field(default_factory=list)  # parts kept fixed, from FREEZABLE ("language" accepted)
    # Data.
    datasets: list[DatasetSpec] = field(default_factory=list)
    val_fraction: float = 0.1
    # Fraction of training samples whose joint-state input is hidden (zeroed, i.e. the mean pose), so
    # the policy cannot just continue its own motion instead of looking where the target is.
    state_dropout: float = 0.0
    # Random shift of every training picture by up to this many pixels of the model's input, each way
    # (edges repeated; DrQ's augmentation): a few demonstrations' pictures, seen slightly moved, teach
    # where things are relative to each other rather than which pixel they fill. 0: none.
    image_shift_px: int = 0
    # Optimisation.
    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    ema_decay: float = 0.0  # 0 = no EMA; e.g. 0.999
    seed: int = 0
    precision: str = "auto"  # bf16 autocast on CUDA and on CPUs with AMX/AVX512-BF16
    strategy: str = "auto"  # single, ddp or fsdp (auto: ddp when launched by torchrun)
    device: str = "auto"
    threads: int = 0  # torch CPU threads per process; 0 = torch's default
    # Bookkeeping.
    log_every: int = 10
    validate_first: bool = False  # also validate the starting weights (post-training reports before/after)
    val_every: int = 250
    val_windows: int = 64
    val_samples: int = 0  # >1: also log the spread of this many flow samples
    save_every: int = 500
    keep_checkpoints: int = 2
    resume: bool = True  # continue from out_dir's latest checkpoint if there is one
    progress: bool = True

    def __post_init__(self) -> None:
        coerce_numbers(self)
        self.datasets = [d if isinstance(d, DatasetSpec) else dataset_spec(d) for d in self.datasets]
        check_keys(self.model, {f.name for f in fields(ModelConfig)}, "model")
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.freeze = [FREEZE_ALIASES.get(f, f) for f in self.freeze if f]
        unknown = sorted(set(self.freeze) - set(FREEZABLE))
        if unknown:
            raise ConfigError(f"cannot freeze {unknown}; freezable parts are {list(FREEZABLE)}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("steps", "batch_size", "log_every", "val_every", "save_every", "keep_checkpoints"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train config {name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.state_dropout < 1:
            raise ConfigError(f"state_dropout must be in [0, 1), got {self.state_dropout}")
        if self.image_shift_px < 0:
            raise ConfigError(f"image_shift_px must be >= 0, got {self.image_shift_px}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"learning rate lr must be a positive number, got {self.lr}")
        if not (0 <= self.min_lr_ratio <= 1 and self.warmup_steps >= 0):
            raise ConfigError("need 0 <= min_lr_ratio <= 1 and warmup_steps >= 0")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"validation fraction val_fraction must be in [0, 1), got {self.val_fraction}")
        self.run_name = self.run_name or Path(self.out_dir).name

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        check_keys(data, {f.name for f in fields(cls)}, "train config")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"invalid train config: {exc}") from exc


def dataset_spec(data: Any) -> DatasetSpec:
    """A ``datasets:`` entry, its keys checked like the config's own."""
    if not isinstance(data, dict):
        raise ConfigError(f"each datasets entry must be a mapping with a path, got {data!r}")
    check_keys(data, {f.name for f in fields(DatasetSpec)}, "datasets entry")
    return DatasetSpec(**data)


# Post-training is this config with these defaults: the job, the ROS action and `gen0 posttrain` all
# start here. Warmup, validation and saving follow the steps unless given (see post_training_config).
POST_TRAINING_DEFAULTS: dict[str, Any] = {
    "steps": 200,
    "batch_size": 16,
    "lr": 1e-4,
    "val_fraction": 0.2,
    "validate_first": True,
    "resume": False,
    "progress": False,
}


def post_training_config(**overrides: Any) -> TrainConfig:
    """The TrainConfig of a post-training run: POST_TRAINING_DEFAULTS, then ``overrides``; unless
    given, warmup is 10% of the steps (at most 100), validation runs five times and saving only at the end."""
    values = {**POST_TRAINING_DEFAULTS, **overrides}
    try:
        steps = int(values["steps"])
    except (TypeError, ValueError):
        raise ConfigError(f"steps must be an integer, got {values['steps']!r}") from None
    values.setdefault("warmup_steps", min(100, steps // 10))
    values.setdefault("val_every", max(1, steps // 5))
    values.setdefault("save_every", max(1, steps))
    return TrainConfig.from_dict(values)


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """``a.b.c=value`` (value parsed as YAML; list items by index: ``datasets.0.weight=2``)."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like key=value (e.g. steps=2000 or model.width=256)")
    key, raw = assignment.split("=", 1)
    value = yaml.safe_load(raw) if raw else ""
    parts = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"override {key}: {part!r} is not an index of a list of {len(node)}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        else:
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict | list):
                    raise ConfigError(f"override {key}: {part} is not a mapping")


def load_train_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    data: dict[str, Any] = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"train config {path} not found; see config/train/ for examples")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of train settings")
    for assignment in overrides:
        apply_override(data, assignment)
    return TrainConfig.from_dict(data)
