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

    from gen0_policy.model.checkpoint import OPTIONAL_FILES, POLICY_FILES, load_policy

    files = load_policy(args.checkpoint)  # verifies hashes before anything is copied
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(f"{out} exists and is not empty; choose a new folder")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    optional = [n for n in OPTIONAL_FILES if (files.path / n).is_file()]
    for name in (*POLICY_FILES, *optional, "manifest.json"):
        shutil.copy2(files.path / name, out / name)
    load_policy(out)
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(json.dumps({"checkpoint_id": files.meta.get("checkpoint_id"), "out": str(out), "size_mb": round(size, 2)}))
    return 0


def _novelty(args: argparse.Namespace) -> int:
    """Image feature statistics of the training frames into the checkpoint (the image_novelty signal)."""
    from gen0_policy.model.checkpoint import FORMAT, add_optional_file
    from gen0_policy.model.novelty import FILE
    from gen0_policy.model.policy import Gen0Policy
    from gen0_policy.train.sources import image_novelty

    policy = Gen0Policy.load(args.checkpoint, precision="fp32")
    paths = args.data or [d["path"] for d in policy.meta.get("train_config", {}).get("datasets", [])]
    if not paths:
        print(f"{args.checkpoint} does not name its training datasets ({FORMAT} config.json); pass --data")
        return 1
    novelty = image_novelty(policy, paths, args.max_episodes, args.every)
    checkpoint_id = add_optional_file(args.checkpoint, FILE, novelty.to_dict())
    frames = {key: stats.frames for key, stats in novelty.cameras.items()}
    print(json.dumps({"checkpoint_id": checkpoint_id, "datasets": paths, "frames": frames}))
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
    novelty = sub.add_parser(
        "novelty", help="add image feature statistics of the training data (the image_novelty uncertainty signal)"
    )
    novelty.add_argument("--checkpoint", required=True, help="checkpoint folder (it is updated in place)")
    novelty.add_argument("--data", nargs="*", default=[], help="datasets (default: the ones it was trained on)")
    novelty.add_argument("--max-episodes", type=int, default=40, help="episodes per dataset, spread over it")
    novelty.add_argument("--every", type=int, default=4, help="use every N-th frame")
    novelty.set_defaults(action_func=_novelty)

    def dispatch(args: argparse.Namespace) -> int:
        if getattr(args, "action_func", None) is None:
            parser.print_help()
            return 2
        return args.action_func(args)

    parser.set_defaults(func=dispatch)
