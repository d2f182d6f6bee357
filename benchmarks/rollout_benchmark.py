"""Closed-loop success of a checkpoint, measured the way a user runs it: the documented command
``gen0 sim rollout --embodiment E --task T --policy CKPT --episodes N --seed 100 --json`` (the robot's
own cameras, held-out seeds), run as a separate process per task: through the policy node's runtime
in sim time, as that command does by default (``--executor direct`` for the servo-level controller
earlier results used). Prints one JSON object (and writes it with --out); tasks already in --out are
skipped, so a long run can be stopped and started again.

    .venv/bin/python benchmarks/rollout_benchmark.py --policy checkpoints/multitask_cpu \\
        --out docs/results/multitask_cpu_rollouts.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from gen0_policy.model.checkpoint import resolve
from gen0_policy.sim.cli import EXECUTORS

# (embodiment, task, episodes): 20 per task, as the README's table and issue 11 ask
DEFAULT = (
    [("panda", t, 20) for t in ("reach", "press_button", "open_drawer", "push", "pick_place", "stack")]
    + [("ur5e", t, 20) for t in ("reach", "press_button", "push")]
    + [("g1", t, 20) for t in ("reach", "press_button", "press_buttons")]
)
GEN0 = str(Path(sys.executable).with_name("gen0"))


def rollout(policy: str, embodiment: str, task: str, episodes: int, seed: int, executor: str) -> dict:
    cmd = [GEN0, "sim", "rollout", "--embodiment", embodiment, "--task", task, "--policy", policy]
    cmd += ["--episodes", str(episodes), "--seed", str(seed), "--executor", executor, "--json"]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    result = json.loads(out.stdout)
    keep = ("successes", "episodes", "episode_seconds")
    return {k: result[k] for k in keep} | {"wall_s": round(time.perf_counter() - started, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", required=True, help="checkpoint folder")
    p.add_argument("--seed", type=int, default=100, help="first seed (100+: held out from every training set)")
    p.add_argument("--only", default="", help="comma-separated embodiment/task keys to run (default: all)")
    p.add_argument("--executor", default="runtime", choices=EXECUTORS, help="gen0 sim rollout --executor")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write and resume from")
    args = p.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    text = args.out.read_text() if args.out and args.out.exists() else ""
    try:
        data = json.loads(text) if text.strip() else {}  # an empty file (a failed run's redirect): start anew
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{args.out} is not this benchmark's JSON ({exc}): use another --out") from None
    if data and data.get("policy") not in (None, args.policy):
        raise SystemExit(f"{args.out} holds results for {data.get('policy')}, not {args.policy}: use another --out")
    if data and data.get("executor", "direct") != args.executor:
        raise SystemExit(f"{args.out} holds results of executor {data.get('executor', 'direct')}: use another --out")
    config = resolve(args.policy) / "config.json"  # a run folder resolves to its latest checkpoint
    data.update(
        {
            "benchmark": "rollout",
            "command": "gen0 sim rollout --embodiment E --task T --policy CKPT --episodes N --seed SEED "
            f"--executor {args.executor} --json",
            "executor": args.executor,
            "policy": args.policy,
            "checkpoint_id": json.loads(config.read_text()).get("checkpoint_id"),
            "seed": args.seed,
            "camera": "the embodiments' own (320x240)",
        }
    )
    results = data.setdefault("results", {})
    only = set(filter(None, args.only.split(",")))
    for embodiment, task, episodes in DEFAULT:
        key = f"{embodiment}/{task}"
        if (only and key not in only) or key in results:
            continue
        results[key] = rollout(args.policy, embodiment, task, episodes, args.seed, args.executor)
        print(f"{key}: {results[key]['successes']}/{episodes}", file=sys.stderr, flush=True)
        if args.out:
            args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
