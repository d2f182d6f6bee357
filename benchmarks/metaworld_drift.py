"""Where a Meta-World checkpoint goes wrong: its actions against the scripted expert's, asked at the same
observations, once along the expert's own path (the states its training data shows) and once along
the policy's own path (the states it visits when it acts).

A network that matches the expert on the expert's path and not on its own has drifted somewhere its
data never showed it (covariate shift); the fix is data off the expert's path (demonstrations with
recoveries), not more of the same. Meta-World's experts are functions of the current privileged state,
so "what the expert would do here" is defined at every state the policy reaches.

    python benchmarks/metaworld_drift.py --checkpoint runs/metaworld_mt50_30 \\
        --tasks reach,plate-slide,handle-pull,button-press,drawer-open,pick-place --seeds 0,1,2 \\
        --out docs/results/metaworld_drift_mt50_30.json

Prints JSON: per task and path, the mean distance between the two xyz displacements (action units,
0.01 m per step each) over the episode's steps, how often the gripper efforts disagree in sign
where the expert opens or closes (|effort| >= 0.5; None for tasks whose expert never does), and per
episode where the hand ended relative to the task's goal (m, x y z).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")


def episode(env: Any, policy: Any, expert: Any, seed: int, drive: str) -> dict[str, Any]:
    """One episode driven by ``drive`` ("expert" or "policy"), both asked at every step."""
    policy.reset(env)
    expert.reset(env)
    obs = env.reset(seed, images=True)
    xyz_gap, grip_flip = [], []
    success = False
    while env.steps < env.max_steps:
        mine = np.clip(policy.act(obs), -1.0, 1.0)
        theirs = expert.act(obs)
        xyz_gap.append(float(np.linalg.norm(mine[:3] - theirs[:3])))
        if abs(theirs[3]) >= 0.5:  # the expert opens or closes (reach and the buttons keep it at 0)
            grip_flip.append(bool(np.sign(mine[3]) != np.sign(theirs[3])))
        obs, success = env.step(theirs if drive == "expert" else mine, images=policy.wants_images())
        if success:
            break
    return {
        "seed": seed,
        "success": success,
        "steps": env.steps,
        # where the hand ended, minus the task's goal (Meta-World's last three state entries): for the
        # reach tasks the goal is the hand's, so this says which axis the policy misses by how much
        "hand_minus_goal_m": np.round(obs["joint_positions"][:3] - obs["env_state"][-3:], 3).tolist(),
        "goal_m": np.round(obs["env_state"][-3:], 3).tolist(),
        "xyz_gap": round(float(np.mean(xyz_gap)), 4),
        "gripper_disagrees": round(float(np.mean(grip_flip)), 4) if grip_flip else None,
    }


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(float(np.mean(known)), 4) if known else None


def main() -> int:
    from gen0_policy.sim.metaworld_env import ChunkController, MetaWorldEnv, MetaWorldExpert

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--tasks", default="reach,plate-slide,handle-pull,button-press,drawer-open,pick-place")
    parser.add_argument("--seeds", default="0,1,2", help="the benchmark's own seeds by default")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    policy, expert = ChunkController(args.checkpoint), MetaWorldExpert()
    seeds = [int(s) for s in args.seeds.split(",")]
    tasks: dict[str, Any] = {}
    for task in args.tasks.split(","):
        with MetaWorldEnv(task) as env:
            runs = {drive: [episode(env, policy, expert, s, drive) for s in seeds] for drive in ("expert", "policy")}
        tasks[task] = {
            drive: {
                "xyz_gap": round(float(np.mean([r["xyz_gap"] for r in rs])), 4),
                "gripper_disagrees": _mean([r["gripper_disagrees"] for r in rs]),
                "successes": sum(r["success"] for r in rs),
                "episodes": rs,
            }
            for drive, rs in runs.items()
        }
        print(task, {d: (v["xyz_gap"], v["successes"]) for d, v in tasks[task].items()}, file=sys.stderr, flush=True)
    mean = {d: round(float(np.mean([t[d]["xyz_gap"] for t in tasks.values()])), 4) for d in ("expert", "policy")}
    report = {
        "checkpoint": args.checkpoint,
        "policy_id": policy.policy.checkpoint_id,
        "seeds": seeds,
        "command": "python benchmarks/metaworld_drift.py " + " ".join(sys.argv[1:]),
        "mean_xyz_gap": mean,
        "tasks": tasks,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
