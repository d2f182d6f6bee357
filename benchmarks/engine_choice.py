"""Which inference engine the policy node should default to: the shipped checkpoints on every engine,
timed as the node runs them (its thread budget, all cores but one; the robot's own camera sizes; a
half-full committed prefix; a pause before each call, as chunks come), interleaved repeat by repeat.

Each row: median and 90th-percentile latency of ``Gen0Policy.infer`` and the largest difference of
its chunk from torch fp32's, in units of the robot's action scale. ``engine: auto`` (the node's
default, ``model/engines.py``) is chosen from these figures.

    .venv/bin/python benchmarks/engine_choice.py > docs/results/engine_choice.json

Prints one JSON object. Nothing else should run meanwhile: every figure is a median of repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch

from gen0_policy.embodiment import load_embodiment
from gen0_policy.model.engines import resolve_engine
from gen0_policy.model.policy import Gen0Policy
from gen0_policy.runtime.rate import inference_threads

PAUSE_S = 0.05  # train_benchmark.PAUSE_S
VARIANTS = [("fp32", "torch"), ("auto", "torch"), ("fp32", "onnxruntime"), ("fp32", "openvino"), ("bf16", "openvino")]
CHECKPOINTS = {"checkpoints/multitask_cpu": ["panda", "ur5e", "g1"], "checkpoints/metaworld_mt50": ["sawyer"]}


def observation(robot: str, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    embodiment = load_embodiment(robot)
    obs = {
        "embodiment": robot,
        "instruction": "pick up the red cube",
        "joint_positions": embodiment.home.copy(),
        "images": {c.name: rng.integers(0, 255, (c.height, c.width, 3), dtype=np.uint8) for c in embodiment.cameras},
    }
    return obs, np.repeat(embodiment.home[None].astype(np.float32), 2, axis=0)


def measure(checkpoint: str, robots: list[str], threads: int, warmup: int, repeats: int) -> list[dict]:
    policies = [Gen0Policy.load(checkpoint, precision=p, engine=e, threads=threads) for p, e in VARIANTS]
    reference = policies[0]
    rng = np.random.default_rng(0)
    rows = []
    for robot in robots:
        obs, committed = observation(robot, rng)
        expected = reference.infer(obs, committed=committed)["actions"]
        scale = reference.processor.action_scale(robot)
        times: list[list[float]] = [[] for _ in policies]
        errors = [0.0] * len(policies)
        for i in range(warmup + repeats):
            for k, policy in enumerate(policies):
                time.sleep(PAUSE_S)
                start = time.perf_counter()
                out = policy.infer(obs, committed=committed)
                if i >= warmup:
                    times[k].append(time.perf_counter() - start)
                errors[k] = max(errors[k], float(np.abs((out["actions"] - expected) / scale).max()))
        for k, ((precision, engine), policy) in enumerate(zip(VARIANTS, policies, strict=True)):
            rows.append(
                {
                    "checkpoint": checkpoint,
                    "robot": robot,
                    "engine": engine,
                    "precision": precision,
                    "runs": policy.inference_precision,
                    "latency_ms": round(1e3 * statistics.median(times[k]), 2),
                    "p90_latency_ms": round(1e3 * float(np.percentile(times[k], 90)), 2),
                    "max_error_vs_fp32": round(errors[k], 5),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: the node's, all cores but one)")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    threads = inference_threads(args.threads)
    torch.set_num_threads(threads)  # as the runtime does (rate.configure_threads)
    rows = []
    for checkpoint, robots in CHECKPOINTS.items():
        rows += measure(checkpoint, robots, threads, args.warmup, args.repeats)
    report = {
        "benchmark": "engine_choice",
        "command": "python benchmarks/engine_choice.py",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "threads": threads,
        "pause_s": PAUSE_S,
        "auto_engine_on_cpu": resolve_engine("auto", "cpu", "auto"),
        "rows": rows,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
