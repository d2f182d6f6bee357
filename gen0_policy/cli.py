"""The ``gen0`` command. Each area of the suite registers its own subcommands from its own
module (``register(subparsers)``), so this file stays a table of contents."""

from __future__ import annotations

import argparse
import importlib
import sys

from gen0_policy.errors import Gen0Error

# Modules that provide ``register(subparsers: argparse._SubParsersAction) -> None``.
COMMAND_MODULES = [
    "gen0_policy.bringup",
    "gen0_policy.ros.demo",
    "gen0_policy.doctor",
    "gen0_policy.data.cli",
    "gen0_policy.model.cli",
    "gen0_policy.sim.cli",
    "gen0_policy.sim.metaworld_bench",
    "gen0_policy.train.cli",
    "gen0_policy.train.posttrain_cli",
    "gen0_policy.scaling.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gen0",
        description="gen0-ros: train, simulate, record and run a GEN-0-style robot policy.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except Gen0Error as exc:  # our errors say what to do: one line, no traceback
        print(f"gen0 {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
