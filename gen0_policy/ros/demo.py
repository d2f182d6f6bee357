"""``gen0 demo``: the main job in one command. Starts the MuJoCo sim node and the policy node with the
shipped checkpoint (as ``gen0 bringup sim`` does), runs a few seeded episodes through the policy's
RunTask action like any outside client, says what the robot is doing and how each episode ended,
and leaves one MP4 per episode (cameras side by side, success marked).

    gen0 demo                                   # Panda, open_drawer, 3 episodes, videos in demo_videos/
    gen0 demo --task press_button --episodes 5 --viewer run.rrd
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from gen0_policy.bringup import check_checkpoint, commands, dead_node, node_command, start_node, stop_nodes
from gen0_policy.embodiment import load_embodiment
from gen0_policy.paths import config_dir


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    check_checkpoint(args)
    embodiment = load_embodiment(args.embodiment)
    bringup = argparse.Namespace(
        target="sim", embodiment=args.embodiment, task=args.task, checkpoint=args.checkpoint, mode="synchronous",
        instruction="", seed=args.seed, param=["act_on_activate:=false"], policy_params="", sim_params="",
    )  # fmt: skip
    named = commands(bringup)
    if args.viewer:
        params = {"embodiment": args.embodiment, "save_path": str(Path(args.viewer).resolve())}
        named.append(("viewer", node_command("gen0_policy.ros.viewer_node", config_dir() / "viewer_node.yaml", params)))
    say(f"starting the MuJoCo sim ({embodiment.name}, task {args.task}) and the policy ({args.checkpoint})")
    procs = [(name, start_node(command)) for name, command in named]
    last = {"state": ""}

    def on_status(msg) -> None:
        state = RuntimeState(msg.state).label if msg.state <= max(RuntimeState) else f"state {msg.state}"
        line = f"policy {state}" + (f": {msg.reason}" if msg.reason else "")
        if line != last["state"]:
            last["state"] = line
            say(line)

    from gen0_policy.data.video import write_episode_video
    from gen0_policy.ros.task_client import TaskClient
    from gen0_policy.runtime.status import RuntimeState

    client = TaskClient("gen0_demo", cameras=[c.name for c in embodiment.cameras], on_status=on_status)
    results = []
    try:
        client.wait_until_ready(args.startup_timeout)
        for i in range(args.episodes):
            seed = args.seed + i
            if dead := dead_node(procs):
                raise RuntimeError(dead)
            say(f"episode {i + 1}/{args.episodes}: task {args.task}, seed {seed}")
            episode = client.episode(args.task, seed, args.timeout)
            results.append(episode)
            pace = episode["duration"] / max(episode["wall_s"], 1e-3)
            slow = f" (the sim ran at {pace:.2f}x real time: a loaded machine)" if pace < 0.8 else ""
            say(
                f"episode {i + 1}: '{episode['instruction']}' -> {episode['outcome']} after "
                f"{episode['duration']:.1f} s{slow}"
            )
            frames = {c: client.frames[c] for c in client.frames if client.frames[c]}
            if frames:
                count = min(len(f) for f in frames.values())
                images = {c: np.stack(f[:count]) for c, f in frames.items()}
                # The action ends at success; the client keeps filming half a second (10 frames) after.
                success = max(0, count - 10) if episode["outcome"] == "succeeded" else None
                name = f"{args.embodiment}_{args.task}_seed{seed}_{episode['outcome']}.mp4"
                path = write_episode_video(Path(args.video_dir) / name, images, 20.0, success)
                say(f"video: {path}")
    except (RuntimeError, TimeoutError) as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
    finally:
        client.close()
        stop_nodes([proc for _, proc in procs])
    done = sum(r["outcome"] == "succeeded" for r in results)
    say(f"{done}/{len(results)} episodes succeeded")
    return 0 if results else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="sim + policy with the shipped checkpoint: a few episodes and videos")
    p.add_argument("--embodiment", default="panda", help="robot (gen0 sim info lists them)")
    p.add_argument("--task", default="open_drawer", help="sim task (gen0 sim info lists them)")
    p.add_argument("--checkpoint", default="", help="checkpoint folder (default: the shipped one)")
    p.add_argument("--episodes", type=int, default=3, help="number of episodes (seeds SEED, SEED+1, ...)")
    p.add_argument("--seed", type=int, default=100, help="seed of the first episode (100+: not in the training data)")
    p.add_argument("--timeout", type=float, default=15.0, help="time limit per episode, s (sim time)")
    p.add_argument("--video-dir", default="demo_videos", help="where the MP4s go")
    p.add_argument("--viewer", default="", metavar="FILE.rrd", help="also record a Rerun recording of the run")
    p.add_argument("--startup-timeout", type=float, default=180.0, help="s to wait for the policy to run")
    p.set_defaults(func=run)
