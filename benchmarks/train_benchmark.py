"""Training throughput and chunk inference latency on this machine, beside LeRobot ACT.

ACT runs in this very run when ``--act-python`` names a Python with LeRobot 0.4.4 (``bash
benchmarks/act_venv.sh`` makes one in about 2 min): LeRobot's defaults (51.6 M parameters, one
96x96 camera, 100-action chunks, fp32) in a worker process (``act_reference.py``) asked for one
timed call between our own repeats, so both see the same machine at the same time. Without it the
figures recorded on the project's first 2-core machine stand in (0.87 training steps/s at batch 8,
39 ms per chunk), and the JSON says so: a recorded figure from another CPU is not a comparison.
Our aim at equal parameter count (preset act_equal, 51.9 M): >= 2x the training throughput and <= a
quarter of the chunk latency with a chunk within TOLERANCE of fp32's.

Training: a full optimizer step (forward, backward, clipping, AdamW) on a batch of 8, at the
precision the trainer picks here (bf16 autocast on CPUs with AMX/AVX512-BF16) and in fp32.
Latency: ``Gen0Policy.infer`` end to end (resize, normalize, encode once, flow_steps Euler steps
of the expert, unnormalize) with a half-full committed prefix, for each precision and inference
engine (torch; the ONNX export on ONNX Runtime or OpenVINO), interleaved, with a short pause before
each call: a policy asks for a chunk every few hundred ms, not back to back, and the pause lets the
previous runtime's threads go idle instead of spinning beside the next one. Every figure is a median
over repeats, with the best repeat beside it.

    .venv/bin/python benchmarks/train_benchmark.py [--quick] [--presets test,small,act_equal] [--act-python PY]
    python benchmarks/train_benchmark.py --device cuda --presets small,act_equal,1b --batch 64   # a GPU

On a GPU (``--device cuda``) the same figures are taken with the torch engine alone (bf16 where the
GPU has it, and fp32), each timing ended by a device synchronize.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gen0_policy.embodiment import CameraSpec, Embodiment, JointSpec
from gen0_policy.model.config import preset
from gen0_policy.model.counting import dummy_batch, parameter_counts
from gen0_policy.model.modeling import Gen0Model
from gen0_policy.model.policy import Gen0Policy, bf16_fast
from gen0_policy.model.processor import JointStats, Processor

# Largest chunk difference from torch fp32 (normalized action units) that still counts as the same
# output: 1 % of an action's range, well inside what training reaches (val next-action error ~0.05).
TOLERANCE = 0.01
ACT_EQUAL_VARIANTS = [
    ("fp32", "torch"),
    ("auto", "torch"),  # bf16 where the CPU has AMX/AVX512-BF16
    ("int8", "torch"),
    ("fp32", "onnxruntime"),
    ("int8", "onnxruntime"),
    ("fp32", "openvino"),
    ("bf16", "openvino"),  # the encoder in bf16, the flow in fp32 (model/engines.py)
]
# Recorded on the project's first 2-core machine (no AMX): used only when ACT cannot run beside us.
ACT_RECORDED = {"parameters": 51.6e6, "train_steps_per_s": 0.87, "batch": 8, "chunk_latency_ms": 39.0, "chunk": 100}
PAUSE_S = 0.05  # before each timed inference call (see the module docstring)


class ActNeighbour:
    """LeRobot ACT in its own Python (``act_reference.py``), timed one call at a time on request."""

    def __init__(self, python: str) -> None:
        script = Path(__file__).with_name("act_reference.py")
        self.process = subprocess.Popen(
            [python, "-W", "ignore", str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        ready = json.loads(self.process.stdout.readline() or "{}")
        if not ready.get("ready"):
            self.close()
            raise SystemExit(f"ACT worker {python} {script} did not start (see its error above)")
        self.parameters = int(ready["parameters"])
        self.torch = ready["torch"]

    def time_ms(self, command: str) -> float:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline() or "{}")
        if "ms" not in reply:
            raise RuntimeError(f"ACT worker: {reply or 'no answer'}")
        return float(reply["ms"])

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def robot(dof: int = 7) -> Embodiment:
    joints = tuple(JointSpec(f"j{i}", -3.0, 3.0, 2.0, 50.0, 0.0) for i in range(dof))
    return Embodiment("bench", "benchmark arm", joints, (CameraSpec("scene", "scene", 96, 96),), ())


def cpu_figures(value: float, name: str) -> dict:
    """With one thread, process CPU time is the time the work itself took, whatever else runs on
    the shared machine (with more threads it also counts their spin-waits, so it is left out)."""
    return {f"single_thread_cpu_time_{name}": round(value, 2)} if torch.get_num_threads() == 1 else {}


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a wall-clock time covers it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_speed(
    name: str, bf16: bool, batch: int, warmup: int, repeats: int, device: torch.device, act: ActNeighbour | None = None
) -> tuple[dict, list[float]]:
    """Our training step's figures, and ACT's step times (ms) taken between our repeats when ``act``."""
    config = preset(name, language_encoder="hash")
    torch.manual_seed(0)
    model = Gen0Model(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    data = dummy_batch(config, batch, device)
    data["noise"] = torch.randn_like(data["noise"])
    data["flow_t"] = torch.rand(batch, device=device)
    data["images"] = torch.randint(0, 255, data["images"].shape, dtype=torch.uint8, device=device)
    times, cpu, act_ms = [], [], []
    for i in range(warmup + repeats):
        synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        with torch.autocast(device.type, torch.bfloat16) if bf16 else nullcontext():
            loss = model(data)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        if act is not None:
            act_ms.append(act.time_ms(f"train {batch}"))
    median = statistics.median(times)
    return {
        "precision": "bf16" if bf16 else "fp32",
        "batch": batch,
        "steps_per_s": round(1 / median, 3),
        "samples_per_s": round(batch / median, 2),
        "best_samples_per_s": round(batch / min(times), 2),
        **cpu_figures(batch / statistics.median(cpu), "samples_per_s"),
    }, act_ms[warmup:]


def latencies(
    name: str,
    variants: list[tuple[str, str]],
    warmup: int,
    repeats: int,
    device: torch.device,
    act: ActNeighbour | None = None,
) -> tuple[list[dict], list[float]]:
    """Chunk latency of one model under each (precision, engine), the variants (and ACT, when
    ``act``) interleaved repeat by repeat (a busy neighbour slows all alike), with each chunk's largest
    difference from torch fp32's in normalized action units (the chunk's scale is the action scale)."""
    config, arm, policy = bench_policies(name, device)
    reference = policy("fp32", "torch")
    policies = [policy(precision, engine) for precision, engine in variants]
    obs, committed = bench_observation(config, arm)
    expected = reference.infer(obs, committed=committed)["actions"]
    scale = reference.processor.action_scale("bench")
    times: list[list[float]] = [[] for _ in policies]
    cpu: list[list[float]] = [[] for _ in policies]
    errors = [0.0] * len(policies)
    act_ms: list[float] = []
    for i in range(warmup + repeats):
        for k, p in enumerate(policies):
            time.sleep(PAUSE_S)
            synchronize(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            out = p.infer(obs, committed=committed)  # returns numpy: the chunk is on the host
            if i >= warmup:
                times[k].append(time.perf_counter() - start)
                cpu[k].append(time.process_time() - start_cpu)
            errors[k] = max(errors[k], float(np.abs((out["actions"] - expected) / scale).max()))
        if act is not None:
            time.sleep(PAUSE_S)
            act_ms.append(act.time_ms("chunk"))
    assert out["actions"].shape == (config.chunk_size, arm.dof)
    return [
        {
            "engine": engine,
            "precision": p.inference_precision,
            "chunk": config.chunk_size,
            "latency_ms": round(1e3 * statistics.median(times[k]), 2),
            "best_latency_ms": round(1e3 * min(times[k]), 2),
            **cpu_figures(1e3 * statistics.median(cpu[k]), "latency_ms"),
            "max_error_vs_fp32": round(errors[k], 5),
        }
        for k, ((precision, engine), p) in enumerate(zip(variants, policies, strict=True))
    ], act_ms[warmup:]


def bench_policies(name: str, device: torch.device) -> tuple[Any, Embodiment, Callable[[str, str], Gen0Policy]]:
    """The timed model (preset ``name``, seeded weights with a non-trivial output layer) and a maker of
    policies from those same fp32 weights at a (precision, engine)."""
    config = preset(name, language_encoder="hash")
    torch.manual_seed(0)
    model = Gen0Model(config)
    torch.nn.init.normal_(model.action_out.weight, std=0.02)  # a non-trivial output layer
    arm = robot()
    stats = {"bench": JointStats(*(np.zeros(arm.dof), np.ones(arm.dof)) * 2)}
    state = copy.deepcopy(model.state_dict())

    def policy(precision: str, engine: str) -> Gen0Policy:
        fresh = Gen0Model(config)
        fresh.load_state_dict(state)  # every variant starts from the same fp32 weights
        processor = Processor(config, [arm], stats)
        return Gen0Policy(fresh, processor, {"fps": 20.0}, device=device, precision=precision, engine=engine)

    return config, arm, policy


def bench_observation(config, arm: Embodiment) -> tuple[dict, np.ndarray]:
    """The timed call's input: one 96x96 camera, an instruction, and a half-full committed prefix."""
    rng = np.random.default_rng(0)
    obs = {
        "embodiment": "bench",
        "instruction": "pick up the cube",
        "joint_positions": rng.uniform(-1, 1, arm.dof),
        "images": {"scene": rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)},
    }
    return obs, rng.uniform(-1, 1, (config.max_prefix // 2, arm.dof))


def act_figures(chunk_ms: list[float], train_ms: list[float], batch: int, act: ActNeighbour) -> dict:
    return {
        "measured_in_this_run": True,
        "lerobot": "0.4.4",
        "torch": act.torch,
        "parameters": act.parameters,
        "chunk": 100,
        "chunk_latency_ms": round(statistics.median(chunk_ms), 2),
        "best_chunk_latency_ms": round(min(chunk_ms), 2),
        "batch": batch,
        "train_steps_per_s": round(1e3 / statistics.median(train_ms), 3),
        "train_samples_per_s": round(batch * 1e3 / statistics.median(train_ms), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="test,small,medium,act_equal")
    parser.add_argument("--quick", action="store_true", help="few repeats (a rough figure in ~1-2 min)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (cuda:N) to measure a GPU")
    parser.add_argument("--batch", type=int, default=8, help="training batch (8: ACT's, as ACT was measured)")
    parser.add_argument(
        "--act-python", default="", help="a Python with LeRobot 0.4.4 (benchmarks/act_venv.sh): ACT runs beside us"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    warmup, repeats = (2, 5) if args.quick else (3, 20)
    bf16 = bf16_fast(device)
    # The ONNX Runtime and OpenVINO engines (and int8) are CPU engines; a GPU runs torch.
    act_variants = ACT_EQUAL_VARIANTS if device.type == "cpu" else [("fp32", "torch"), ("auto", "torch")]
    act = ActNeighbour(args.act_python) if args.act_python and device.type == "cpu" else None
    reference = {**ACT_RECORDED, "measured_in_this_run": False}
    reference["train_samples_per_s"] = round(ACT_RECORDED["train_steps_per_s"] * ACT_RECORDED["batch"], 2)
    result: dict = {
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "bf16_fast": bf16,
            "load_average_at_start": os.getloadavg(),
            "torch": torch.__version__,
        },
        "act_reference": reference,
        "presets": {},
    }
    try:
        for name in args.presets.split(","):
            config = preset(name)
            entry = {
                "parameters": parameter_counts(Gen0Model(config))["total"],
                "image_size": config.image_size,
                "cameras": config.max_cameras,
                "chunk": config.chunk_size,
                "flow_steps": config.flow_steps,
            }
            if name != "act_equal":
                entry["train"] = [train_speed(name, bf16, args.batch, warmup, repeats, device)[0]]
                entry["inference"] = latencies(name, [("auto", "torch")], warmup, repeats, device)[0]
            else:  # every precision and engine, ACT between our repeats when it runs here
                train, act_train_ms = train_speed(name, bf16, args.batch, warmup, repeats, device, act)
                entry["train"] = [train]
                if bf16:
                    entry["train"].append(train_speed(name, False, args.batch, warmup, max(3, repeats // 2), device)[0])
                entry["inference"], act_chunk_ms = latencies(name, act_variants, warmup, repeats, device, act)
                if act is not None:
                    result["act_reference"] = act_figures(act_chunk_ms, act_train_ms, args.batch, act)
            result["presets"][name] = entry
    finally:
        if act is not None:
            act.close()
    reference = result["act_reference"]
    if "act_equal" in result["presets"] and device.type == "cpu" and args.batch == reference["batch"]:
        ours = result["presets"]["act_equal"]
        samples = ours["train"][0]["samples_per_s"]
        close = [e for e in ours["inference"] if e["max_error_vs_fp32"] <= TOLERANCE]
        best = min(close, key=lambda e: e["latency_ms"])
        ms, act_ms = best["latency_ms"], reference["chunk_latency_ms"]
        result["vs_act_at_equal_parameters"] = {
            "act_measured_in_this_run": reference["measured_in_this_run"],
            "parameters_ratio": round(ours["parameters"] / reference["parameters"], 3),
            "train_throughput_ratio": round(samples / reference["train_samples_per_s"], 2),
            "chunk_latency_ratio": round(ms / act_ms, 2),
            "aim_throughput_2x_met": samples >= 2 * reference["train_samples_per_s"],
            "fastest_within_tolerance": f"{best['engine']} {best['precision']}",
            "tolerance_vs_fp32": TOLERANCE,
            "aim_latency_half_met": ms <= act_ms / 2,
            "aim_latency_quarter_met": ms <= act_ms / 4,
        }
    result["machine"]["load_average_at_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
