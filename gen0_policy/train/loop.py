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
import shutil
import sys
import time
from collections.abc import Callable, Sequence
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
from gen0_policy.model.checkpoint import load_policy, read_json, resolve, save_policy
from gen0_policy.model.config import ModelConfig, preset
from gen0_policy.model.counting import component_of
from gen0_policy.model.language import language_encoder
from gen0_policy.model.modeling import Gen0Model
from gen0_policy.model.processor import JointStats, Processor
from gen0_policy.train.batch import BatchBuilder
from gen0_policy.train.checkpoint import load_train_state, save_train_state
from gen0_policy.train.config import TrainConfig
from gen0_policy.train.curves import chunk_figure, write_curves
from gen0_policy.train.placement import place
from gen0_policy.train.sources import joint_stats, load_sources
from gen0_policy.train.validation import next_action_error, predicted_chunks

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
Emit = Callable[[dict[str, Any]], None]


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio * lr at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class Trainer:
    """Builds everything from a TrainConfig (and optionally in-memory sources), then ``run()``."""

    def __init__(
        self,
        config: TrainConfig,
        sources: Sequence[MixtureSource] | None = None,
        embodiments: Sequence[Embodiment] | None = None,
    ) -> None:
        self.config = config
        placement = place(config)
        self.strategy, self.device, self.bf16 = placement.strategy, placement.device, placement.bf16
        self.rank, self.world = placement.rank, placement.world
        if config.threads:
            torch.set_num_threads(config.threads)
        self.out_dir = Path(config.out_dir)
        init = load_policy(config.init_from) if config.init_from else None
        model_config = self._model_config(init)
        self.camera_sizes: dict[str, dict[str, list[int]]] = {}
        owned = sources is None  # episodes read here: their frames are released once prepared
        if sources is None:
            sources, self.camera_sizes = load_sources(config.datasets, model_config.image_size)
        # Held-out episodes per source, so every source is validated.
        self.train_sources, self.val_sources = [], []
        for i, s in enumerate(sources):
            train_eps, val_eps = split_episodes(s.episodes, config.val_fraction, seed=config.seed + i)
            self.train_sources.append(MixtureSource(s.name, train_eps, s.weight, s.hold_after_end))
            if val_eps:
                self.val_sources.append(MixtureSource(s.name, val_eps, s.weight, s.hold_after_end))
        all_train = [e for s in self.train_sources for e in s.episodes]
        fps = sorted({float(e.fps) for s in sources for e in s.episodes})
        if not fps:
            raise DatasetError("no datasets: the config's datasets (or the sources given) hold no episodes")
        if len(fps) != 1:
            raise DatasetError(f"the mixture mixes control rates {fps} Hz; resample the datasets to one rate")
        self.fps = fps[0]
        self.embodiments, stats = self._embodiments_and_stats(all_train, init, embodiments)
        self.processor = Processor(model_config, self.embodiments, stats)
        self.language = language_encoder(model_config.language_encoder, model_config.language_dim)
        self.sampler = WindowSampler(self.train_sources, model_config.max_prefix, seed=config.seed)
        # Owned episodes give up their frames to the prepared copies (half the memory: a mixture of
        # 215,000 frames of two 96x96 cameras is 12 GB once, and did not fit 24 GiB twice).
        self.builder = BatchBuilder(
            model_config,
            self.train_sources,
            self.processor,
            self.language,
            state_dropout=config.state_dropout,
            image_shift_px=config.image_shift_px,
            release_frames=owned,
        )
        self.val_builder = BatchBuilder(
            model_config, self.val_sources, self.processor, self.language, release_frames=owned
        )
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
            # Every weight of the checkpoint must land, and every weight its own config has must be
            # there; only parts the config's model overrides add (fine keypoints, say) start fresh.
            with torch.device("meta"):
                own = set(Gen0Model(init.config).state_dict())
            missing, unexpected = model.load_state_dict(init.state_dict, strict=False)
            lost = sorted(own & set(missing))
            if unexpected or lost:
                raise CheckpointError(
                    f"{self.config.init_from} does not fit this model: its weights {unexpected} have no place "
                    f"here, and {lost} are missing from it"
                )
            if missing:
                fresh = ", ".join(missing)
                print(f"init_from {self.config.init_from}: new parameters start fresh: {fresh}", file=sys.stderr)
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
        saved, now = read_json(ckpt / "config.json")["model"], self.module.config.to_dict()
        changed = {k: (v, now.get(k)) for k, v in saved.items() if v != now.get(k)}
        if changed:
            described = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items()))
            raise ConfigError(
                f"{self.out_dir} holds a run of another model ({described}); resume with its model settings, "
                "or train into a new out_dir (or with resume=false to start over there)"
            )
        state = load_train_state(ckpt)
        set_model_state_dict(self.model, state["weights"], options=FULL)
        set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"], options=FULL)
        if self.ema is not None:
            if state["ema"] is None:
                raise CheckpointError(f"{ckpt} has no EMA weights but ema_decay > 0; resume with ema_decay=0")
            self.ema.load_state_dict(state["ema"])
        self.step = self.saved_step = int(state["trainer"]["step"])
        if self.rank == 0:
            print(f"resuming from {ckpt} at step {self.step} of {self.config.steps}", file=sys.stderr, flush=True)

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
        """Next-action error on the held-out windows (see :func:`~gen0_policy.train.validation.next_action_error`)."""
        if not self.val_windows:
            return {}
        net = self.ema if self.ema is not None else self.model
        net.eval()
        try:
            return next_action_error(
                net, self.val_builder, self.val_windows, self.config.batch_size, self.device, self._autocast,
                self.config.val_samples,
            )  # fmt: skip
        finally:
            net.train()

    def validation_chunks(self, count: int = 3, among: int = 32) -> dict[str, Any]:
        """Predicted beside demonstrated chunks of ``count`` held-out windows (for TensorBoard): of the
        first ``among``, those with the most predicted steps (not the end of an episode, all committed)."""
        net = self.ema if self.ema is not None else self.model
        net.eval()
        try:
            chunks = predicted_chunks(net, self.val_builder, self.val_windows[:among], self.device, self._autocast)
        finally:
            net.train()
        predicted_steps = chunks["steps"] - chunks["committed"].sum(1)
        best = np.sort(np.argsort(-predicted_steps, kind="stable")[:count])
        return {key: value[best] for key, value in chunks.items()}

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
    def run(self, on_event: Emit | None = None, should_stop: Callable[[], bool] | None = None) -> dict[str, float]:
        """Train to ``config.steps``: log, validate and save on the config's schedule, and always
        validate and save at the end (and validate the starting weights if ``config.validate_first``).

        Hooks: each phase change, step, validation and checkpoint is also an event dict for
        ``on_event`` (post-training streams them to the ROS action and the CLI); ``should_stop()``
        is asked before each step, and a stop saves the steps trained since the last save (without
        validating, to stop quickly) and returns. A non-finite loss raises DatasetError.
        """
        from tqdm import tqdm

        config = self.config
        emit = on_event or (lambda event: None)
        stop = should_stop or (lambda: False)
        writer = None
        if self.rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "train_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
            writer = SummaryWriter(str(self.out_dir / "tb"))
        phase = ""

        def enter(name: str) -> None:
            nonlocal phase
            if name != phase:
                phase = name
                emit({"event": "phase", "phase": name})

        def validate() -> dict[str, float]:
            enter("validating")
            val = self.validate()
            error = val.get("val/next_action_mse", math.nan)
            history["validation"].append((self.step, error))
            emit({"event": "validation", "step": self.step, "validation_error": error})
            if writer:
                for key, value in val.items():
                    writer.add_scalar(key, value, self.step)
                if self.val_windows and self.strategy != "fsdp":  # an FSDP forward needs every rank
                    writer.add_figure("val/chunks", chunk_figure(self.validation_chunks()), self.step, close=True)
            return val

        def save(metrics: dict[str, float]) -> None:
            enter("saving")
            ckpt = self.save(metrics)
            emit({"event": "checkpoint", "step": self.step, "path": str(ckpt) if ckpt else ""})

        metrics: dict[str, float] = {}
        history: dict[str, list[tuple[int, float]]] = {"train": [], "validation": []}  # for curves.png
        if config.validate_first and not stop():
            metrics.update(validate())
        bar = tqdm(total=config.steps, initial=self.step, disable=self.rank != 0 or not config.progress, mininterval=2)
        began, began_step = time.perf_counter(), self.step
        tick, tick_step = began, self.step
        stopped = False
        while self.step < config.steps and not (stopped := stop()):
            enter("training")
            stats = self.train_step()
            if not math.isfinite(stats["loss"]):
                raise DatasetError(
                    f"training loss became {stats['loss']} at step {self.step}; lower the learning rate "
                    "or check the data for NaN/inf"
                )
            metrics.update(stats)
            bar.update(1)
            now, last = time.perf_counter(), self.step == config.steps
            eta = (now - began) / (self.step - began_step) * (config.steps - self.step)
            emit({"event": "step", "step": self.step, "total_steps": config.steps, "eta": eta, **stats})
            if self.step % config.log_every == 0 or last:
                stats["samples_per_s"] = (self.step - tick_step) * config.batch_size / max(now - tick, 1e-9)
                tick, tick_step = now, self.step
                bar.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{stats['lr']:.2e}")
                history["train"].append((self.step, stats["loss"]))
                if writer:
                    for key, value in stats.items():
                        writer.add_scalar(f"train/{key}", value, self.step)
            if self.step % config.val_every == 0 or last:
                metrics.update(validate())
            if self.step % config.save_every == 0 or last:
                save(metrics)
        if stopped and self.step > max(self.saved_step, 0):
            save(metrics)
        elif not stopped and self.saved_step != self.step:  # steps taken outside run(), e.g. by a caller's loop
            metrics.update(validate())
            save(metrics)
        bar.close()
        if writer:
            writer.close()
            write_curves(self.out_dir / "curves.png", history["train"], history["validation"])
        return metrics


def train(
    config: TrainConfig,
    sources: Sequence[MixtureSource] | None = None,
    embodiments: Sequence[Embodiment] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, float]:
    """Train (or resume, or post-train) as ``config`` says; returns the last metrics. ``should_stop``:
    asked before each step; a stop saves the steps trained so far (resume with the same command).
    ``on_event``: every progress event (see :meth:`Trainer.run`)."""
    try:
        metrics = Trainer(config, sources, embodiments).run(on_event, should_stop)
        if dist.is_initialized():
            # Ranks leave together: rank 0 still writes the last checkpoint when the others are done,
            # and a rank that tore down its gloo links and exited meanwhile once died in SIGABRT.
            dist.barrier()
        return metrics
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
