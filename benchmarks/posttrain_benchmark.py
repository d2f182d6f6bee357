"""Is pretraining worth it? Post-training a multi-task checkpoint versus training the same network
from scratch, on N demonstrations of a task the pretraining data did not contain; printing JSON.

For each N (default 5, 20, 50), both arms train for the same number of steps on the same first N
expert demonstrations (``gen0 sim collect``'s expert, seeds 0..N-1) and are measured on the same
held-out demonstrations (other seeds) and the same closed-loop simulation episodes:
- next-action error: MSE of the policy's deterministic chunk (``Gen0Policy.infer``) against the
  demonstrated chunk, per joint normalized by the held-out actions' std, over the joints that move
  in the task (one unit for both arms: each checkpoint's own normalization differs, so its
  training-time metric is not comparable), plus the raw RMSE of every joint;
- closed-loop success rate and time to success in MuJoCo (``gen0 sim rollout --policy CKPT``);
- wall time of the training run.
The base checkpoint is measured zero-shot too. With ``--swap``, the real gen0_sim_node and
gen0_policy_node run as processes, the policy is hot-swapped to the post-trained checkpoint through
``/gen0_policy/load_checkpoint``, and the longest gap between action commands around the swap is
reported beside the longest gap before it.

Without ``--base`` a multi-task checkpoint is pretrained here first on ``--pretrain-tasks``
(never ``--task``). Full run (hours on a CPU, minutes on a GPU):

    .venv/bin/python benchmarks/posttrain_benchmark.py --base ckpt/multitask --task press_button \\
        --demos 5 20 50 --steps 2000 --eval-episodes 20 --swap
Quick look (this machine, a few minutes):

    .venv/bin/python benchmarks/posttrain_benchmark.py --demos 2 4 --steps 20 --pretrain-steps 30 \\
        --pretrain-episodes 3 --preset test --language hash --val-demos 2 --eval-episodes 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # DDS never leaves the machine
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


# ------------------------------------------------------------------------------------ data


def collect(embodiment: str, tasks: list[str], episodes: int, seed: int, args: argparse.Namespace, out: Path) -> Path:
    from gen0_policy.sim.collect import CollectConfig, collect

    config = CollectConfig(
        embodiment,
        tuple(tasks),
        episodes=episodes,
        seed=seed,
        workers=args.workers,
        fps=args.fps,
        image_size=tuple(args.image_size) if args.image_size else None,
    )
    summary = collect(config, out)
    if summary["written"] < episodes * len(tasks):
        print(f"note: the expert failed {summary['failed']} of {episodes * len(tasks)} episodes; kept the successes")
    return out


def subset(episodes: list, count: int, embodiment: str, fps: float, out: Path) -> Path:
    """The first ``count`` demonstrations as their own dataset (what a user would have recorded)."""
    from gen0_policy.data.lerobot import LeRobotWriter
    from gen0_policy.embodiment import load_embodiment

    with LeRobotWriter(out, load_embodiment(embodiment), fps) as writer:
        for episode in episodes[:count]:
            writer.add_episode(episode)
    return out


def pretraining_tasks(base: str) -> list[str]:
    """Task ids in the base checkpoint's training datasets, when those folders are still here."""
    from gen0_policy.data.lerobot import LeRobotDataset, is_dataset
    from gen0_policy.model.checkpoint import load_policy

    tasks: set[str] = set()
    for spec in load_policy(base).meta.get("train_config", {}).get("datasets", []):
        root = Path(spec.get("path", ""))
        if is_dataset(root):
            ds = LeRobotDataset(root)
            tasks |= {str(ds.episode_meta(i).get("gen0/task", "")) for i in range(ds.num_episodes)}
    return sorted(t for t in tasks if t)


# ------------------------------------------------------------------------------------ training


