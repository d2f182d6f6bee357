"""Post-training: adapt a checkpoint to new demonstrations (recorded bags and/or built datasets).

One job = prepare data (bags are built into a LeRobot v3 dataset inside the run folder), split
episodes into train/validation, measure the base checkpoint's next-action error, train with the
shared :class:`~gen0_policy.train.loop.Trainer`, save, measure again. Progress is a stream of
plain dict events (JSON lines when run as ``python -m gen0_policy.train.posttrain JOB.json``), so
the ROS node and the CLI show the same thing and the node can run the job in a child process it
can cancel or kill without ever touching the running policy.

Stopping: ``should_stop()`` is checked between steps; a stop saves the current weights as the
last good checkpoint (unless nothing was trained), then reports ``status: canceled``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gen0_policy.errors import ConfigError, DatasetError, Gen0Error

Emit = Callable[[dict[str, Any]], None]
FREEZE_ALIASES = {"language": "language_projection"}  # the text encoder itself is frozen anyway
PHASES = ("preparing data", "validating", "training", "saving", "loading into policy")


@dataclass
class PostTrainJob:
    """What to post-train: the fields of gen0_msgs/action/PostTrain's goal, plus run knobs."""

    data: list[str]  # rosbag2 episode folders (or folders of them) and/or LeRobot v3 dataset folders
    out_dir: str  # the run folder: prepared data, checkpoints (ckpt-*, latest), job.json, progress.jsonl
    base: str = ""  # checkpoint (or run folder) to start from; "" trains `preset` from scratch
    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-4
    freeze: list[str] = field(default_factory=list)  # parts kept fixed (FREEZABLE, "language" accepted)
    val_fraction: float = 0.2  # share of episodes held out per dataset for the before/after error
    seed: int = 0
    preset: str = "small"  # model preset when training from scratch
    model: dict[str, Any] = field(default_factory=dict)  # model config overrides (from scratch only)
    fps: float = 0.0  # control rate for building bags; 0 = the base checkpoint's (or the datasets') rate
    warmup_steps: int = -1  # -1 = 10% of steps (at most 100)
    val_every: int = 0  # 0 = five validations per run
    val_windows: int = 64
    save_every: int = 0  # 0 = only at the end (and on cancel)
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0 = torch's default
    only_success: bool = True  # train on successful demonstrations only

    def __post_init__(self) -> None:
        self.data = [str(p) for p in self.data]
        self.freeze = [FREEZE_ALIASES.get(f, f) for f in self.freeze if f]
        if not self.data:
            raise ConfigError("post-training needs data: give one or more bag or dataset folders")
        if not self.out_dir:
            raise ConfigError("post-training needs an output folder (out_dir)")
        for name in ("steps", "batch_size", "val_windows"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"post-training {name} must be positive, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"learning rate must be a positive number, got {self.lr}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"validation fraction must be in [0, 1), got {self.val_fraction}")
        from gen0_policy.train.config import FREEZABLE

        unknown = sorted(set(self.freeze) - set(FREEZABLE))
        if unknown:
            raise ConfigError(f"cannot freeze {unknown}; freezable parts are {[*FREEZABLE, 'language']}")
        if self.base and self.model:
            raise ConfigError("model overrides apply only when training from scratch (no base checkpoint)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PostTrainJob:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown post-training job keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)


# ----------------------------------------------------------------------------------- data


def _base_fps(base: str) -> float:
    from gen0_policy.model.checkpoint import read_json, resolve

    return float(read_json(resolve(base) / "config.json").get("fps", 0.0) or 0.0)


def prepare_data(job: PostTrainJob, emit: Emit) -> list[Any]:
    """Dataset folders are used in place; bags are built once into ``<out_dir>/data/bags``.

    Returns the DatasetSpecs for the Trainer. Raises DatasetError naming the first unusable path.
    """
    from gen0_policy.data.bags import BuildConfig, build_dataset, find_bags
    from gen0_policy.data.lerobot import LeRobotDataset
    from gen0_policy.train.config import DatasetSpec

    datasets: list[Path] = []
    bag_inputs: list[Path] = []
    for raw in job.data:
        path = Path(raw).expanduser()
        if not path.exists():
            raise DatasetError(f"no such bag or dataset folder: {path}")
        if (path / "meta" / "info.json").is_file():
            datasets.append(path)
        else:
            bag_inputs.append(path)  # find_bags says clearly if it is neither
    bags = find_bags(bag_inputs) if bag_inputs else []
    fps = job.fps or (_base_fps(job.base) if job.base else 0.0)
    if not fps and datasets:
        fps = float(LeRobotDataset(datasets[0]).fps)
    if bags:
        out = Path(job.out_dir) / "data" / "bags"
        if (out / "meta" / "info.json").is_file():
            emit({"event": "log", "message": f"reusing the dataset built earlier from bags in {out}"})
        else:
            report = build_dataset(bags, out, BuildConfig(fps=fps or 20.0), only_success=job.only_success)
            emit(
                {
                    "event": "data",
                    "built": str(out),
                    "bags": len(bags),
                    "written": len(report.written),
                    "filtered": len(report.filtered),
                    "rejected": report.rejected,
                }
            )
        datasets.append(out)
    return [DatasetSpec(str(p), name=f"{i}_{p.name}", only_success=job.only_success) for i, p in enumerate(datasets)]


# ----------------------------------------------------------------------------------- the job


def train_config(job: PostTrainJob, datasets: list[Any]) -> Any:
    """The shared TrainConfig this job amounts to."""
    from gen0_policy.train.config import TrainConfig

    warmup = job.warmup_steps if job.warmup_steps >= 0 else min(100, job.steps // 10)
    return TrainConfig(
        out_dir=job.out_dir,
        preset=job.preset,
        model=dict(job.model),
        init_from=job.base,
        freeze=list(job.freeze),
        datasets=datasets,
        val_fraction=job.val_fraction,
        steps=job.steps,
        batch_size=job.batch_size,
        lr=job.lr,
        warmup_steps=warmup,
        seed=job.seed,
        device=job.device,
        threads=job.threads,
        val_every=job.val_every or max(1, job.steps // 5),
        val_windows=job.val_windows,
        save_every=job.save_every or job.steps,
        resume=False,
        progress=False,
    )


def _val_error(trainer: Any) -> float:
    return float(trainer.validate().get("val/next_action_mse", math.nan))


def post_train(job: PostTrainJob, emit: Emit, should_stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Run the job; every event goes to ``emit``; returns (and emits) the result event.

    Raises Gen0Error (bad data, bad checkpoint, bad config) and whatever torch raises (out of
    memory); nothing outside ``job.out_dir`` is written.
    """
    began = time.monotonic()
    emit({"event": "phase", "phase": "preparing data"})
    out = Path(job.out_dir)
    if (out / "latest").is_file():
        raise ConfigError(f"{out} already holds a training run; choose a new output folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / "job.json").write_text(json.dumps(job.to_dict(), indent=2))
    from gen0_policy.train.loop import Trainer

    config = train_config(job, prepare_data(job, emit))
    trainer = Trainer(config)
    emit(
        {
            "event": "split",
            "train_episodes": sum(len(s.episodes) for s in trainer.train_sources),
            "val_episodes": sum(len(s.episodes) for s in trainer.val_sources),
            "val_windows": len(trainer.val_windows),
            "fps": trainer.fps,
        }
    )

    def result(status: str, ckpt: Path | None, after: float, message: str) -> dict[str, Any]:
        event = {
            "event": "result",
            "status": status,
            "checkpoint_path": str(ckpt) if ckpt else "",
            "validation_error_before": before,
            "validation_error_after": after,
            "steps_completed": trainer.step,
            "duration": time.monotonic() - began,
            "message": message,
        }
        emit(event)
        return event

    before = math.nan
    if should_stop():
        return result("canceled", None, math.nan, "canceled before training started; no checkpoint written")
    emit({"event": "phase", "phase": "validating"})
    before = _val_error(trainer)
    emit({"event": "validation", "step": 0, "validation_error": before})

    emit({"event": "phase", "phase": "training"})
    total, saved = config.steps, None
    saved_step, last_val, last_val_step = -1, before, 0
    train_began = time.monotonic()
    while trainer.step < total:
        if should_stop():
            break
        stats = trainer.train_step()
        if not math.isfinite(stats["loss"]):
            raise DatasetError(
                f"training loss became {stats['loss']} at step {trainer.step}; lower the learning rate "
                "or check the data for NaN/inf"
            )
        per_step = (time.monotonic() - train_began) / trainer.step
        emit(
            {
                "event": "step",
                "step": trainer.step,
                "total_steps": total,
                "loss": stats["loss"],
                "lr": stats["lr"],
                "eta": per_step * (total - trainer.step),
            }
        )
        if trainer.step % config.val_every == 0 and trainer.step < total:
            last_val, last_val_step = _val_error(trainer), trainer.step
            emit({"event": "validation", "step": trainer.step, "validation_error": last_val})
        if trainer.step % config.save_every == 0 and trainer.step < total:
            saved = _save(trainer, emit, {"val/next_action_mse": last_val}, then="training")
            saved_step = trainer.step

    if trainer.step < total:  # stopped
        if trainer.step > max(saved_step, 0):
            after = last_val if last_val_step == trainer.step else math.nan
            saved = _save(trainer, emit, {"val/next_action_mse": after})
        note = f"canceled at step {trainer.step}/{total}; " + (
            f"last good checkpoint {saved}" if saved else "no step was trained, no checkpoint written"
        )
        return result("canceled", saved, last_val if last_val_step == trainer.step else math.nan, note)

    emit({"event": "phase", "phase": "validating"})
    after = _val_error(trainer)
    emit({"event": "validation", "step": trainer.step, "validation_error": after})
    ckpt = _save(trainer, emit, {"val/next_action_mse": after})
    return result("succeeded", ckpt, after, f"post-trained {total} steps; checkpoint {ckpt}")


def _save(trainer: Any, emit: Emit, metrics: dict[str, float], then: str = "") -> Path:
    emit({"event": "phase", "phase": "saving"})
    ckpt = trainer.save(metrics)
    emit({"event": "checkpoint", "step": trainer.step, "path": str(ckpt)})
    if then:
        emit({"event": "phase", "phase": then})
    return ckpt


def classify(exc: BaseException) -> tuple[str, str]:
    """(kind, reason) of a failure, worded for a user."""
    import torch

    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return "out_of_memory", f"out of memory ({exc}); lower batch_size or use a smaller model"
    if isinstance(exc, DatasetError):
        return "bad_data", str(exc)
    if isinstance(exc, Gen0Error):
        return type(exc).__name__, str(exc)
    return type(exc).__name__, f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------------- child process


def _json_lines(stream: Any, log: Path | None) -> Emit:
    lock = threading.Lock()
    log_file = log.open("a") if log else None

    def emit(event: dict[str, Any]) -> None:
        line = json.dumps({**event, "time": time.time()}, default=float)
        with lock:
            stream.write(line + "\n")
            stream.flush()
            if log_file:
                log_file.write(line + "\n")
                log_file.flush()

    return emit


def main(argv: list[str] | None = None) -> int:
    """``python -m gen0_policy.train.posttrain JOB.json [--watch-stdin]``: JSON lines on stdout.

    SIGINT/SIGTERM (or EOF on stdin with --watch-stdin, i.e. the parent died) stop after the
    current step and keep the last good checkpoint; a second signal exits at once.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gen0_policy.train.posttrain")
    parser.add_argument("job", type=Path, help="job JSON file (PostTrainJob fields)")
    parser.add_argument("--watch-stdin", action="store_true", help="stop when stdin closes (parent gone)")
    args = parser.parse_args(argv)
    # Only events go to the real stdout; anything else printed (libraries, warnings) goes to stderr.
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if args.watch_stdin:
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    emit = _json_lines(events, None)
    try:
        job = PostTrainJob.from_dict(json.loads(args.job.read_text()))
        emit = _json_lines(events, Path(job.out_dir) / "progress.jsonl")
        post_train(job, emit, stop.is_set)
        return 0
    except BaseException as exc:  # report every failure as one event; the parent decides what it means
        if isinstance(exc, KeyboardInterrupt):
            emit({"event": "error", "kind": "interrupted", "reason": "stopped by a second signal before saving"})
            return 130
        kind, reason = classify(exc)
        emit({"event": "error", "kind": kind, "reason": reason})
        import traceback

        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
