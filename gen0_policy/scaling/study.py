"""A scaling study, fixed in one YAML file before it runs, and its expansion into runs.

    pretrain:   models x episodes x seeds  -> each run pretrains on the first D episodes of one fixed
                shuffle of the pretraining pool, then post-trains on the held-out downstream task
                with the same small budget, and is measured on held-out episodes of both
    efficiency: demos x {base, scratch} x seeds -> the downstream task learned from N demos, starting
                from one pretrained base or from random weights

Runs are plain data (``Run``) with a readable id, so a results file says what each line is and a
sweep can skip what is already done. The study's hash goes into every result: results of a
different protocol are never mixed into a fit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from gen0_policy.errors import ConfigError
from gen0_policy.train.config import TrainConfig

# Settings a study may not give its runs: the sweep owns them.
OWNED_TRAIN_KEYS = ("out_dir", "run_name", "preset", "model", "init_from", "datasets", "seed", "resume")


@dataclass
class DataSource:
    """One LeRobot v3 folder (``gen0 sim collect --out``), relative to the data root."""

    path: str
    weight: float = 1.0
    name: str = ""
    hold_after_end: bool = False  # as in a training config's datasets (train/config.py DatasetSpec)

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("every study dataset needs a path")
        if not float(self.weight) > 0:
            raise ConfigError(f"study dataset {self.path}: weight must be positive, got {self.weight}")
        self.weight = float(self.weight)
        self.name = self.name or Path(self.path).name


@dataclass
class ModelSpec:
    """A model size: a preset plus overrides (``gen0 model info`` counts it)."""

    name: str
    preset: str = "small"
    model: dict[str, Any] = field(default_factory=dict)


def _sources(items: Any, what: str) -> list[DataSource]:
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{what} must be a non-empty list of datasets ({{path: ..., weight: ...}})")
    known = {f.name for f in fields(DataSource)}
    for item in items:
        if isinstance(item, dict) and (unknown := sorted(set(item) - known)):
            raise ConfigError(f"{what}: unknown dataset keys {unknown}; known keys are {sorted(known)}")
    return [DataSource(**i) if isinstance(i, dict) else DataSource(str(i)) for i in items]


def _check_train(overrides: dict[str, Any], what: str) -> dict[str, Any]:
    """Validate a block of TrainConfig overrides now, not hours later in the run that uses it."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"{what} must be a mapping of train settings")
    owned = sorted(set(overrides) & set(OWNED_TRAIN_KEYS))
    if owned:
        raise ConfigError(f"{what}: {owned} are set by the sweep itself; remove them")
    TrainConfig.from_dict({**overrides, "out_dir": "x"})
    return dict(overrides)


def _positive_ints(values: Any, what: str) -> list[int]:
    if not isinstance(values, list) or not values or any(not isinstance(v, int) or v <= 0 for v in values):
        raise ConfigError(f"{what} must be a non-empty list of positive integers, got {values!r}")
    return sorted(set(values))


@dataclass
class Pretrain:
    datasets: list[DataSource]
    heldout: list[DataSource]
    episodes: list[int]
    models: list[ModelSpec]
    seeds: list[int] = field(default_factory=lambda: [0])
    end_seeds: list[int] = field(default_factory=list)  # extra seeds at the smallest and largest size
    train: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.datasets = _sources(self.datasets, "pretrain.datasets")
        self.heldout = _sources(self.heldout, "pretrain.heldout")
        self.episodes = _positive_ints(self.episodes, "pretrain.episodes")
        if not isinstance(self.models, list) or not self.models:
            raise ConfigError("pretrain.models must list at least one model ({name, preset, model})")
        self.models = [m if isinstance(m, ModelSpec) else ModelSpec(**m) for m in self.models]
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ConfigError(f"pretrain.models names must be unique, got {names}")
        self.train = _check_train(self.train, "pretrain.train")


@dataclass
class Downstream:
    """The held-out task: its demonstrations (the first ``demos`` are the post-training budget)."""

    datasets: list[DataSource]
    heldout: list[DataSource]
    demos: int = 8
    train: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.datasets = _sources(self.datasets, "downstream.datasets")
        self.heldout = _sources(self.heldout, "downstream.heldout")
        if not isinstance(self.demos, int) or self.demos <= 0:
            raise ConfigError(f"downstream.demos must be a positive integer, got {self.demos!r}")
        self.train = _check_train(self.train, "downstream.train")


