"""The ROS closed loop without ROS and without time pressure (gen0_policy/sim/lockstep.py, what
``gen0 sim rollout --policy`` runs), with what ROS adds as switches.

With no switch it runs what ``gen0 sim rollout`` runs. Each switch adds one thing ROS does, in sim
time (``--think-s``, ``--frame-delay-s``, ``--clock-lag-s``) or changes one setting (``--runtime``
takes RuntimeConfig fields, ``--sim`` SimConfig's), so a loss through ROS can be traced to transport,
timing or neither.

    python benchmarks/lockstep_loop.py --task pick_place --seed 112 --episodes 8
    python benchmarks/lockstep_loop.py --task pick_place --runtime '{"command_horizon": 0}'

Meta-World's Sawyer steps in whole 12.5 ms steps: give the runtime and the sim its 80 Hz, or each
runtime tick runs two of them (harmonic needs ``--think-s``, and ``--trace`` has no tool positions)::

    python benchmarks/lockstep_loop.py --embodiment sawyer --checkpoint checkpoints/metaworld_mt50 \
        --task plate-slide-back-side --seed 0 --episodes 10 --timeout 6.25 --think-s 0.05 \
        --runtime '{"mode": "harmonic", "control_rate_hz": 80}' --sim '{"update_rate": 80}'

Prints one JSON object: per-seed success, time to success (sim s), chunks, and the settings; on a
grasp task also where the fingers began to close, against the object and against the plan
(``grasp``, see :func:`gen0_policy.sim.lockstep.grasp_report`).
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from gen0_policy.paths import shipped_checkpoint
from gen0_policy.sim.lockstep import Lockstep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(shipped_checkpoint()))
    parser.add_argument("--embodiment", default="panda")
    parser.add_argument("--task", default="pick_place")
    parser.add_argument("--seed", type=int, default=100, help="first seed (held-out seeds start at 100)")
    parser.add_argument("--episodes", type=int, default=8, help="episodes, seeds seed, seed + 1, ...")
    parser.add_argument("--timeout", type=float, default=10.0, help="s of sim time per episode")
    parser.add_argument("--runtime", default="{}", help="JSON of RuntimeConfig fields")
    parser.add_argument("--sim", default="{}", help="JSON of SimConfig fields (update_rate, camera_rate, ...)")
    parser.add_argument(
        "--limit-scale", type=float, default=1.0, help="scale the runtime's joint velocity and acceleration limits"
    )
    parser.add_argument(
        "--think-s", type=float, default=0.0, help="sim s that pass, the arm holding, during each inference"
    )
    parser.add_argument("--frame-delay-s", type=float, default=0.0, help="sim s from a frame's capture to its arrival")
    parser.add_argument("--clock-lag-s", type=float, default=0.0, help="the runtime clock this far behind the sim's")
    parser.add_argument("--trace", default="", help="write each episode's chunks and joint states to this JSON")
    args = parser.parse_args()
    runtime, sim = json.loads(args.runtime), json.loads(args.sim)
    if runtime.get("mode") == "harmonic" and args.think_s <= 0:
        raise SystemExit("harmonic lockstep needs --think-s: how much sim time each inference takes")
    loop = Lockstep(
        args.checkpoint,
        args.embodiment,
        args.task,
        runtime,
        sim,
        args.limit_scale,
        args.think_s,
        args.frame_delay_s,
        args.clock_lag_s,
    )
    loop.trace = {} if args.trace else None
    episodes = [loop.episode(seed, args.timeout) for seed in range(args.seed, args.seed + args.episodes)]
    if args.trace:
        with open(args.trace, "w") as f:
            json.dump(loop.trace, f)
    wins = sum(e["success"] for e in episodes)
    times = [e["seconds"] for e in episodes if e["success"]]
    print(
        json.dumps(
            {
                "task": args.task,
                "embodiment": args.embodiment,
                "checkpoint": args.checkpoint,
                "runtime": runtime,
                "sim": sim,
                "limit_scale": args.limit_scale,
                "think_s": args.think_s,
                "frame_delay_s": args.frame_delay_s,
                "clock_lag_s": args.clock_lag_s,
                "successes": wins,
                "episodes": len(episodes),
                "median_time_to_success_s": float(np.median(times)) if times else math.nan,
                "per_seed": episodes,
            }
        )
    )


if __name__ == "__main__":
    main()
