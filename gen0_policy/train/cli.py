"""``gen0 train --config config/train/X.yaml key=value ...``: pretraining and post-training.

Distributed: ``torchrun --nproc_per_node N -m gen0_policy.cli train --config ... strategy=ddp``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path


def _train(args: argparse.Namespace) -> int:
    from gen0_policy.train.config import load_train_config
    from gen0_policy.train.loop import train
    from gen0_policy.train.progress import json_lines

    config = load_train_config(args.config, args.overrides)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    # Ctrl-C (SIGINT) or SIGTERM asks the loop to stop before its next step; it saves what it trained.
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        # The same progress.jsonl as `gen0 posttrain` writes: a run can be followed (or plotted) as it goes.
        emit = json_lines(None, Path(config.out_dir) / "progress.jsonl") if os.environ.get("RANK", "0") == "0" else None
        metrics = train(config, should_stop=stop.is_set, on_event=emit)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if os.environ.get("RANK", "0") == "0":
        if stop.is_set():
            print(f"interrupted: saved the steps trained so far in {config.out_dir}; run the same command to resume",
                  file=sys.stderr)  # fmt: skip
        print(json.dumps({"out_dir": config.out_dir, "interrupted": stop.is_set(), **metrics}))
    return 130 if stop.is_set() else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train or post-train a policy from a config file",
        description="Train (or resume, or post-train with init_from=CKPT) a gen0 policy. "
        "Overrides are key=value with dotted keys, e.g. steps=2000 model.width=256 datasets.0.weight=2.",
    )
    parser.add_argument("--config", default=None, help="train config YAML (see config/train/)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    parser.set_defaults(func=_train)
