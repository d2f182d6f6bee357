"""``gen0 train --config config/train/X.yaml key=value ...``: pretraining and post-training.

Distributed: ``torchrun --nproc_per_node N -m gen0_policy.cli train --config ... strategy=ddp``.
"""

from __future__ import annotations

import argparse
import json
import os


def _train(args: argparse.Namespace) -> int:
    from gen0_policy.train.config import load_train_config
    from gen0_policy.train.loop import train

    config = load_train_config(args.config, args.overrides)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    metrics = train(config)
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps({"out_dir": config.out_dir, **metrics}))
    return 0


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
