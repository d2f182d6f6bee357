"""Post-training: adapt a checkpoint to new demonstrations (recorded bags and/or built datasets).

One job = prepare data (bags are built into a LeRobot v3 dataset inside the run folder), then the
one training loop (:meth:`~gen0_policy.train.loop.Trainer.run`) on the job's TrainConfig: split
episodes into train/validation, measure the base checkpoint's next-action error, train, save,
measure again. Progress is the loop's stream of plain dict events (JSON lines when run as
``python -m gen0_policy.train.posttrain JOB.json``), so the ROS node and the CLI show the same
thing and the node can run the job in a child process it can cancel or kill without ever touching
the running policy.

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

from gen0_policy.errors import ConfigError, DatasetError, Gen0Error, check_keys
from gen0_policy.train.progress import Emit, json_lines

PHASES = ("preparing data", "validating", "training", "saving", "loading into policy")


@dataclass
class PostTrainJob:
    """What to post-train (the fields of gen0_msgs/action/PostTrain's goal): the data, the run
    folder, the checkpoint to start from, and overrides of the one TrainConfig, on top of
    :data:`~gen0_policy.train.config.POST_TRAINING_DEFAULTS`."""

    data: list[str]  # rosbag2 episode folders (or folders of them) and/or LeRobot v3 dataset folders
    out_dir: str  # the run folder: prepared data, checkpoints (ckpt-*, latest), job.json, progress.jsonl
    base: str = ""  # checkpoint (or run folder) to start from; "" trains train["preset"] from scratch
    fps: float = 0.0  # control rate for building bags; 0 = the base checkpoint's (or the datasets') rate
    only_success: bool = True  # train on successful demonstrations only
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides: steps, lr, freeze, ...

    def __post_init__(self) -> None:
        self.data = [str(p) for p in self.data]
        self.train = dict(self.train)
        if not self.data:
            raise ConfigError("post-training needs data: give one or more bag or dataset folders")
        if not self.out_dir:
            raise ConfigError("post-training needs an output folder (out_dir)")
        owned = sorted({"out_dir", "init_from", "datasets"} & set(self.train))
        if owned:
            raise ConfigError(
                f"the job sets {owned} itself (out_dir, base, data); remove them from its train overrides"
            )
        if self.base and self.train.get("model"):
            raise ConfigError("model overrides apply only when training from scratch (no base checkpoint)")
        self.config()  # every override checked now, before any data is touched

    def config(self, datasets: list[Any] | None = None) -> Any:
        """The TrainConfig this job amounts to (with the prepared ``datasets``)."""
        from gen0_policy.train.config import post_training_config

        return post_training_config(**self.train, out_dir=self.out_dir, init_from=self.base, datasets=datasets or [])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PostTrainJob:
        check_keys(data, {f.name for f in fields(cls)}, "post-training job")
        return cls(**data)


# ----------------------------------------------------------------------------------- data


def _base_fps(base: str) -> float:
    from gen0_policy.model.checkpoint import read_json, resolve

    return float(read_json(resolve(base) / "config.json").get("fps", 0.0) or 0.0)


def prepare_data(job: PostTrainJob, emit: Emit) -> list[Any]:
    """Dataset folders are used in place; bags are built once into ``<out_dir>/data/bags``.

    Returns the DatasetSpecs for the Trainer. Raises DatasetError naming the first unusable path.
    """
    from gen0_policy.data.bags import BuildConfig, find_bags
    from gen0_policy.data.build import build_dataset
    from gen0_policy.data.lerobot import LeRobotDataset, is_dataset
    from gen0_policy.train.config import DatasetSpec

    datasets: list[Path] = []
    bag_inputs: list[Path] = []
    for raw in job.data:
        path = Path(raw).expanduser()
        if not path.exists():
            raise DatasetError(f"no such bag or dataset folder: {path}")
        if is_dataset(path):
            datasets.append(path)
        else:
            bag_inputs.append(path)  # find_bags says clearly if it is neither
    bags = find_bags(bag_inputs) if bag_inputs else []
    fps = job.fps or (_base_fps(job.base) if job.base else 0.0)
    if not fps and datasets:
        fps = float(LeRobotDataset(datasets[0]).fps)
    if bags:
        out = Path(job.out_dir) / "data" / "bags"
        if is_dataset(out):
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


def post_train(job: PostTrainJob, emit: Emit, should_stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Run the job with the shared training loop; every event goes to ``emit``; returns (and emits)
    the result event.

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

    config = job.config(prepare_data(job, emit))
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
    validations: list[dict[str, Any]] = []
    checkpoints: list[str] = []

    def follow(event: dict[str, Any]) -> None:
        if event["event"] == "validation":
            validations.append(event)
        elif event["event"] == "checkpoint":
            checkpoints.append(event["path"])
        emit(event)

    trainer.run(follow, should_stop)
    before = next((v["validation_error"] for v in validations if v["step"] == 0), math.nan)
    after = validations[-1]["validation_error"] if validations and validations[-1]["step"] == trainer.step else math.nan
    ckpt = checkpoints[-1] if checkpoints else ""
    if trainer.step == config.steps:
        status, message = "succeeded", f"post-trained {config.steps} steps; checkpoint {ckpt}"
    else:
        status = "canceled"
        message = f"canceled at step {trainer.step}/{config.steps}; " + (
            f"last good checkpoint {ckpt}" if ckpt else "no step was trained, no checkpoint written"
        )
    event = {
        "event": "result",
        "status": status,
        "checkpoint_path": ckpt,
        "validation_error_before": before,
        "validation_error_after": after,
        "steps_completed": trainer.step,
        "duration": time.monotonic() - began,
        "message": message,
    }
    emit(event)
    return event


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
    emit = json_lines(events, None)
    try:
        job = PostTrainJob.from_dict(json.loads(args.job.read_text()))
        emit = json_lines(events, Path(job.out_dir) / "progress.jsonl")
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
