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
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from gen0_msgs.action import RunTask
from gen0_msgs.msg import PolicyStatus
from gen0_msgs.srv import ResetTask
from gen0_policy.bringup import node_command, start_node, stop_nodes
from gen0_policy.paths import config_dir
from gen0_policy.ros.action_client import ThreadSafeActionClient

OUTCOMES = {
    getattr(RunTask.Goal, name): name.removeprefix("OUTCOME_").lower()
    for name in dir(RunTask.Goal)
    if name.startswith("OUTCOME_")
}


class Client:
    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node("closed_loop_benchmark", context=self.context)
        self.status: PolicyStatus | None = None
        self.episode_statuses: list[PolicyStatus] = []  # every status during the running episode
        self.node.create_subscription(PolicyStatus, "/gen0_policy/status", self._on_status, 10)
        self.reset = self.node.create_client(ResetTask, "/gen0_sim/reset")
        self.run_task = ThreadSafeActionClient(self.node, RunTask, "/gen0_policy/run_task")
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _on_status(self, msg: PolicyStatus) -> None:
        self.status = msg
        self.episode_statuses.append(msg)

    def wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")

    def episode(self, task: str, seed: int, timeout: float) -> dict[str, Any]:
        future = self.reset.call_async(ResetTask.Request(task=task, seed=seed))
        reply = self.wait(lambda: future.done() and future.result(), 60, "sim reset")
        if not reply.success:
            raise RuntimeError(f"sim reset failed: {reply.message}")
        time.sleep(0.5)  # let task status and cameras of the new episode arrive
        self.episode_statuses = []
        goal = self.run_task.send_goal_async(RunTask.Goal(instruction=reply.instruction, timeout=timeout))
        handle = self.wait(lambda: goal.done() and goal.result(), 30, "goal acceptance")
        result_future = handle.get_result_async()
        result = self.wait(lambda: result_future.done() and result_future.result(), timeout + 60, "task result").result
        outcome, duration = OUTCOMES[result.outcome], round(result.duration, 3)
        episode = {"task": task, "seed": seed, "outcome": outcome, "duration": duration}
        return episode | runtime_stats(self.episode_statuses, result.duration)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def training_camera_size(checkpoint: str, embodiment: str) -> tuple[int, int] | None:
    """(width, height) the checkpoint's training images of ``embodiment`` were rendered at, if recorded.

    The sim renders at that size, as the data was: a 640x480 render shrunk to 64x64 by the policy is
    smoother than a 64x64 render, and small targets look different to a policy trained on the latter."""
    meta = json.loads((Path(checkpoint) / "config.json").read_text())
    sizes = list(meta.get("camera_sizes", {}).get(embodiment, {}).values())
    return (int(sizes[0][0]), int(sizes[0][1])) if sizes else None


def start_nodes(args: argparse.Namespace, mode: str, log_dir: Path) -> list[subprocess.Popen]:
    config = config_dir()
    sim_params: dict[str, object] = {"embodiment": args.embodiment, "task": args.tasks.split(",")[0]}
    camera_size = training_camera_size(args.checkpoint, args.embodiment) if args.training_camera_size else None
    if camera_size is not None:
        sim_params["camera_width"], sim_params["camera_height"] = camera_size
    sim = node_command("gen0_policy.ros.sim_node", config / "sim_node.yaml", sim_params)
    policy = node_command(
        "gen0_policy.ros.policy_node",
        config / "policy_node.yaml",
        {
            "embodiment": args.embodiment,
            "checkpoint": str(Path(args.checkpoint).resolve()),
            "use_sim_time": True,
            "autostart": True,
            "mode": mode,
            "replan_period": args.replan_period,
            "realtime_priority": args.realtime,
            # The embodiment's cameras are larger than the training-size renders the sim sends here.
            "check_image_size": camera_size is None,
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
    parser.add_argument("--episodes", type=int, default=5, help="seeds per task and mode")
    parser.add_argument("--timeout", type=float, default=30.0, help="RunTask timeout per episode, s (sim time)")
    parser.add_argument("--modes", default="harmonic,synchronous")
    parser.add_argument("--replan-period", type=float, default=0.0, help="harmonic: s between inference starts")
    parser.add_argument("--realtime", type=int, default=0, help="SCHED_FIFO priority of the policy's control thread")
    parser.add_argument(
        "--native-camera-size",
        dest="training_camera_size",
        action="store_false",
        help="render at the embodiment's camera size instead of the checkpoint's training image size",
    )
    parser.add_argument("--log-dir", default="", help="where the nodes' logs go (default: a temp folder)")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    log_dir = Path(args.log_dir or f"/tmp/gen0_closed_loop_{os.getpid()}")
    log_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"benchmark": "closed_loop_benchmark", "settings": vars(args), "log_dir": str(log_dir)}
    client = Client()
    try:
        for mode in args.modes.split(","):
            procs = start_nodes(args, mode, log_dir)
            try:
                client.status = None
                status = client.wait(
                    lambda: (
                        client.status
                        if client.status is not None
                        and client.status.state in (PolicyStatus.STATE_RUNNING, PolicyStatus.STATE_FAULT)
                        else None
                    ),
                    180,
                    f"the {mode} policy to run (logs in {log_dir})",
                )
                if status.state == PolicyStatus.STATE_FAULT:
                    raise RuntimeError(f"the {mode} policy cannot run: {status.reason}")
                assert client.reset.wait_for_service(timeout_sec=30) and client.run_task.wait_for_server(30)
                episodes = [
                    client.episode(task, seed, args.timeout)
                    for task in args.tasks.split(",")
                    for seed in range(args.episodes)
                ]
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
