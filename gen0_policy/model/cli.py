"""``gen0 model info``: parameter and FLOP counts of a preset (or a checkpoint), never allocating."""

from __future__ import annotations

import argparse
import json


def _info(args: argparse.Namespace) -> int:
    from gen0_policy.model.config import PRESETS, preset
    from gen0_policy.model.counting import describe

    if args.checkpoint:
        from gen0_policy.model.checkpoint import load_policy

        files = load_policy(args.checkpoint)
        info = {
            "checkpoint": str(files.path),
            "checkpoint_id": files.meta.get("checkpoint_id"),
            **describe(files.config),
        }
        info["embodiments"] = [e.name for e in files.embodiments]
    else:
        names = list(PRESETS) if args.preset == "all" else [args.preset]
        infos = {name: describe(preset(name)) for name in names}
        info = infos if args.preset == "all" else {"preset": args.preset, **infos[args.preset]}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    rows = info.items() if args.preset == "all" and not args.checkpoint else [(args.preset or "checkpoint", info)]
    for name, item in rows:
        flops = item["flops"]
        print(
            f"{name:<10} {item['parameters']['total'] / 1e6:>10.2f} M params   "
            f"{flops['train_per_sample'] / 1e9:>10.2f} GFLOP/train sample   "
            f"{flops['inference_per_chunk'] / 1e9:>9.2f} GFLOP/chunk"
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    """Copy only what inference needs (no optimizer/EMA state): the folder to commit or ship."""
    import shutil
    from pathlib import Path

    from gen0_policy.model.checkpoint import POLICY_FILES, load_policy

    files = load_policy(args.checkpoint)  # verifies hashes before anything is copied
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(f"{out} exists and is not empty; choose a new folder")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    for name in (*POLICY_FILES, "manifest.json"):
        shutil.copy2(files.path / name, out / name)
    load_policy(out)
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(json.dumps({"checkpoint_id": files.meta.get("checkpoint_id"), "out": str(out), "size_mb": round(size, 2)}))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="inspect policy model presets and checkpoints")
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION")
    info = sub.add_parser("info", help="parameter and FLOP counts (meta device: nothing is allocated)")
    info.add_argument(
        "--preset", default="small", help="preset name (test, small, medium, act_equal, 1b, 7b, 10b) or all"
    )
    info.add_argument("--checkpoint", default="", help="describe this checkpoint folder instead of a preset")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(action_func=_info)
    export = sub.add_parser("export", help="copy a checkpoint's inference files (no training state) to a folder")
    export.add_argument("--checkpoint", required=True, help="checkpoint folder or training run folder (its latest)")
    export.add_argument("--out", required=True, help="new folder for the exported checkpoint")
    export.set_defaults(action_func=_export)

    def dispatch(args: argparse.Namespace) -> int:
        if getattr(args, "action_func", None) is None:
            parser.print_help()
            return 2
        return args.action_func(args)

    parser.set_defaults(func=dispatch)
