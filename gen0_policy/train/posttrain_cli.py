"""``gen0 posttrain``: the post-training action's job from the command line, for users without a
running ROS graph. Same job, same events; Ctrl-C stops after the current step and keeps the last
good checkpoint (a second Ctrl-C exits at once)."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from typing import Any

from gen0_policy.train.config import POST_TRAINING_DEFAULTS

# TrainConfig options `gen0 posttrain` exposes (argparse dest = TrainConfig field).
TRAIN_OPTIONS = (
    "steps",
    "batch_size",
    "lr",
    "freeze",
    "val_fraction",
    "seed",
    "preset",
    "save_every",
    "device",
    "threads",
)


def _printer(as_json: bool, every_s: float = 2.0):
    last = {"t": 0.0}

    def emit(event: dict[str, Any]) -> None:
        if as_json:
            print(json.dumps({**event, "time": time.time()}, default=float), flush=True)
            return
        kind = event.get("event")
        if kind == "phase":
            print(f"[{event['phase']}]", flush=True)
        elif kind == "step":
            now = time.monotonic()
            if now - last["t"] >= every_s or event["step"] == event["total_steps"]:
                last["t"] = now
                print(
                    f"  step {event['step']}/{event['total_steps']}  loss {event['loss']:.4f}  "
                    f"lr {event['lr']:.2e}  eta {event['eta']:.0f} s",
                    flush=True,
                )
        elif kind == "validation":
            print(
                f"  validation next-action error at step {event['step']}: {event['validation_error']:.4f}", flush=True
            )
        elif kind == "split":
            print(f"  {event['train_episodes']} training / {event['val_episodes']} validation episodes", flush=True)
        elif kind == "data":
            print(f"  built {event['built']} from {event['bags']} bags ({event['written']} episodes)", flush=True)
            for bag, why in event.get("rejected", {}).items():
                print(f"  rejected {bag}: {why}", flush=True)
        elif kind == "checkpoint":
            print(f"  saved {event['path']}", flush=True)
        elif kind == "result":
            before, after = event["validation_error_before"], event["validation_error_after"]
            print(event["message"], flush=True)
            if not (math.isnan(before) and math.isnan(after)):
                print(f"validation next-action error: before {before:.4f}, after {after:.4f}", flush=True)

    return emit


def _run(args: argparse.Namespace) -> int:
    from gen0_policy.train.posttrain import PostTrainJob, classify, post_train

    given = {key: getattr(args, key) for key in TRAIN_OPTIONS if getattr(args, key) is not None}
    job = PostTrainJob(
        data=args.data,
        out_dir=args.out,
        base=args.base,
        fps=args.fps,
        only_success=not args.include_failed,
        train=given,
    )
    stop = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        print("stopping after this step (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    emit = _printer(args.json)
    try:
        result = post_train(job, emit, stop.is_set)
    except Exception as exc:  # bad data, bad checkpoint, out of memory: one clear line, not a traceback
        kind, reason = classify(exc)
        if args.json:
            emit({"event": "error", "kind": kind, "reason": reason})
        print(f"post-training failed: {reason}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0 if result["status"] == "succeeded" else 130


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "posttrain",
        help="post-train a checkpoint on bags and/or datasets (the PostTrain action without ROS)",
        description="Adapt a checkpoint to new demonstrations: bags are built into a dataset inside --out, episodes "
        "are split into train/validation, and the next-action error is reported before and after.",
    )
    p.add_argument("--base", default="", help="checkpoint (or run folder) to start from; omit to train from scratch")
    p.add_argument("--data", nargs="+", required=True, help="rosbag2 episode folders and/or LeRobot v3 dataset folders")
    p.add_argument("--out", required=True, help="new run folder (checkpoints, prepared data, progress.jsonl)")
    d = POST_TRAINING_DEFAULTS
    # Left out, a TrainConfig option takes the post-training default (one place: train/config.py).
    p.add_argument("--steps", type=int, help=f"optimizer steps (default {d['steps']})")
    p.add_argument("--batch-size", type=int, help=f"samples per step (default {d['batch_size']})")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {d['lr']:g})")
    p.add_argument("--freeze", nargs="*", help="parts to keep fixed: vision language backbone expert ...")
    p.add_argument("--val-fraction", type=float, help=f"share of episodes held out (default {d['val_fraction']})")
    p.add_argument("--seed", type=int, help="seed of the split and the run (default 0)")
    p.add_argument("--preset", help="model preset when training from scratch (default small)")
    p.add_argument("--fps", type=float, default=0.0, help="control rate for bags; default: the base checkpoint's")
    p.add_argument("--save-every", type=int, help="also save every N steps (default: only at the end)")
    p.add_argument("--device", help="auto (default), cpu or cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    p.add_argument("--include-failed", action="store_true", help="also train on episodes marked failed")
    p.add_argument("--json", action="store_true", help="print progress as JSON lines")
    p.set_defaults(func=_run)
