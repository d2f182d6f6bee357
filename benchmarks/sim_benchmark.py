"""Simulation benchmark: physics steps/s and rendered frames/s per embodiment, and scripted-expert
success per task and embodiment over N seeds (target >= 90%). Prints one JSON object.

    MUJOCO_GL=egl .venv/bin/python benchmarks/sim_benchmark.py --seeds 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco

from gen0_policy.sim import available_tasks, make_env
from gen0_policy.sim.experts import make_expert
from gen0_policy.sim.rollout import RolloutConfig, run_episode


def physics_rate(embodiment: str, seconds: float) -> dict[str, float]:
    """Raw mj_step rate while the robot holds its home pose (the reach scene: robot, table, a marker)."""
    with make_env(embodiment, "reach") as env:
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            mujoco.mj_step(env.model, env.data, nstep=100)
            n += 100
        elapsed = time.perf_counter() - start
        return {
            "physics_steps_per_s": round(n / elapsed),
            "timestep_s": env.model.opt.timestep,
            "real_time_factor": round(n * env.model.opt.timestep / elapsed, 1),
        }


def render_rate(embodiment: str, seconds: float, sizes: list[tuple[int, int]]) -> dict[str, float]:
    out = {}
    with make_env(embodiment, "reach") as env:
        for cam in env.embodiment.cameras:
            for w, h in sizes:
                env.render(cam.name, w, h)  # the renderer for this size is made once, then reused
                n, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds:
                    env.render(cam.name, w, h)
                    n += 1
                out[f"{cam.name}_{w}x{h}_fps"] = round(n / (time.perf_counter() - start), 1)
    return out


def expert_success(embodiment: str, task: str, seeds: int) -> dict[str, object]:
    with make_env(embodiment, task) as env:
        expert = make_expert(env)
        start = time.perf_counter()
        results = [run_episode(env, expert, seed, RolloutConfig(linger=0.0)) for seed in range(seeds)]
        wall = time.perf_counter() - start
    ok = [r for r in results if r.success]
    return {
        "success_rate": len(ok) / seeds,
        "failed_seeds": [r.seed for r in results if not r.success],
        "mean_episode_s": round(sum(r.seconds for r in ok) / max(1, len(ok)), 2),
        "sim_s_per_wall_s": round(sum(r.seconds for r in results) / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="expert episodes per task and embodiment (0: skip)")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per speed figure")
    parser.add_argument("--embodiments", default="ur5e,panda,g1", help="comma-separated")
    args = parser.parse_args()
    sizes = [(224, 224), (320, 240), (640, 480)]
    result: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "mujoco": mujoco.__version__},
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
        "seeds": args.seeds,
        "embodiments": {},
    }
    worst = 1.0
    for emb in args.embodiments.split(","):
        entry: dict[str, object] = {}
        entry.update(physics_rate(emb, args.seconds))
        entry["render"] = render_rate(emb, args.seconds / 2, sizes)
        if args.seeds > 0:  # --seeds 0: speed figures only
            entry["expert"] = {task: expert_success(emb, task, args.seeds) for task in available_tasks(emb)}
            worst = min(worst, *(e["success_rate"] for e in entry["expert"].values()))
        result["embodiments"][emb] = entry
    if args.seeds > 0:
        result["worst_expert_success"] = worst
        result["target_met"] = worst >= 0.9
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
