"""One training loop for pretraining and post-training, single process or distributed.

    sources (weighted) -> windows -> batches -> flow-matching loss -> AdamW (warmup + cosine,
    clipping, optional EMA) -> validation on held-out episodes -> self-describing checkpoints

Distributed: launch with ``torchrun``; DDP or FSDP2 (``fully_shard``) on whatever backend the
machine has (NCCL on GPUs, gloo on CPUs). Each rank builds its slice of the same global batch, so
a step is the same computation at any world size.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from gen0_policy.data.episode import Episode
from gen0_policy.data.windows import MixtureSource, Window, WindowSampler, split_episodes
from gen0_policy.embodiment import Embodiment, load_embodiment
from gen0_policy.errors import CheckpointError, ConfigError, DatasetError
from gen0_policy.model.checkpoint import load_policy, resolve, save_policy
from gen0_policy.model.config import ModelConfig, preset
from gen0_policy.model.counting import component_of
from gen0_policy.model.language import language_encoder
from gen0_policy.model.modeling import Gen0Model
from gen0_policy.model.policy import bf16_fast
from gen0_policy.model.processor import JointStats, Processor
from gen0_policy.train.batch import BatchBuilder
from gen0_policy.train.checkpoint import load_train_state, save_train_state
from gen0_policy.train.config import DatasetSpec, TrainConfig

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio * lr at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def load_sources(specs: Sequence[DatasetSpec], image_size: int) -> list[MixtureSource]:
    """Read each dataset folder (LeRobot v3) and apply its filters."""
    from gen0_policy.data.lerobot import load_episodes

    sources = []
    for spec in specs:
        path = Path(spec.path)
        if not (path / "meta" / "info.json").is_file():
            raise DatasetError(
                f"dataset {path} is not a LeRobot v3 folder (no meta/info.json); "
                "make one with `gen0 sim collect --out DIR` or `gen0 data build`"
            )
        episodes = load_episodes(path, image_size=(image_size, image_size))
        episodes = [
            e
            for e in episodes
            if (not spec.embodiment or e.embodiment == spec.embodiment)
            and (not spec.tasks or e.task in spec.tasks)
            and (e.success or not spec.only_success)
        ]
        if spec.max_episodes:
            episodes = episodes[: spec.max_episodes]
        if not episodes:
            raise DatasetError(f"dataset {path}: no episodes left after filters (embodiment, tasks, only_success)")
        sources.append(MixtureSource(spec.name, episodes, spec.weight))
    return sources


def camera_sizes(specs: Sequence[DatasetSpec]) -> dict[str, dict[str, list[int]]]:
    """{robot: {camera: [width, height]}} the datasets were recorded at, from meta/info.json, so a
    rollout can render what the policy was trained on (a 4:3 render squashed to a square is not)."""
    import json

    sizes: dict[str, dict[str, list[int]]] = {}
    for spec in specs:
        info = json.loads((Path(spec.path) / "meta" / "info.json").read_text())
        robot = spec.embodiment or str(info.get("robot_type", ""))
        for key, feature in info.get("features", {}).items():
            if key.startswith("observation.images.") and len(feature.get("shape", [])) == 3:
                height, width = feature["shape"][:2]
                sizes.setdefault(robot, {})[key.removeprefix("observation.images.")] = [int(width), int(height)]
    return sizes


def joint_stats(episodes: Sequence[Episode]) -> dict[str, JointStats]:
    by_robot: dict[str, list[Episode]] = {}
    for e in episodes:
        by_robot.setdefault(e.embodiment, []).append(e)
    return {
        name: JointStats.from_arrays(np.concatenate([e.states for e in eps]), np.concatenate([e.actions for e in eps]))
        for name, eps in sorted(by_robot.items())
    }


class Trainer:
    """Builds everything from a TrainConfig (and optionally in-memory sources), then ``run()``."""

    def __init__(
        self,
        config: TrainConfig,
        sources: Sequence[MixtureSource] | None = None,
        embodiments: Sequence[Embodiment] | None = None,
    ) -> None:
        self.config = config
        self._setup_distributed()
        if config.threads:
            torch.set_num_threads(config.threads)
        self.out_dir = Path(config.out_dir)
        init = load_policy(config.init_from) if config.init_from else None
        model_config = self._model_config(init)
        self.camera_sizes: dict[str, dict[str, list[int]]] = {}
        if sources is None:
            sources = load_sources(config.datasets, model_config.image_size)
            self.camera_sizes = camera_sizes(config.datasets)
        # Held-out episodes per source, so every source is validated.
        self.train_sources, self.val_sources = [], []
        for i, s in enumerate(sources):
            train_eps, val_eps = split_episodes(s.episodes, config.val_fraction, seed=config.seed + i)
            self.train_sources.append(MixtureSource(s.name, train_eps, s.weight))
            if val_eps:
                self.val_sources.append(MixtureSource(s.name, val_eps, s.weight))
        all_train = [e for s in self.train_sources for e in s.episodes]
        fps = sorted({float(e.fps) for s in sources for e in s.episodes})
        if len(fps) != 1:
            raise DatasetError(f"the mixture mixes control rates {fps} Hz; resample the datasets to one rate")
        self.fps = fps[0]
        self.embodiments, stats = self._embodiments_and_stats(all_train, init, embodiments)
        self.processor = Processor(model_config, self.embodiments, stats)
        self.language = language_encoder(model_config.language_encoder, model_config.language_dim)
        self.sampler = WindowSampler(self.train_sources, model_config.max_prefix, seed=config.seed)
        self.builder = BatchBuilder(
            model_config, self.train_sources, self.processor, self.language, state_dropout=config.state_dropout
        )
        self.val_builder = BatchBuilder(model_config, self.val_sources, self.processor, self.language)
        self.val_windows: list[Window] = (
            WindowSampler(self.val_sources, model_config.max_prefix, seed=config.seed).fixed(config.val_windows)
            if self.val_sources
            else []
        )
        self._build_model(model_config, init)
        self.step = 0
        self.saved_step = -1
        if config.resume and (self.out_dir / "latest").is_file():
            self._resume(resolve(self.out_dir))

    # -- set-up -----------------------------------------------------------------------------------
    def _setup_distributed(self) -> None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        strategy = self.config.strategy
        if strategy == "auto":
            strategy = "ddp" if world > 1 else "single"
        if world > 1 and strategy == "single":
            raise ConfigError("launched with several processes but strategy=single; use ddp or fsdp")
        self.strategy = strategy
        if self.config.device == "auto":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
        else:
            device = self.config.device
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        if self.config.batch_size % self.world:
            raise ConfigError(f"batch_size {self.config.batch_size} must be divisible by {self.world} processes")
        self.bf16 = self.config.precision == "bf16" or (self.config.precision == "auto" and bf16_fast(self.device))

    def _model_config(self, init: Any) -> ModelConfig:
        if init is not None:
            return init.config.with_overrides(**self.config.model)
        return preset(self.config.preset, **self.config.model)

    def _embodiments_and_stats(
        self, episodes: Sequence[Episode], init: Any, given: Sequence[Embodiment] | None
    ) -> tuple[list[Embodiment], dict[str, JointStats]]:
        """Checkpoint's robots first (their token ids and stats must not move), then new ones by name."""
        given_by_name = {e.name: e for e in given or []}
        stats = joint_stats(episodes)
        robots: dict[str, Embodiment] = {}
        if init is not None:
            robots.update({e.name: e for e in init.embodiments})
            stats.update(init.stats)
        for name in sorted({e.embodiment for e in episodes}):
            if name not in robots:
                robots[name] = given_by_name.get(name) or load_embodiment(name)
        for e in episodes:
            if e.states.shape[1] != robots[e.embodiment].dof:
                raise DatasetError(
                    f"an episode of {e.embodiment} has {e.states.shape[1]} joints; "
                    f"its description has {robots[e.embodiment].dof}"
                )
        return list(robots.values()), stats

    def _build_model(self, model_config: ModelConfig, init: Any) -> None:
        torch.manual_seed(self.config.seed)
        model = Gen0Model(model_config)
        if init is not None:
            model.load_state_dict(init.state_dict, strict=True)
        for name, p in model.named_parameters():
            if component_of(name) in self.config.freeze:
                p.requires_grad_(False)
        model.to(self.device)
        self.ema = None
        if self.config.ema_decay > 0:
            if self.strategy == "fsdp":
                raise ConfigError("ema_decay with strategy=fsdp is not supported; use ddp or set ema_decay=0")
            self.ema = copy.deepcopy(model).requires_grad_(False).eval()
        self.module = model  # the unwrapped network
        if self.strategy == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model: torch.nn.Module = DistributedDataParallel(model, device_ids=ids)
        elif self.strategy == "fsdp":
            from torch.distributed.fsdp import fully_shard

            # Backbone blocks are their own units; the expert (its cross-attention keys/values are
            # computed outside its blocks' forward, once per chunk) stays in the root unit.
            for block in model.backbone:
                fully_shard(block)
            fully_shard(model)
            self.model = model
        else:
            self.model = model
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 and "pos" not in name else no_decay).append(p)
        if not decay + no_decay:
            raise ConfigError(f"freeze={self.config.freeze} leaves nothing to train")
        groups = [
            {"params": decay, "weight_decay": self.config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        # Fused AdamW: one kernel over all parameters (CPU and CUDA); FSDP's sharded DTensors use foreach.
        fused = self.strategy != "fsdp"
        self.optimizer = torch.optim.AdamW(groups, lr=self.config.lr, betas=self.config.betas, fused=fused)
        self.params = decay + no_decay

    def _resume(self, ckpt: Path) -> None:
        state = load_train_state(ckpt)
        set_model_state_dict(self.model, state["weights"], options=FULL)
        set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"], options=FULL)
        if self.ema is not None:
            if state["ema"] is None:
                raise CheckpointError(f"{ckpt} has no EMA weights but ema_decay > 0; resume with ema_decay=0")
            self.ema.load_state_dict(state["ema"])
        self.step = self.saved_step = int(state["trainer"]["step"])

    # -- one step -----------------------------------------------------------------------------------
    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, torch.bfloat16) if self.bf16 else nullcontext()

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """This rank's slice of the global batch of ``step``."""
        local = self.config.batch_size // self.world
        indices = list(range(self.rank * local, (self.rank + 1) * local))
        windows = self.sampler.sample(step, indices)
        batch = self.builder(windows, self.config.seed, step, indices)
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def train_step(self) -> dict[str, float]:
        step = self.step
        lr = lr_at(step, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        batch = self.batch(step)
        with self._autocast():
            loss = self.model(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            ema_params = [p for p in self.ema.parameters()]
            live = [p.detach() for p in self.module.parameters()]
            torch._foreach_lerp_(ema_params, live, 1.0 - self.config.ema_decay)
        loss = loss.detach()
        if self.world > 1:
            dist.all_reduce(loss, op=dist.ReduceOp.AVG)
        self.step += 1
        return {"loss": float(loss), "lr": lr, "grad_norm": float(grad_norm)}

    # -- validation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Next-action error on held-out episodes: normalized MSE of the deterministic chunk estimate
        over the non-committed, valid steps and joints (GEN-0's metric); optionally the sample spread."""
        if not self.val_windows:
            return {}
        net = self.ema if self.ema is not None else self.model
        net.eval()
        errors, spreads = [], []
        bs = self.config.batch_size
        for start in range(0, len(self.val_windows), bs):
            windows = self.val_windows[start : start + bs]
            indices = list(range(start, start + len(windows)))
            batch = {k: v.to(self.device) for k, v in self.val_builder(windows, 999, 0, indices).items()}
            weight = batch["dof_mask"][:, None, :] & (batch["action_mask"] & ~batch["committed"])[..., None]
            with self._autocast():
                pred = net({**batch, "noise": torch.zeros_like(batch["noise"])}, task="sample")
                err = ((pred.float() - batch["actions"]) ** 2 * weight).sum((1, 2)) / weight.sum((1, 2)).clamp_min(1)
                errors.append(err.cpu())
                if self.config.val_samples > 1:
                    K = self.config.val_samples
                    rep = {k: v.repeat_interleave(K, 0) for k, v in batch.items()}
                    gen = torch.Generator().manual_seed(start)
                    rep["noise"] = torch.randn(rep["noise"].shape, generator=gen).to(self.device)
                    x = net(rep, task="sample").float()
                    x = x.view(len(windows), K, *x.shape[1:]).std(1)
                    spreads.append(((x * weight).sum((1, 2)) / weight.sum((1, 2)).clamp_min(1)).cpu())
        net.train()
        out = {"val/next_action_mse": float(torch.cat(errors).mean())}
        if spreads:
            out["val/sample_spread"] = float(torch.cat(spreads).mean())
        return out

    # -- checkpoints --------------------------------------------------------------------------------
    def save(self, metrics: dict[str, float] | None = None) -> Path | None:
        """Write ckpt-<step>/ (all ranks gather, rank 0 writes) and point ``latest`` at it."""
        weights = get_model_state_dict(self.model, options=FULL)
        optim = get_optimizer_state_dict(self.model, self.optimizer, options=FULL)
        self.saved_step = self.step
        if self.rank != 0:
            return None
        ckpt = self.out_dir / f"ckpt-{self.step:07d}"
        ema = {k: v.detach().clone() for k, v in self.ema.state_dict().items()} if self.ema is not None else None
        meta = {
            "run": self.config.run_name,
            "step": self.step,
            "fps": self.fps,
            "camera_sizes": self.camera_sizes,
            "seed": self.config.seed,
            "metrics": metrics or {},
            "datasets": [s.name for s in self.train_sources],
            "train_config": self.config.to_dict(),
        }
        save_policy(ckpt, ema or weights, self.module.config, self.embodiments, self.processor.stats, meta)
        save_train_state(ckpt, weights, optim, ema, {"step": self.step, "train_config": self.config.to_dict()})
        (self.out_dir / "latest.tmp").write_text(ckpt.name)
        (self.out_dir / "latest.tmp").replace(self.out_dir / "latest")
        old = sorted(self.out_dir.glob("ckpt-*"))[: -self.config.keep_checkpoints]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)
        return ckpt

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> dict[str, float]:
        from tqdm import tqdm

        config = self.config
        writer = None
        if self.rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "train_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
            writer = SummaryWriter(str(self.out_dir / "tb"))
        bar = tqdm(total=config.steps, initial=self.step, disable=self.rank != 0 or not config.progress, mininterval=2)
        metrics: dict[str, float] = {}
        tick, tick_step = time.perf_counter(), self.step
        while self.step < config.steps:
            stats = self.train_step()
            metrics.update(stats)
            bar.update(1)
            if self.step % config.log_every == 0 or self.step == config.steps:
                now = time.perf_counter()
                stats["samples_per_s"] = (self.step - tick_step) * config.batch_size / max(now - tick, 1e-9)
                tick, tick_step = now, self.step
                bar.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{stats['lr']:.2e}")
                if writer:
                    for key, value in stats.items():
                        writer.add_scalar(f"train/{key}", value, self.step)
            if self.step % config.val_every == 0 or self.step == config.steps:
                val = self.validate()
                metrics.update(val)
                if writer:
                    for key, value in val.items():
                        writer.add_scalar(key, value, self.step)
            if self.step % config.save_every == 0 or self.step == config.steps:
                self.save(metrics)
        if self.saved_step != self.step:  # steps taken outside run(), e.g. by a caller's own loop
            metrics.update(self.validate())
            self.save(metrics)
        bar.close()
        if writer:
            writer.close()
        return metrics


def train(
    config: TrainConfig,
    sources: Sequence[MixtureSource] | None = None,
    embodiments: Sequence[Embodiment] | None = None,
) -> dict[str, float]:
    """Train (or resume, or post-train) as ``config`` says; returns the last metrics."""
    trainer = Trainer(config, sources, embodiments)
    try:
        return trainer.run()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