@dataclass
class Efficiency:
    """Post-training data efficiency from one pretrained base (a pretrain run) vs from scratch."""

    base: dict[str, Any]  # {model: NAME, episodes: D, seed: S}: which pretrain run is the base
    demos: list[int]
    seeds: list[int] = field(default_factory=lambda: [0])
    train: dict[str, Any] = field(default_factory=dict)  # post-training from the base
    scratch_train: dict[str, Any] = field(default_factory=dict)  # from scratch (default: same as train)

    def __post_init__(self) -> None:
        if not isinstance(self.base, dict) or set(self.base) != {"model", "episodes", "seed"}:
            raise ConfigError(f"efficiency.base must be {{model, episodes, seed}} of a pretrain run, got {self.base}")
        self.demos = _positive_ints(self.demos, "efficiency.demos")
        self.train = _check_train(self.train, "efficiency.train")
        self.scratch_train = _check_train(self.scratch_train or self.train, "efficiency.scratch_train")


@dataclass
class Evaluation:
    windows_per_episode: int = 8  # evenly spaced windows of each held-out episode


@dataclass(frozen=True)
class Run:
    """One unit of work; ``id`` names it in the results file and its folder."""

    kind: str  # "pretrain" or "efficiency"
    model: str
    seed: int
    episodes: int = 0  # pretrain: pretraining episodes
    demos: int = 0  # efficiency: post-training demonstrations
    arm: str = ""  # efficiency: "base" or "scratch"

    @property
    def id(self) -> str:
        if self.kind == "pretrain":
            return f"pretrain-{self.model}-d{self.episodes}-s{self.seed}"
        return f"efficiency-{self.arm}-n{self.demos}-s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Study:
    name: str
    pretrain: Pretrain
    downstream: Downstream
    efficiency: Efficiency | None = None
    evaluation: Evaluation = field(default_factory=Evaluation)
    shuffle_seed: int = 0  # the one fixed order of the pretraining pool; size D takes its first D
    threads: int = 1  # torch threads per run (training and evaluation); a machine's cores / runs at a time

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a study needs a name")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(f"threads must be a positive integer, got {self.threads!r}")
        if isinstance(self.pretrain, dict):
            self.pretrain = Pretrain(**self.pretrain)
        if isinstance(self.downstream, dict):
            self.downstream = Downstream(**self.downstream)
        if isinstance(self.efficiency, dict):
            self.efficiency = Efficiency(**self.efficiency)
        if isinstance(self.evaluation, dict):
            self.evaluation = Evaluation(**self.evaluation)
        if self.efficiency is not None:
            base = self.base_run()
            if base not in self.pretrain_runs():
                raise ConfigError(f"efficiency.base {self.efficiency.base} is not one of the pretrain runs")

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Study:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown study keys {unknown}; known keys are {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as exc:  # a misspelt key inside a block
            raise ConfigError(f"invalid study: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def hash(self) -> str:
        """Identifies the protocol: results made under another one are refused. Threads are how it
        runs on a machine, not what it measures, so they are left out."""
        protocol = {k: v for k, v in self.to_dict().items() if k != "threads"}
        return hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:12]

    # -- runs -----------------------------------------------------------------------------------
    def model(self, name: str) -> ModelSpec:
        for m in self.pretrain.models:
            if m.name == name:
                return m
        raise ConfigError(f"no model {name!r} in the study; models are {[m.name for m in self.pretrain.models]}")

    def pretrain_runs(self) -> list[Run]:
        p = self.pretrain
        ends = {p.episodes[0], p.episodes[-1]}
        runs = []
        for m in p.models:
            for d in p.episodes:
                seeds = sorted(set(p.seeds) | (set(p.end_seeds) if d in ends else set()))
                runs += [Run("pretrain", m.name, s, episodes=d) for s in seeds]
        return runs

    def base_run(self) -> Run:
        assert self.efficiency is not None
        b = self.efficiency.base
        self.model(b["model"])
        return Run("pretrain", b["model"], int(b["seed"]), episodes=int(b["episodes"]))

    def efficiency_runs(self) -> list[Run]:
        if self.efficiency is None:
            return []
        model = self.efficiency.base["model"]
        return [
            Run("efficiency", model, s, demos=n, arm=arm)
            for n in self.efficiency.demos
            for arm in ("base", "scratch")
            for s in self.efficiency.seeds
        ]

    def runs(self) -> list[Run]:
        """Every run, pretraining first (an efficiency base run needs its pretrained checkpoint)."""
        return self.pretrain_runs() + self.efficiency_runs()


def load_study(path: str | Path) -> Study:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study {path} not found; see config/scaling/ for examples")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping (name, pretrain, downstream, ...)")
    return Study.from_dict(data)
