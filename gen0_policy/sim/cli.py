"""``gen0 sim``: describe the simulated robots and tasks, run headless episodes, collect demonstrations."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from gen0_policy.cli_args import size_arg
from gen0_policy.errors import ConfigError


def _names(text: str) -> tuple[str, ...]:
    """ "a, b,c" -> ("a", "b", "c")."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _tasks_of(embodiment: Any) -> list[str]:
    from gen0_policy.sim.tasks import TASKS

    if embodiment.sim.get("simulator") == "metaworld":  # Meta-World's tasks, not ours (no import of it)
        from gen0_policy.sim.metaworld_env import TASK_INSTRUCTIONS

        return list(TASK_INSTRUCTIONS)
    return [t.name for t in TASKS.values() if embodiment.name in t.embodiments]


def info() -> dict[str, Any]:
    """Embodiments and tasks as plain data (no MuJoCo needed)."""
    from gen0_policy.embodiment import available_embodiments, load_embodiment
    from gen0_policy.sim.tasks import TASKS

    embodiments = []
    for name in available_embodiments():
        emb = load_embodiment(name)
        embodiments.append(
            {
                "name": emb.name,
                "description": emb.description,
                "dof": emb.dof,
                "control_rate_hz": emb.control_rate_hz,
                "joints": [
                    {"name": j.name, "lower": j.lower, "upper": j.upper, "home": j.home, "gripper": j.gripper}
                    for j in emb.joints
                ],
                "cameras": [
                    {"name": c.name, "role": c.role, "width": c.width, "height": c.height} for c in emb.cameras
                ],
                "controllers": [{"name": c.name, "type": c.type, "joints": list(c.joints)} for c in emb.controllers],
                "tasks": _tasks_of(emb),
            }
        )
    tasks = [
        {
            "name": t.name,
            "embodiments": list(t.embodiments),
            "instructions": list(t.instructions),
            "max_duration_s": t.max_duration,
        }
        for t in TASKS.values()
    ]
    return {"embodiments": embodiments, "tasks": tasks}


def _info(args: argparse.Namespace) -> int:
    data = info()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for emb in data["embodiments"]:
        cams = ", ".join(f"{c['name']} ({c['role']})" for c in emb["cameras"])
        print(f"{emb['name']}: {emb['dof']} DoF, cameras {cams}; tasks {', '.join(emb['tasks'])}")
    for task in data["tasks"]:
        print(f'task {task["name"]}: "{task["instructions"][0]}" on {", ".join(task["embodiments"])}')
    return 0


EXECUTORS = ("runtime", "direct")


def rollout(
    embodiment: str,
    task: str,
    policy: str = "expert",
    episodes: int = 1,
    seed: int = 0,
    camera_size: tuple[int, int] | None = None,
    execute: int | None = None,
    video_dir: Path | None = None,
    executor: str = "runtime",
) -> dict[str, Any]:
    """Run headless episodes; success rate and episode lengths (and an MP4 per episode in ``video_dir``).

    A checkpoint runs, by default, through the policy node's runtime (its synchronous executor, safety
    filter and horizons) into the sim node's controllers, in sim time (sim/lockstep.py): what the node
    does through ROS, less DDS and a busy CPU. ``executor="direct"`` plays chunks straight into the
    simulated servos (sim/policies.py), the per-step controller the diagnostic benchmarks build on."""
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {EXECUTORS}, got {executor!r}")
    start = time.perf_counter()
    how = (policy, episodes, seed, camera_size, execute, video_dir)
    if policy != "expert" and executor == "runtime":
        episodes_out, control_dt = _runtime_episodes(embodiment, task, *how)
    else:
        episodes_out, control_dt = _direct_episodes(embodiment, task, *how)
        executor = "direct" if policy != "expert" else "expert"
    wall = time.perf_counter() - start
    videos = []
    for e in episodes_out:
        images = e.pop("images", None)
        if video_dir and images is not None:
            videos.append(str(_write_video(Path(video_dir), embodiment, task, e, images)))
    successes = sum(e["success"] for e in episodes_out)
    return {
        "embodiment": embodiment,
        "task": task,
        "policy": policy,
        "executor": executor,
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / episodes,
        "episode_steps": [e["steps"] for e in episodes_out],
        "episode_seconds": [e["seconds"] for e in episodes_out],
        "control_rate_hz": 1.0 / control_dt,
        "wall_seconds": round(wall, 2),
        "per_episode": episodes_out,
        "videos": videos,
    }


# A video keeps half a second after success, so it shows the result; scores never count it.
VIDEO_LINGER_S = 0.5


Episodes = tuple[list[dict[str, Any]], float]  # per-episode summaries, and the control period (s)