def train(
    name: str,
    data: Path,
    out: Path,
    args: argparse.Namespace,
    base: str = "",
    model: dict | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    from gen0_policy.train.posttrain import PostTrainJob, post_train

    job = PostTrainJob(
        data=[str(data)],
        out_dir=str(out),
        base=base,
        train=dict(
            steps=steps or args.steps,
            batch_size=args.batch_size,
            lr=args.lr if base else args.scratch_lr,
            val_fraction=0.0,
            seed=args.seed,
            preset=args.preset,
            model=dict(model or {}),
            device=args.device,
            threads=args.threads,
            freeze=args.freeze if base else [],
        ),
    )
    last = {"t": 0.0}

    def emit(event: dict[str, Any]) -> None:
        if event["event"] == "step" and (time.monotonic() - last["t"] > 10 or event["step"] == event["total_steps"]):
            last["t"] = time.monotonic()
            print(f"  [{name}] step {event['step']}/{event['total_steps']} loss {event['loss']:.4f}", flush=True)

    began = time.perf_counter()
    result = post_train(job, emit)
    return {
        "checkpoint": result["checkpoint_path"],
        "steps": result["steps_completed"],
        "train_seconds": round(time.perf_counter() - began, 1),
    }


# ------------------------------------------------------------------------------------ metrics


def held_out_scale(episodes: list, embodiment: str) -> tuple[np.ndarray, np.ndarray]:
    """(std, moving): per-joint std of the held-out actions, and which joints move in this task
    (std above 1% of the joint's range). A joint held still (the gripper when pressing a button)
    has no scale to normalize by: it is left out of the normalized error and reported raw."""
    from gen0_policy.embodiment import load_embodiment

    emb = load_embodiment(embodiment)
    std = np.concatenate([e.actions for e in episodes]).std(0)
    moving = std > 0.01 * (emb.upper - emb.lower)
    return np.where(moving, std, 1.0), moving


def next_action_error(checkpoint: str, episodes: list, windows: int, std: np.ndarray, moving: np.ndarray) -> dict:
    """Over held-out windows: normalized MSE of the predicted vs demonstrated chunk on the moving
    joints, and the raw RMSE of every joint (rad or m)."""
    from gen0_policy.model.policy import Gen0Policy

    policy = Gen0Policy.load(checkpoint)
    H = policy.chunk_size
    normalized, squared = [], []
    for episode in episodes:
        for t in np.linspace(0, len(episode) - 2, windows).round().astype(int):
            obs = {
                "embodiment": episode.embodiment,
                "instruction": episode.instruction,
                "joint_positions": episode.states[t],
                "images": {cam: frames[t] for cam, frames in episode.images.items()},
            }
            pred = policy.infer(obs)["actions"]
            true = episode.actions[t : t + H]
            diff = pred[: len(true)] - true
            normalized.append(float(np.mean((diff[:, moving] / std[moving]) ** 2)))
            squared.append((diff**2).mean(0))
    return {
        "next_action_error": round(float(np.mean(normalized)), 5),
        "rmse_per_joint": [round(float(x), 4) for x in np.sqrt(np.mean(squared, 0))],
    }


def closed_loop(checkpoint: str, args: argparse.Namespace) -> dict[str, Any]:
    from gen0_policy.sim.env import make_env
    from gen0_policy.sim.policies import make_controller
    from gen0_policy.sim.rollout import RolloutConfig, run_episode

    controller = make_controller(checkpoint)
    config = RolloutConfig(linger=0.0)  # the robot's own cameras, through the one image path
    with make_env(args.embodiment, args.task, seed=args.eval_seed) as env:
        results = [run_episode(env, controller, args.eval_seed + i, config) for i in range(args.eval_episodes)]
    done = [r.seconds for r in results if r.success]
    return {
        "success_rate": len(done) / len(results),
        "episodes": len(results),
        "mean_seconds_to_success": round(float(np.mean(done)), 2) if done else None,
    }


def evaluate(checkpoint: str, held_out: list, scale: tuple, args: argparse.Namespace) -> dict[str, Any]:
    out = next_action_error(checkpoint, held_out, args.windows, *scale)
    if args.eval_episodes:
        out.update(closed_loop(checkpoint, args))
    return out


# ------------------------------------------------------------------------------------ hot swap


def swap_gap(old: str, new: str, args: argparse.Namespace, seconds: float = 4.0) -> dict[str, Any]:
    """Real sim + policy node processes; the longest gap between arm commands before and around a hot swap."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from trajectory_msgs.msg import JointTrajectory

    from gen0_msgs.msg import PolicyStatus
    from gen0_msgs.srv import LoadCheckpoint
    from gen0_policy.bringup import node_command, start_node, stop_nodes
    from gen0_policy.model.checkpoint import load_policy
    from gen0_policy.paths import config_dir

    config = config_dir()
    sim = {"embodiment": args.embodiment, "task": args.task}
    policy = {"checkpoint": old, "embodiment": args.embodiment, "autostart": True, "use_sim_time": True}
    procs = [
        start_node(node_command("gen0_policy.ros.sim_node", config / "sim_node.yaml", sim), log=Path(os.devnull)),
        start_node(node_command("gen0_policy.ros.policy_node", config / "policy_node.yaml", policy), Path(os.devnull)),
    ]
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node("posttrain_benchmark_probe", context=context)
    stamps: list[float] = []
    status: list[PolicyStatus] = []
    node.create_subscription(
        JointTrajectory, "/joint_trajectory_controller/joint_trajectory", lambda m: stamps.append(time.monotonic()), 100
    )
    node.create_subscription(PolicyStatus, "/gen0_policy/status", status.append, 10)
    client = node.create_client(LoadCheckpoint, "/gen0_policy/load_checkpoint")
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    new_id = load_policy(new).meta["checkpoint_id"]
    try:
        deadline = time.monotonic() + 180
        while len(stamps) < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        if len(stamps) < 100:
            return {"error": "the policy node sent no commands within 180 s (see gen0_policy_node's log)"}
        time.sleep(seconds)
        before = np.array(stamps)
        before = before[before > before[-1] - seconds]
        asked = time.monotonic()
        reply = client.call(LoadCheckpoint.Request(path=new), timeout_sec=120)
        answered = time.monotonic()
        while time.monotonic() < answered + 60 and not (status and status[-1].checkpoint_id == new_id):
            time.sleep(0.01)
        swapped = time.monotonic() if status and status[-1].checkpoint_id == new_id else None
        time.sleep(1.0)
        around = np.array([s for s in stamps if asked - 0.5 <= s <= (swapped or answered) + 1.0])
        period = 1.0 / 100.0  # the policy node's default control rate
        gap = lambda x: float(np.max(np.diff(x))) if len(x) > 1 else math.inf  # noqa: E731
        p99 = lambda x: float(np.percentile(np.diff(x), 99)) if len(x) > 1 else math.inf  # noqa: E731
        return {
            "loaded": bool(reply and reply.success),
            "message": reply.message if reply else "no reply",
            "load_seconds": round(answered - asked, 3),
            "swap_seconds": round(swapped - asked, 3) if swapped else None,
            "command_rate_hz_before": round((len(before) - 1) / (before[-1] - before[0]), 1),
            "p99_gap_ms_before": round(p99(before) * 1e3, 2),
            "p99_gap_ms_during_swap": round(p99(around) * 1e3, 2),
            "longest_gap_ms_before": round(gap(before) * 1e3, 2),
            "longest_gap_ms_during_swap": round(gap(around) * 1e3, 2),
            "longest_gap_periods_during_swap": round(gap(around) / period, 2),
            "commands_during_swap": len(around),
        }
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        stop_nodes(procs)


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="", help="multi-task checkpoint to post-train; omit to pretrain one here")
    p.add_argument("--embodiment", default="panda")
    p.add_argument("--task", default="press_button", help="the new task (must not be in the pretraining data)")
    p.add_argument("--demos", type=int, nargs="+", default=[5, 20, 50], help="demonstration counts N")
    p.add_argument("--steps", type=int, default=500, help="training steps of both arms")
    p.add_argument("--scratch-steps", type=int, default=0, help="steps from scratch (default: --steps)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4, help="post-training peak learning rate")
    p.add_argument("--scratch-lr", type=float, default=3e-4, help="from-scratch peak learning rate")
    p.add_argument("--freeze", nargs="*", default=[], help="parts frozen when post-training")
    p.add_argument("--val-demos", type=int, default=10, help="held-out demonstrations for the next-action error")
    p.add_argument("--windows", type=int, default=8, help="windows per held-out demonstration")
    p.add_argument("--eval-episodes", type=int, default=10, help="closed-loop episodes per checkpoint (0: skip)")
    p.add_argument("--eval-seed", type=int, default=200_000, help="first seed of the closed-loop episodes")
    p.add_argument(
        "--pretrain-tasks",
        default="reach,push,pick_place,stack,open_drawer",
        help="tasks of the pretraining data when --base is omitted (--task is always left out)",
    )
    p.add_argument("--pretrain-episodes", type=int, default=30, help="expert episodes per pretraining task")
    p.add_argument("--pretrain-steps", type=int, default=2000)
    p.add_argument("--preset", default="small", help="model preset when pretraining here")
    p.add_argument("--language", default="", help="language encoder when pretraining here (minilm or hash)")
    p.add_argument("--fps", type=float, default=20.0, help="demonstration rate, Hz (the base's rate if given)")
    p.add_argument(
        "--image-size", type=int, nargs=2, default=None, metavar=("W", "H"), help="downscale stored demo frames"
    )
    p.add_argument("--workers", type=int, default=1, help="collection worker processes")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--swap", action="store_true", help="also measure the command gap during a hot swap (ROS)")
    p.add_argument("--work-dir", default="", help="keep data and checkpoints here (default: a temporary folder)")
    args = p.parse_args(argv)
    args.scratch_steps = args.scratch_steps or args.steps

    from gen0_policy.data.lerobot import load_episodes
    from gen0_policy.embodiment import load_embodiment
    from gen0_policy.model.checkpoint import load_policy

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="gen0_posttrain_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": platform.node(),
        "cpu_count": os.cpu_count(),
        "task": args.task,
        "embodiment": args.embodiment,
        "demos": args.demos,
        "steps": args.steps,
        "scratch_steps": args.scratch_steps,
    }
    try:
        if args.base:
            base = args.base
            args.fps = float(load_policy(base).meta.get("fps", args.fps))
            report["pretraining"] = {"checkpoint": base, "tasks": pretraining_tasks(base)}
            if not report["pretraining"]["tasks"]:
                print("note: the base's pretraining datasets are not here; cannot check that --task is new to it")
        else:
            tasks = [t for t in args.pretrain_tasks.split(",") if t and t != args.task]
            print(f"pretraining on {tasks} ({args.pretrain_episodes} demos each)", flush=True)
            data = collect(args.embodiment, tasks, args.pretrain_episodes, 1000, args, work / "pretrain_data")
            model = {"language_encoder": args.language} if args.language else {}
            run = train("pretrain", data, work / "pretrain", args, model=model, steps=args.pretrain_steps)
            base = run["checkpoint"]
            report["pretraining"] = {"checkpoint": base, "tasks": tasks, **run}
        if args.task in report["pretraining"]["tasks"]:
            raise SystemExit(f"--task {args.task} is in the pretraining data; choose a task the base never saw")
        base_config = load_policy(base).config.to_dict()

        print(f"collecting {max(args.demos)} + {args.val_demos} demonstrations of {args.task}", flush=True)
        demos = load_episodes(collect(args.embodiment, [args.task], max(args.demos), 0, args, work / "demos"))
        held_out = load_episodes(collect(args.embodiment, [args.task], args.val_demos, 100_000, args, work / "held"))
        std, moving = held_out_scale(held_out, args.embodiment)
        report["normalized_joints"] = [
            n for n, m in zip(load_embodiment(args.embodiment).joint_names, moving, strict=True) if m
        ]
        report["zero_shot_base"] = evaluate(base, held_out, (std, moving), args)
        results = []
        for n in sorted(args.demos):
            data = subset(demos, n, args.embodiment, args.fps, work / f"demos_{n}")
            post = train(f"post N={n}", data, work / f"post_{n}", args, base=base)
            scratch = train(
                f"scratch N={n}", data, work / f"scratch_{n}", args, model=base_config, steps=args.scratch_steps
            )
            row = {
                "demos": min(n, len(demos)),
                "posttrained": {**post, **evaluate(post["checkpoint"], held_out, (std, moving), args)},
                "scratch": {**scratch, **evaluate(scratch["checkpoint"], held_out, (std, moving), args)},
            }
            row["pretraining_helps_error"] = (
                row["posttrained"]["next_action_error"] < row["scratch"]["next_action_error"]
            )
            if args.eval_episodes:
                row["pretraining_helps_success"] = row["posttrained"]["success_rate"] > row["scratch"]["success_rate"]
            results.append(row)
            print(json.dumps(row), flush=True)
        report["results"] = results
        if args.swap:
            report["hot_swap"] = swap_gap(base, results[-1]["posttrained"]["checkpoint"], args)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
