"""What bounds the chunk latency of ``act_equal`` on this CPU: the machine's own figures beside the
engine's, so "a quarter of ACT's latency" can be checked against what the hardware allows.

- Memory: read bandwidth (a bf16 sum over 128 MB, torch, 1 and 2 threads) and matrix-product peaks
  (2048x2048, bf16 and fp32).
- The backbone's 36 weight matrices (``act_equal``: 9 layers of width 640, 88 MB in bf16), chained
  in OpenVINO bf16 exactly as the encoder runs them, for one token and for the backbone's own token
  count, timed three ways: back to back, after a 50 ms sleep (the train benchmark's pause, as a
  policy asks for a chunk every few hundred ms), and after 50 ms with both cores kept busy.
- ``Gen0Policy.infer`` with the shipped engine (OpenVINO bf16 encoder, ONNX Runtime fp32 flow) after
  the same sleep, split into the encoder, the flow and the rest (resize, normalize, unnormalize).

    .venv/bin/python benchmarks/latency_floor.py > docs/results/latency_floor_epyc.json

Back to back, part of the 88 MB can stay in the 32 MB L3 and the cores stay awake; after the pause
the matrices stream slower, which is what a policy meets. On this VM, keeping both cores busy
through the pause recovered that in some runs and not in others (the L3 is shared with other tenants).

Prints one JSON object. Nothing else should run meanwhile: every figure is a median of repeats.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from gen0_policy.model.config import preset

PAUSE_S = 0.05  # train_benchmark.PAUSE_S


def median_ms(fn: Callable[[], object], repeats: int, before: Callable[[], None]) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1e3 * statistics.median(times), 3)


def memory_and_peaks(repeats: int) -> dict:
    out: dict[str, float] = {}
    x = torch.ones(64 * 2**20, dtype=torch.bfloat16)  # 128 MB, far beyond the 32 MB L3
    for threads in (1, 2):
        torch.set_num_threads(threads)
        ms = median_ms(x.sum, repeats, lambda: None)
        out[f"read_GBps_{threads}_threads"] = round(x.numel() * 2 / ms / 1e6, 1)
    for dtype in (torch.bfloat16, torch.float32):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        ms = median_ms(lambda a=a, b=b: a @ b, repeats, lambda: None)
        out[f"matmul_GFLOPS_{str(dtype).split('.')[1]}"] = round(2 * 2048**3 / ms / 1e6)
    return out


def _spin(flag, stop) -> None:
    while not stop.is_set():
        if not flag.is_set():
            time.sleep(0.0005)


class Pauses:
    """The three ways to wait before a timed call: none, asleep, and with both cores busy."""

    def __init__(self) -> None:
        self.flag, self.stop = mp.Event(), mp.Event()
        self.helper = mp.Process(target=_spin, args=(self.flag, self.stop), daemon=True)
        self.helper.start()

    def none(self) -> None:
        pass

    def sleep(self) -> None:
        time.sleep(PAUSE_S)

    def busy(self) -> None:
        self.flag.set()
        start = time.perf_counter()
        while time.perf_counter() - start < PAUSE_S:
            pass
        self.flag.clear()

    def close(self) -> None:
        self.stop.set()
        self.helper.join(5)


def backbone_chain(tokens: int, width: int, layers: int):
    """The backbone's weight matrices in the order a layer uses them (qkv, out, up, down), one
    compiled OpenVINO bf16 model; attention and norms left out: they are not where the time goes."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([tokens, width], np.float32, name="x")
    h = x

    def dense(h, n_in: int, n_out: int):
        return ops.matmul(h, ops.constant((0.02 * rng.standard_normal((n_in, n_out))).astype(np.float32)), False, False)

    for _ in range(layers):
        qkv = dense(h, width, 3 * width)
        h = ops.slice(qkv, np.array([0, 0]), np.array([tokens, width]), np.array([1, 1]))
        h = dense(dense(dense(h, width, width), width, 4 * width), 4 * width, width)
    compiled = ov.Core().compile_model(
        ov.Model([h], [x]), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16"}
    )
    request = compiled.create_infer_request()
    feed = {0: np.ones((tokens, width), np.float32)}
    megabytes = layers * 12 * width * width * 2 / 1e6
    return (lambda: request.infer(feed)), megabytes


def policy_parts(pauses: Pauses, repeats: int) -> dict:
    """The shipped engine's call after the pause, split where its time goes."""
    from train_benchmark import bench_observation, bench_policies

    config, arm, make_policy = bench_policies("act_equal", torch.device("cpu"))
    reference, policy = make_policy("fp32", "torch"), make_policy("bf16", "openvino")
    obs, committed = bench_observation(config, arm)
    sampler = policy._sample
    parts: dict[str, list[float]] = {"encoder": [], "flow": [], "call": []}

    def timed(name: str, fn: Callable) -> Callable:
        def wrapper(*args):
            start = time.perf_counter()
            result = fn(*args)
            parts[name].append(time.perf_counter() - start)
            return result

        return wrapper

    encode_infer = sampler.encode.infer
    sampler.encode = type("Timed", (), {"infer": staticmethod(timed("encoder", encode_infer)),
                                        "get_output_tensor": sampler.encode.get_output_tensor})()  # fmt: skip
    sampler.flow = timed("flow", sampler.flow)
    call = timed("call", lambda: policy.infer(obs, committed=committed))
    for i in range(repeats + 5):
        pauses.sleep()
        out = call()
        if i < 5:
            for values in parts.values():
                values.clear()
    result = {name: round(1e3 * statistics.median(values), 3) for name, values in parts.items()}
    result["rest"] = round(result["call"] - result["encoder"] - result["flow"], 3)
    expected = reference.infer(obs, committed=committed)["actions"]
    scale = reference.processor.action_scale("bench")
    result["max_error_vs_fp32"] = round(float(np.abs((out["actions"] - expected) / scale).max()), 5)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    config = preset("act_equal", language_encoder="hash")
    tokens = config.observation_tokens
    result: dict = {
        "command": "python benchmarks/latency_floor.py",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": mp.cpu_count()},
        "pause_s": PAUSE_S,
        "memory": memory_and_peaks(args.repeats),
    }
    torch.set_num_threads(mp.cpu_count())
    pauses = Pauses()
    try:
        for n in (1, tokens):
            run, megabytes = backbone_chain(n, config.width, config.backbone_layers)
            figures = {"weights_MB": round(megabytes, 1)}
            for name in ("none", "sleep", "busy"):
                ms = median_ms(run, args.repeats, getattr(pauses, name))
                figures[f"ms_after_{name}"] = ms
                figures[f"GBps_after_{name}"] = round(megabytes / ms, 1)
            result[f"backbone_matrices_{n}_tokens"] = figures
        result["policy_openvino_bf16_after_sleep_ms"] = policy_parts(pauses, args.repeats)
    finally:
        pauses.close()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
