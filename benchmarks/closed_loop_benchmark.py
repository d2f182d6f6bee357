"""Closed loop through ROS, harmonic versus synchronous: the MuJoCo sim node and the policy node run
as separate processes (as `gen0 bringup sim` starts them); for every task and seed this script resets
the sim (gen0_msgs/ResetTask) and sends the policy a RunTask goal with the episode's instruction.
Prints JSON: success rate and time to success per task and mode.

    .venv/bin/python benchmarks/closed_loop_benchmark.py --checkpoint runs/panda/latest --episodes 10
    .venv/bin/python benchmarks/closed_loop_benchmark.py --checkpoint CKPT --tasks reach --episodes 2 --timeout 10
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from gen0_msgs.msg import PolicyStatus
from gen0_policy.bringup import node_command, start_node, stop_nodes
from gen0_policy.paths import config_dir
from gen0_policy.ros.task_client import TaskClient


def start_nodes(args: argparse.Namespace, mode: str, log_dir: Path) -> list[subprocess.Popen]:
    config = config_dir()
    sim_params: dict[str, object] = {"embodiment": args.embodiment, "task": args.tasks.split(",")[0]}
    if args.camera_size:  # another camera than the embodiment's own (the policy node accepts any size then)
        sim_params["camera_width"], sim_params["camera_height"] = (int(v) for v in args.camera_size.split("x"))
    sim_params.update(json.loads(args.sim_params))  # e.g. {"real_time_factor": 0.25}: the world 4x slower
    sim = node_command("gen0_policy.ros.sim_node", config / "sim_node.yaml", sim_params)
    policy = node_command(
        "gen0_policy.ros.policy_node",
        config / "policy_node.yaml",
        {
            "embodiment": args.embodiment,
            "checkpoint": str(Path(args.checkpoint).resolve()),
            "use_sim_time": True,
            "autostart": True,
            "act_on_activate": False,  # no motion before the first episode's goal
            "mode": mode,
            "replan_period": args.replan_period,
            "realtime_priority": args.realtime,
            "check_image_size": not args.camera_size,
            **json.loads(args.policy_params),
        },
    )
    return [start_node(command, log_dir / f"{mode}-{name}.log") for name, command in (("sim", sim), ("policy", policy))]


def runtime_stats(statuses: list[PolicyStatus], duration: float) -> dict[str, Any]:
    """What the policy node reported during one episode: how long it thought, how old its inputs were,
    how often a new chunk arrived, and how much of the time it held instead of acting."""
    if not statuses:
        return {}
    latency = np.array([s.inference_latency for s in statuses])
    age = np.array([s.observation_age for s in statuses])
    chunks = int(statuses[-1].chunk_count) - int(statuses[0].chunk_count)
    return {
        "inference_latency_mean_s": round(float(latency.mean()), 4),
        "observation_age_mean_s": round(float(age.mean()), 4),
        "observation_age_p95_s": round(float(np.percentile(age, 95)), 4),
        "control_rate_mean_hz": round(float(np.mean([s.control_rate for s in statuses])), 1),
        "chunks_per_s": round(chunks / duration, 2) if duration > 0 else None,
        "holding_fraction": round(float(np.mean([s.state != PolicyStatus.STATE_RUNNING for s in statuses])), 3),
    }


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    successes = [e["duration"] for e in episodes if e["outcome"] == "succeeded"]
    outcomes: dict[str, int] = {}
    for e in episodes:
        outcomes[e["outcome"]] = outcomes.get(e["outcome"], 0) + 1
    return {
        "episodes": len(episodes),
        "success_rate": round(len(successes) / len(episodes), 3) if episodes else 0.0,
        "time_to_success_mean_s": round(float(np.mean(successes)), 3) if successes else None,
        "time_to_success_median_s": round(float(np.median(successes)), 3) if successes else None,
        "outcomes": outcomes,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="trained checkpoint folder")
    parser.add_argument("--embodiment", default="panda")
    parser.add_argument("--tasks", default="reach,push,pick_place,stack,open_drawer,press_button")
    parser.add_argument("--episodes", type=int, default=20, help="seeds per task and mode")
    parser.add_argument("--timeout", type=float, default=30.0, help="RunTask timeout per episode, s (sim time)")
    parser.add_argument("--modes", default="harmonic,synchronous")
    parser.add_argument("--replan-period", type=float, default=0.0, help="harmonic: s between inference starts")
    parser.add_argument("--realtime", type=int, default=0, help="SCHED_FIFO priority of the policy's control thread")
    parser.add_argument("--seed", type=int, default=100, help="first seed (100+: held out from training data)")
    parser.add_argument("--camera-size", default="", help="WxH of the simulated cameras (default: the robot's own)")
    parser.add_argument("--policy-params", default="{}", help="JSON of further policy node parameters")
    parser.add_argument("--sim-params", default="{}", help="JSON of further sim node parameters")
    parser.add_argument("--log-dir", default="", help="where the nodes' logs go (default: a temp folder)")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    log_dir = Path(args.log_dir or f"/tmp/gen0_closed_loop_{os.getpid()}")
    log_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"benchmark": "closed_loop_benchmark", "settings": vars(args), "log_dir": str(log_dir)}
    client = TaskClient("closed_loop_benchmark")
    try:
        for mode in args.modes.split(","):
            procs = start_nodes(args, mode, log_dir)
            try:
                client.status = None
                client.wait_until_ready(180)
                episodes = []
                for task in args.tasks.split(","):
                    for seed in range(args.seed, args.seed + args.episodes):
                        try:
                            episode = client.episode(task, seed, args.timeout)
                        except TimeoutError:  # a stalled node: its threads' stacks go to its log first,
                            for _ in range(3):  # three times a second apart: a thread stuck in one place
                                for proc in procs:  # shows the same frame each time, a busy one moves
                                    os.kill(proc.pid, signal.SIGUSR1)
                                time.sleep(1.0)
                            raise
                        episodes.append(episode | runtime_stats(client.episode_statuses, episode["duration"]))
            finally:
                stop_nodes(procs)
            per_task = {t: summarize([e for e in episodes if e["task"] == t]) for t in args.tasks.split(",")}
            results[mode] = {"overall": summarize(episodes), "tasks": per_task, "episodes": episodes}
    finally:
        client.close()
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
