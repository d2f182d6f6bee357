"""Does a reach stop on its target, or pass through it? ``gen0 sim rollout`` ends a reach the moment
the hand comes within the task's tolerance (3 cm), so a hand that sweeps past the target at speed and
comes to rest 5 cm away counts as a success. This runs the same rollout controller (the checkpoint,
synchronous, 12 of 16 chunk steps, the safety filter) with the success check switched off for
``--seconds`` of sim time and reports, per held-out seed, when the hand first came within the
tolerance, how close it came, how much of the time it stayed within it, and where it ended.

    python benchmarks/reach_settle.py --embodiments g1 --seeds 5
    python benchmarks/reach_settle.py --out docs/results/reach_settle.json   # every robot, seeds 100-119

A success that is a pass (``touched`` but not ``ends_within``) is the kind a few tens of ms of
execution timing can flip, which is what makes a rollout and the ROS closed loop disagree on it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from gen0_policy.embodiment import load_embodiment
from gen0_policy.paths import shipped_checkpoint
from gen0_policy.sim.env import SimEnv
from gen0_policy.sim.ik import DifferentialIK
from gen0_policy.sim.policies import CheckpointController
from gen0_policy.sim.rollout import RolloutConfig, run_episode


def settle(env: SimEnv, controller: CheckpointController, seed: int, seconds: float) -> dict:
    distances_m: list[float] = []
    times_s: list[float] = []
    closest: dict = {"distance_m": np.inf}
    # Where the commanded joints would put the hand: a miss the commands share is the network's,
    # one they do not is the arm's tracking.
    kinematics = DifferentialIK(env.model, env.embodiment, env.task.layout.tcp_sites[-1], [])

    def measure(env: SimEnv) -> None:
        target = env.task.targets["target"]
        offset = env.task.tcp(env.data) - target
        distances_m.append(float(np.linalg.norm(offset)))
        times_s.append(env.time)
        if distances_m[-1] < closest["distance_m"]:
            commanded = kinematics.forward(env.targets)[0] - target
            closest.update(distance_m=distances_m[-1], offset_m=offset, commanded_offset_m=commanded)

    run_episode(env, controller, seed, RolloutConfig(max_duration=seconds, stop_at_success=False), measure)
    tolerance = env.task.tolerance
    within = [t for t, d in zip(times_s, distances_m, strict=True) if d < tolerance]
    first_s = round(within[0], 2) if within else None
    d = np.asarray(distances_m)
    return {
        "seed": seed,
        "target_m": np.round(env.task.targets["target"], 4).tolist(),
        "offset_at_closest_m": np.round(closest["offset_m"], 4).tolist(),  # hand - target (x, y, z)
        "commanded_offset_at_closest_m": np.round(closest["commanded_offset_m"], 4).tolist(),
        "touched": first_s is not None,  # what the rollout counts as a success
        "first_within_s": first_s,
        "closest_m": round(float(d.min()), 4),
        "time_within_fraction": round(float((d < tolerance).mean()), 3),
        "final_m": round(float(d[-1]), 4),
        "ends_within": bool(d[-1] < tolerance),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(shipped_checkpoint()))
    parser.add_argument("--embodiments", default="panda,ur5e,g1", help="comma-separated")
    parser.add_argument("--seed", type=int, default=100, help="first seed (100+: held out from training data)")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=3.0, help="sim s per episode (the reach's own limit)")
    parser.add_argument("--out", default="", help="also write the JSON here")
    args = parser.parse_args(argv)
    controller = CheckpointController(args.checkpoint)
    result: dict = {
        "benchmark": "reach_settle",
        "command": " ".join(["python benchmarks/reach_settle.py", *(sys.argv[1:] if argv is None else argv)]),
        "settings": vars(args),
        "checkpoint_id": controller.policy.meta.get("checkpoint_id"),
        "robots": {},
    }
    for name in args.embodiments.split(","):
        env = SimEnv(load_embodiment(name), "reach")
        try:
            seeds = range(args.seed, args.seed + args.seeds)
            episodes = [settle(env, controller, s, args.seconds) for s in seeds]
        finally:
            env.close()
        result["robots"][name] = {
            "touched": sum(e["touched"] for e in episodes),
            "ends_within": sum(e["ends_within"] for e in episodes),
            "median_final_m": round(statistics.median(e["final_m"] for e in episodes), 4),
            "median_closest_m": round(statistics.median(e["closest_m"] for e in episodes), 4),
            "episodes": episodes,
        }
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
