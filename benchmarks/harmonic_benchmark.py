"""Harmonic versus synchronous execution of the same policy, in one run, printing JSON.

A simulated robot tracks every command perfectly and publishes its joint state (100 Hz) and camera
images (30 Hz) into the runtime; the policy is the real gen0 network (untrained weights at a preset
whose chunk inference takes >= 50 ms here, or a checkpoint). Measured per mode:
- action-stream period p50/p99/max and the p99 of |period - nominal| (ms),
- the longest gap between two commands (ms and in periods),
- reaction latency: from an image's stamp to the first command computed from an observation that
  contains it (or a newer one), p50/p99/max (ms),
- inference latency p50/p99 (ms).
Aims (harmonic): longest gap <= 2 periods, p99 period error <= 3 ms.

    .venv/bin/python benchmarks/harmonic_benchmark.py --duration 60
    .venv/bin/python benchmarks/harmonic_benchmark.py --duration 5 --preset test   # quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import threading
import time
from typing import Any

import numpy as np

from gen0_policy.embodiment import Embodiment, load_embodiment
from gen0_policy.runtime import Command, GoalPolicy, Runtime, RuntimeConfig
from gen0_policy.runtime.rate import set_nice, set_realtime
from gen0_policy.runtime.trajectory import Chunk


def build_policy(args: argparse.Namespace, embodiment: Embodiment):
    """The real network: a checkpoint if given, else untrained weights at ``--preset``."""
    if args.policy == "goal":
        goal = (embodiment.lower + embodiment.upper) / 2
        return GoalPolicy(goal=goal, speed=0.3, chunk_size=16, step_dt=0.1, max_prefix=6, delay_s=0.06)
    import torch

    from gen0_policy.model.config import preset
    from gen0_policy.model.modeling import Gen0Model
    from gen0_policy.model.policy import Gen0Policy
    from gen0_policy.model.processor import JointStats, Processor

    if args.checkpoint:
        return Gen0Policy.load(args.checkpoint, device="cpu")
    torch.manual_seed(args.seed)
    config = preset(args.preset, language_encoder=args.language)
    # Unit action scale around the robot's mid-range: an untrained net then wanders inside the limits.
    middle = ((embodiment.lower + embodiment.upper) / 2).astype(np.float32)
    scale = np.full(embodiment.dof, 0.2, np.float32)
    stats = {embodiment.name: JointStats(middle, scale, middle, scale)}
    processor = Processor(config, [embodiment], stats)
    meta = {"fps": args.chunk_fps, "checkpoint_id": f"untrained-{args.preset}", "seed": args.seed}
    return Gen0Policy(Gen0Model(config), processor, meta, device="cpu", precision="fp32")


class Robot:
    """Perfect position tracking plus sensors: joint states at ``joint_hz``, images at ``camera_hz``."""

    def __init__(
        self,
        runtime: Runtime,
        embodiment: Embodiment,
        joint_hz: float,
        camera_hz: float,
        seed: int,
        priority: int,
        nice: int,
    ):
        self.runtime = runtime
        self.priority, self.nice = priority, nice
        self.position = (embodiment.lower + embodiment.upper) / 2
        rng = np.random.default_rng(seed)
        self.frames = {
            c.name: [rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for _ in range(8)]
            for c in embodiment.cameras
        }
        self.image_stamps: list[float] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(1 / joint_hz, self._joints), daemon=True),
            threading.Thread(target=self._loop, args=(1 / camera_hz, self._cameras), daemon=True),
        ]

    def start(self) -> None:
        self._joints()
        self._cameras()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _loop(self, period: float, fn) -> None:
        # The simulated drivers share the runtime's GIL (real ones live in other processes): a driver
        # thread preempted while holding the GIL would stall the control thread, so it gets the
        # worker's priority too.
        set_nice(self.nice)
        set_realtime(self.priority)
        deadline = time.monotonic()
        while not self._stop.is_set():
            deadline += period
            time.sleep(max(0.0, deadline - time.monotonic()))
            fn()

    def _joints(self) -> None:
        self.runtime.perception.put_joints(self.position)

    def _cameras(self) -> None:
        stamp = self.runtime.clock.now()
        index = len(self.image_stamps) % 8
        for name, frames in self.frames.items():
            self.runtime.perception.put_image(name, frames[index], stamp=stamp)
        self.image_stamps.append(stamp)


def percentiles(values: np.ndarray, scale: float = 1e3) -> dict[str, float]:
    if len(values) == 0:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan}
    return {
        "p50": round(float(np.percentile(values, 50)) * scale, 3),
        "p99": round(float(np.percentile(values, 99)) * scale, 3),
        "max": round(float(np.max(values)) * scale, 3),
    }


def run_mode(mode: str, policy, embodiment: Embodiment, args: argparse.Namespace) -> dict[str, Any]:
    commands: list[Command] = []
    chunks: list[Chunk] = []
    config = RuntimeConfig(
        mode=mode,
        control_rate_hz=args.rate,
        max_observation_age=1.0,
        num_samples=args.num_samples,
        inference_threads=args.threads,
        worker_timeout=5.0,
        sync_execute_fraction=args.sync_fraction,
        realtime_priority=args.realtime,
        worker_realtime_priority=args.worker_realtime,
        worker_nice=args.worker_nice,
        worker_duty_cycle=args.worker_duty_cycle,
    )
    runtime = Runtime(policy, embodiment, config, on_chunk=chunks.append)
    robot = Robot(runtime, embodiment, 100.0, args.camera_hz, args.seed, args.worker_realtime, args.worker_nice)

    def on_command(command: Command) -> None:
        commands.append(command)
        robot.position = command.positions

    runtime.on_command = on_command
    runtime.set_instruction("pick up the cube")
    robot.start()
    runtime.start()
    time.sleep(args.warmup)
    begin = len(commands)
    time.sleep(args.duration)
    runtime.stop()
    robot.stop()
    measured = commands[begin:]
    times = np.array([c.t for c in measured])
    periods = np.diff(times)
    nominal = 1.0 / args.rate
    stamps = np.array([c.observation_stamp for c in measured])
    # Reaction: for each image in the window, the first command computed from it (or a newer one).
    reactions = []
    valid = np.where(np.isfinite(stamps), stamps, -np.inf)
    newest_so_far = np.maximum.accumulate(valid)
    for stamp in robot.image_stamps:
        if stamp < times[0] or stamp > times[-1]:
            continue
        index = np.searchsorted(newest_so_far, stamp)  # newest_so_far is non-decreasing
        if index < len(times):
            reactions.append(times[index] - stamp)
    window_chunks = [c for c in chunks if c.t0 >= times[0]]
    latencies = np.array([c.inference_latency for c in window_chunks])
    gap = float(periods.max()) if len(periods) else math.nan
    return {
        "commands": len(measured),
        "measured_s": round(float(times[-1] - times[0]), 3),
        "rate_hz": round(len(periods) / float(times[-1] - times[0]), 3),
        "period_ms": percentiles(periods),
        "period_error_p99_ms": round(float(np.percentile(np.abs(periods - nominal), 99)) * 1e3, 3),
        "longest_gap_ms": round(gap * 1e3, 3),
        "longest_gap_periods": round(gap / nominal, 3),
        "reaction_latency_ms": percentiles(np.array(reactions)),
        "inference_latency_ms": percentiles(latencies),
        "chunks": len(window_chunks),
        "committed_prefix_mean": round(float(np.mean([c.committed for c in window_chunks])), 2) if window_chunks else 0,
        "holding_fraction": round(float(np.mean([c.holding for c in measured])), 4),
        "within_limits": bool(all(embodiment.within_limits(c.positions) for c in measured)),
        "final_status": runtime.status().to_dict(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds per mode")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per mode before measuring")
    parser.add_argument("--rate", type=float, default=100.0, help="action-stream rate, Hz")
    parser.add_argument("--embodiment", default="panda")
    parser.add_argument("--policy", choices=("model", "goal"), default="model", help="goal: no torch, 60 ms sleep")
    parser.add_argument("--preset", default="medium", help="model size preset for untrained weights")
    parser.add_argument("--checkpoint", default="", help="a checkpoint folder instead of untrained weights")
    parser.add_argument("--language", default="hash", help="language encoder of the untrained model")
    parser.add_argument("--chunk-fps", type=float, default=10.0, help="chunk steps per second (step_dt = 1/fps)")
    parser.add_argument("--num-samples", type=int, default=1, help="samples per inference (>= 2: uncertainty)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: all cores but one")
    parser.add_argument("--realtime", type=int, default=50, help="SCHED_FIFO priority of the control thread (0: off)")
    parser.add_argument(
        "--worker-realtime", type=int, default=10, help="SCHED_FIFO priority of the inference and sensor threads"
    )
    parser.add_argument("--worker-nice", type=int, default=0, help="nice value of the inference and sensor threads")
    parser.add_argument(
        "--worker-duty-cycle", type=float, default=0.85, help="fraction of time the worker computes (RT throttling)"
    )
    parser.add_argument("--sync-fraction", type=float, default=1.0, help="synchronous: part of each chunk acted")
    parser.add_argument("--camera-hz", type=float, default=30.0)
    parser.add_argument("--modes", default="harmonic,synchronous")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    embodiment = load_embodiment(args.embodiment)
    policy = build_policy(args, embodiment)
    results: dict[str, Any] = {
        "benchmark": "harmonic_benchmark",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "settings": {k: v for k, v in vars(args).items()},
        "policy": {
            "checkpoint_id": policy.checkpoint_id,
            "chunk_size": policy.chunk_size,
            "step_dt": policy.step_dt,
            "max_prefix": policy.max_prefix,
        },
    }
    for mode in args.modes.split(","):
        results[mode] = run_mode(mode, policy, embodiment, args)
    if "harmonic" in results:
        h = results["harmonic"]
        results["aims"] = {
            "longest_gap_le_2_periods": h["longest_gap_periods"] <= 2.0,
            "p99_period_error_le_3ms": h["period_error_p99_ms"] <= 3.0,
            "inference_p50_ge_50ms": h["inference_latency_ms"]["p50"] >= 50.0,
        }
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