def _direct_episodes(
    embodiment: str, task: str, policy: str, episodes: int, seed: int,
    camera_size: tuple[int, int] | None, execute: int | None, video_dir: Path | None,
) -> Episodes:  # fmt: skip
    """The scripted expert, or a checkpoint's chunks played straight into the servos."""
    from gen0_policy.sim.env import make_env
    from gen0_policy.sim.policies import make_controller
    from gen0_policy.sim.rollout import RolloutConfig, run_episode

    controller = make_controller(policy, execute=execute)
    config = RolloutConfig(linger=VIDEO_LINGER_S, record_fps=VIDEO_FPS) if video_dir else RolloutConfig(linger=0.0)
    out = []
    with make_env(embodiment, task, seed=seed, camera_size=camera_size) as env:
        for i in range(episodes):
            r = run_episode(env, controller, seed + i, config)
            out.append(
                r.summary() | {"instruction": r.instruction} | ({"images": r.episode.images} if video_dir else {})
            )
        return out, env.control_dt


def _runtime_episodes(
    embodiment: str, task: str, policy: str, episodes: int, seed: int,
    camera_size: tuple[int, int] | None, execute: int | None, video_dir: Path | None,
) -> Episodes:  # fmt: skip
    """A checkpoint through the policy node's runtime and the sim node's controllers (sim/lockstep.py)."""
    from gen0_policy.embodiment import load_embodiment
    from gen0_policy.sim.lockstep import Lockstep
    from gen0_policy.sim.tasks import TASKS

    hint = "for Meta-World's Sawyer use gen0 bench metaworld"
    load_embodiment(embodiment).require_joint_space("gen0 sim rollout", hint)
    sim = {} if camera_size is None else {"camera_width": camera_size[0], "camera_height": camera_size[1]}
    loop = Lockstep(policy, embodiment, task, {}, sim)
    if execute is not None:
        if not 1 <= execute <= loop.policy.chunk_size:
            raise ConfigError(f"--execute must be 1-{loop.policy.chunk_size} chunk steps, got {execute}")
        loop.config = dataclasses.replace(loop.config, sync_execute_fraction=execute / loop.policy.chunk_size)
    control_dt = 1.0 / loop.config.control_rate_hz
    limit_s = TASKS[task].max_duration  # the task's own limit, as the direct rollout (the ROS benchmark allows 10 s)
    out = []
    try:
        for i in range(episodes):
            r = loop.episode(seed + i, limit_s, VIDEO_LINGER_S if video_dir else 0.0, VIDEO_FPS if video_dir else None)
            steps = round(r["seconds"] / control_dt)
            keep = {"seed": r["seed"], "success": r["success"], "steps": steps, "seconds": r["seconds"]}
            video = {"images": r["images"]} if video_dir else {}
            out.append(keep | {"instruction": r["instruction"], "chunks": r["chunks"]} | video)
    finally:
        if loop.server.env is not None:
            loop.server.env.close()
    return out, control_dt


VIDEO_FPS = 20.0  # divides every embodiment's 100 Hz control rate


def _write_video(video_dir: Path, embodiment: str, task: str, episode: dict[str, Any], images: dict) -> Path:
    from gen0_policy.data.video import write_episode_video

    outcome = "success" if episode["success"] else "failure"
    success_frame = int(np.ceil(episode["seconds"] * VIDEO_FPS)) if episode["success"] else None
    path = video_dir / f"{embodiment}_{task}_seed{episode['seed']}_{outcome}.mp4"
    return write_episode_video(path, images, VIDEO_FPS, success_frame)


def _rollout(args: argparse.Namespace) -> int:
    result = rollout(
        args.embodiment, args.task, args.policy, args.episodes, args.seed, args.camera_size, args.execute, args.video,
        args.executor,
    )  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['embodiment']} {result['task']} ({result['policy']}): {result['successes']}/{result['episodes']} "
            f"succeeded, mean length {sum(result['episode_seconds']) / result['episodes']:.2f} s"
        )
        for path in result["videos"]:
            print(f"video: {path}")
    return 0


def _register_rollout(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("rollout", help="run headless episodes and report success rate and lengths")
    p.add_argument("--embodiment", required=True, help="embodiment name (see gen0 sim info)")
    p.add_argument("--task", required=True, help="task name (see gen0 sim info)")
    p.add_argument("--policy", default="expert", help="'expert' or a checkpoint folder")
    p.add_argument("--episodes", type=int, default=10, help="number of episodes (seeds SEED, SEED+1, ...)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    p.add_argument(
        "--camera-size",
        type=size_arg,
        default=None,
        help="WxH of the simulated cameras (default: the embodiment's own); a policy gets any size through the "
        "one image path (centre crop, antialiased resize)",
    )
    p.add_argument("--execute", type=int, default=None, help="chunk steps run between inferences (default 3/4 chunk)")
    p.add_argument("--video", type=Path, default=None, metavar="DIR", help="write an MP4 per episode into DIR")
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="runtime",
        help="how a checkpoint drives the robot: 'runtime', the policy node's own executor, safety filter and "
        "controllers in sim time (what ROS gives); 'direct', chunks played straight into the servos",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_rollout)


