"""End-to-end training throughput from an on-disk LeRobot v3 dataset, and the data path's share of it.

Training speed limits every study on this machine (issue 14), so this measures the real thing: the
one training loop (gen0_policy.train.loop.Trainer) built from a dataset folder as `gen0 train` builds
it (video decoding and windowing at start-up), then ``steps`` real optimizer steps. Reported:

- start-up: reading and decoding the dataset and building the trainer, s;
- per step: the whole ``train_step`` (sampling windows, building the batch, forward, backward,
  AdamW, EMA), and the batch building alone, timed on the same steps; their ratio is the loader's
  share (aim: under 10 %);
- samples/s end to end, and over a run of ``run_steps`` steps with the start-up included, beside
  LeRobot ACT's end-to-end 5.8 samples/s measured on this machine (issue 14; 51.6 M parameters,
  batch 8, one 96x96 camera). Aim: >= 5x ACT at equal size (preset act_equal, 51.9 M).

Timing on a shared 2-core machine is noise: run it with nothing else running.

    .venv/bin/python benchmarks/loader_benchmark.py --data data/scaling/downstream --embodiment panda
    .venv/bin/python benchmarks/loader_benchmark.py --data data/metaworld/mt10 --embodiment sawyer --preset small
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

from gen0_policy.train.config import TrainConfig
from gen0_policy.train.loop import Trainer

ACT_END_TO_END_SAMPLES_PER_S = 5.8  # LeRobot ACT on this machine (issue 14)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a LeRobot v3 dataset folder")
    parser.add_argument("--embodiment", required=True)
    parser.add_argument("--preset", default="act_equal")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after 3 warm-up steps)")
    parser.add_argument("--run-steps", type=int, default=5000, help="a run's length, to amortize the start-up")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gen0-loader-bench-") as out:
        config = TrainConfig(
            out_dir=out,
            preset=args.preset,
            datasets=[{"path": args.data, "embodiment": args.embodiment}],
            batch_size=args.batch,
            steps=args.steps + 3,
            val_fraction=0.0,
            threads=args.threads,
            progress=False,
        )
        start = time.perf_counter()
        trainer = Trainer(config)
        startup_s = time.perf_counter() - start
        step_s, batch_s = [], []
        for i in range(args.steps + 3):
            t0 = time.perf_counter()
            trainer.batch(trainer.step)  # the data path alone, on the step's own windows
            t1 = time.perf_counter()
            trainer.train_step()  # the whole step, data path included
            t2 = time.perf_counter()
            if i >= 3:
                batch_s.append(t1 - t0)
                step_s.append(t2 - t1)
    step, batch = statistics.median(step_s), statistics.median(batch_s)
    samples = args.batch / step
    run_samples = args.run_steps * args.batch / (startup_s + args.run_steps * step)
    frames = sum(len(e.states) for s in trainer.train_sources for e in s.episodes)
    print(
        json.dumps(
            {
                "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                            "load_average_at_start": os.getloadavg()},
                "data": {"path": args.data, "embodiment": args.embodiment, "frames": frames},
                "preset": args.preset,
                "parameters": sum(p.numel() for p in trainer.module.parameters()),
                "precision": "bf16" if trainer.bf16 else "fp32",
                "batch": args.batch,
                "startup_s": round(startup_s, 2),
                "step_ms": round(step * 1e3, 1),
                "batch_build_ms": round(batch * 1e3, 2),
                "loader_share": round(batch / step, 4),
                "samples_per_s": round(samples, 2),
                f"samples_per_s_over_{args.run_steps}_steps_with_startup": round(run_samples, 2),
                "act_end_to_end_samples_per_s": ACT_END_TO_END_SAMPLES_PER_S,
                "x_act": round(samples / ACT_END_TO_END_SAMPLES_PER_S, 2),
                "aims": {"loader_share_below": 0.10, "x_act_at_least": 5.0},
            },
            indent=2,
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