def _register_collect(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("collect", help="generate expert demonstrations into a LeRobot v3 dataset")
    p.add_argument("--embodiment", required=True, help="embodiment name (see gen0 sim info)")
    p.add_argument("--task", required=True, help="task name, or several separated by commas")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode (episode i uses SEED+i)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    p.add_argument("--fps", type=float, default=20.0, help="recorded frames per second (divides 100 Hz control)")
    p.add_argument(
        "--image-size",
        type=size_arg,
        default=None,
        help="store frames downscaled to WxH (centre crop, antialiased resize); default: the cameras' own resolution",
    )
    p.add_argument("--keep-failed", action="store_true", help="also write episodes whose task did not succeed")
    p.add_argument(
        "--action-noise",
        type=float,
        default=0.0,
        metavar="RAD",
        help="perturb the executed arm targets by a smooth random offset of this std (rad) and record the "
        "expert's own targets: demonstrations that show recoveries (default 0: none)",
    )
    p.add_argument(
        "--grasp-gate-mm",
        type=float,
        default=0.0,
        metavar="MM",
        help="grasp and release only once the measured hand is within MM of the planned point, waiting "
        "above the object (default 0: on the expert's schedule, as the shipped checkpoint's data)",
    )
    p.add_argument(
        "--funnel-slope",
        type=float,
        default=0.0,
        metavar="K",
        help="going down to a grasp or release, keep the hand at least K x its measured horizontal distance "
        "from the point above it, calming --action-noise meanwhile (default 0: straight down on schedule)",
    )
    p.add_argument("--out", required=True, type=Path, help="new dataset folder")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_collect)


def _collect(args: argparse.Namespace) -> int:
    from gen0_policy.sim.collect import CollectConfig, collect

    config = CollectConfig(
        embodiment=args.embodiment,
        tasks=_names(args.task),
        episodes=args.episodes,
        seed=args.seed,
        workers=args.workers,
        fps=args.fps,
        image_size=args.image_size,
        keep_failed=args.keep_failed,
        action_noise_rad=args.action_noise,
        grasp_gate_m=args.grasp_gate_mm / 1000.0,
        funnel_slope=args.funnel_slope,
    )
    return _report_collection(collect(config, args.out, progress=not args.json), args)


def _report_collection(summary: dict[str, Any], args: argparse.Namespace) -> int:
    """What every collect command prints: the summary as JSON, or one line."""
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        took = f" in {summary['wall_seconds']} s" if "wall_seconds" in summary else ""
        print(
            f"wrote {summary['written']} episodes ({summary['frames']} frames) to {summary['out']}{took}; "
            f"{summary['failed']} failed episodes {'kept' if args.keep_failed else 'dropped'}"
        )
    return 0


def _register_collect_metaworld(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "collect-metaworld",
        help="Meta-World scripted-expert demonstrations (Sawyer) into a LeRobot v3 dataset",
        description="Every env step recorded at 80 Hz with the task's instruction; failed expert episodes dropped.",
    )
    p.add_argument("--task", required=True, help="Meta-World task names separated by commas, or a suite: mt10, mt50")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode (episode i uses SEED+i)")
    p.add_argument("--camera-size", type=size_arg, default=None, help="WxH rendered (default: sawyer.yaml's, 128x128)")
    p.add_argument(
        "--image-size", type=size_arg, default=None, help="store frames downscaled to WxH (default: as rendered)"
    )
    p.add_argument("--keep-failed", action="store_true", help="also write episodes the expert failed")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (same dataset for any number)")
    p.add_argument("--max-steps", type=int, default=None, help="cut episodes short (for tests; default the env's 500)")
    p.add_argument(
        "--action-noise",
        type=float,
        default=0.0,
        metavar="UNITS",
        help="perturb the executed hand displacements by a smooth random offset of this std (action units, "
        "0.01 m per step each) and record the expert's own actions: demonstrations that show recoveries "
        "(default 0: none; 0.2 puts the hand a median 1.4 cm off the expert's path)",
    )
    p.add_argument("--out", required=True, type=Path, help="new dataset folder")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_collect_metaworld)


def _collect_metaworld(args: argparse.Namespace) -> int:
    from gen0_policy.sim.collect import MetaWorldCollectConfig, collect_metaworld

    config = MetaWorldCollectConfig(
        tasks=_names(args.task),
        episodes=args.episodes,
        seed=args.seed,
        camera_size=args.camera_size,
        image_size=args.image_size,
        keep_failed=args.keep_failed,
        max_steps=args.max_steps,
        workers=args.workers,
        action_noise=args.action_noise,
    )
    return _report_collection(collect_metaworld(config, args.out, progress=not args.json), args)


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("sim", help="MuJoCo simulation: robots, tasks, expert rollouts, data collection")
    sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    p = sub.add_parser("info", help="list embodiments (joints, cameras) and tasks (instructions)")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=_info)
    _register_rollout(sub)
    _register_collect(sub)
    _register_collect_metaworld(sub)
    sim.set_defaults(func=lambda args: sim.print_help() or 2)
