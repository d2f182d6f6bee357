"""Data pipeline throughput: bag -> dataset frames/s, dataset -> episodes frames/s, and whether the
training loader keeps a training step fed (loader samples/s against train-step samples/s).

Synthesizes recorder-like bags (panda joint states, arm and gripper commands, two cameras, an
EpisodeInfo) with rosbags, builds a LeRobot v3 dataset with ``gen0 data build``'s code, reads it
back with ``load_episodes`` and times the trainer's batch builder against its full step. Prints JSON.

    .venv/bin/python benchmarks/data_benchmark.py --episodes 4 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def synthesize_bag(path: Path, seconds: float, js_hz: float, cam_hz: float, size: tuple[int, int], seed: int) -> int:
    """One episode bag written with rosbags' own serializer; returns its message count."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from gen0_policy.data.recording import typestore_for
    from gen0_policy.embodiment import load_embodiment

    emb = load_embodiment("panda")
    store = typestore_for(["gen0_msgs/msg/EpisodeInfo"])
    T = store.types
    Time, Header = T["builtin_interfaces/msg/Time"], T["std_msgs/msg/Header"]
    Duration = T["builtin_interfaces/msg/Duration"]
    rng = np.random.default_rng(seed)
    t0 = 1_700_000_000 + seed * 100.0

    def header(t: float) -> object:
        return Header(stamp=Time(sec=int(t), nanosec=int((t % 1) * 1e9)), frame_id="")

    w, h = size
    frames = [rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1) for _ in range(8)]
    events: list[tuple[float, str, str, object]] = []
    arm = list(emb.controller("joint_trajectory_controller").joints)
    for i in range(int(seconds * js_hz)):
        t = t0 + i / js_hz
        q = emb.home + 0.2 * np.sin(t - t0 + np.arange(emb.dof))
        msg = T["sensor_msgs/msg/JointState"](
            header=header(t), name=list(emb.joint_names), position=q, velocity=np.zeros(0), effort=np.zeros(0)
        )
        events.append((t, "/joint_states", "sensor_msgs/msg/JointState", msg))
    for i in range(int(seconds * cam_hz)):
        t = t0 + 0.003 + i / cam_hz
        for cam in ("scene", "wrist"):
            data = frames[(i + len(cam)) % len(frames)].reshape(-1)
            img = T["sensor_msgs/msg/Image"](
                header=header(t), height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w, data=data
            )
            events.append((t, f"/{cam}/image_raw", "sensor_msgs/msg/Image", img))
    for i in range(int(seconds * 20)):
        t = t0 + 0.001 + i / 20
        q = emb.home[: len(arm)] + 0.25 * np.sin(t - t0 + np.arange(len(arm)))
        point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=q,
            velocities=np.zeros(0),
            accelerations=np.zeros(0),
            effort=np.zeros(0),
            time_from_start=Duration(sec=0, nanosec=50_000_000),
        )
        traj = T["trajectory_msgs/msg/JointTrajectory"](header=header(0), joint_names=arm, points=[point])
        events.append((t, "/joint_trajectory_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory", traj))
        layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
        grip = T["std_msgs/msg/Float64MultiArray"](layout=layout, data=np.array([0.02]))
        events.append((t, "/gripper_controller/commands", "std_msgs/msg/Float64MultiArray", grip))
    info = T["gen0_msgs/msg/EpisodeInfo"](
        header=header(t0 + seconds), episode_id=path.name, instruction="pick up the cube", task="pick",
        embodiment="panda", operator_name="bench", tags=[], start_time=Time(sec=0, nanosec=0),
        stop_time=Time(sec=0, nanosec=0), recording=False, success=True, notes="", bag_path=str(path),
        message_count=0,
    )  # fmt: skip
    events.append((t0 + seconds, "/episode_info", "gen0_msgs/msg/EpisodeInfo", info))
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conns: dict[str, object] = {}
    for t, topic, msgtype, msg in sorted(events, key=lambda e: e[0]):
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
        writer.write(conns[topic], int(t * 1e9), store.serialize_cdr(msg, msgtype))
    writer.close()
    return len(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each episode, s")
    parser.add_argument("--js-hz", type=float, default=500.0)
    parser.add_argument("--cam-hz", type=float, default=30.0)
    parser.add_argument("--camera-size", default="320x240", help="recorded frames, WxH")
    parser.add_argument("--fps", type=float, default=20.0, help="dataset control rate, Hz")
    parser.add_argument("--preset", default="test", help="model preset for the train-step comparison")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="loader batches and train steps timed")
    args = parser.parse_args()

    from gen0_policy.data.bags import BuildConfig, find_bags
    from gen0_policy.data.build import build_dataset
    from gen0_policy.data.lerobot import load_episodes

    size = tuple(int(v) for v in args.camera_size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="gen0_databench_"))
    try:
        began = time.perf_counter()
        messages = sum(
            synthesize_bag(work / "bags" / f"ep{i:03d}", args.seconds, args.js_hz, args.cam_hz, size, i)
            for i in range(args.episodes)
        )
        synth_s = time.perf_counter() - began
        bag_mb = sum(f.stat().st_size for f in (work / "bags").rglob("*.mcap")) / 2**20

        from gen0_policy.model.config import preset

        image_size = preset(args.preset).image_size
        config = BuildConfig(fps=args.fps, image_size=(image_size, image_size))
        began = time.perf_counter()
        report = build_dataset(find_bags([work / "bags"]), work / "ds", config)
        build_s = time.perf_counter() - began

        began = time.perf_counter()
        episodes = load_episodes(work / "ds", image_size=(image_size, image_size))
        load_s = time.perf_counter() - began
        frames = sum(len(e) for e in episodes)

        from gen0_policy.train.config import TrainConfig
        from gen0_policy.train.loop import Trainer

        train_config = TrainConfig(
            out_dir=str(work / "run"), preset=args.preset, model={"language_encoder": "hash"},
            datasets=[{"path": str(work / "ds")}], batch_size=args.batch_size, steps=args.steps + 2,
            val_fraction=0.0, progress=False, threads=int(os.environ.get("GEN0_THREADS", "0")),
        )  # fmt: skip
        trainer = Trainer(train_config)
        trainer.train_step()  # warm-up
        began = time.perf_counter()
        for step in range(args.steps):
            trainer.batch(step)
        loader_s = time.perf_counter() - began
        began = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()
        step_s = time.perf_counter() - began
        loader_rate = args.steps * args.batch_size / loader_s
        train_rate = args.steps * args.batch_size / step_s
        print(
            json.dumps(
                {
                    "episodes": args.episodes,
                    "episode_seconds": args.seconds,
                    "recorded": {"js_hz": args.js_hz, "cam_hz": args.cam_hz, "cameras": 2, "size": args.camera_size},
                    "bag_messages": messages,
                    "bag_mb": round(bag_mb, 1),
                    "synthesize_s": round(synth_s, 2),
                    "build": {
                        "seconds": round(build_s, 2),
                        "frames": report.frames,
                        "frames_per_s": round(report.frames / build_s, 1),
                        "bag_messages_per_s": round(messages / build_s, 1),
                        "bag_mb_per_s": round(bag_mb / build_s, 1),
                    },
                    "load_episodes": {
                        "seconds": round(load_s, 2),
                        "frames_per_s": round(frames / load_s, 1),
                        "image_size": image_size,
                    },
                    "loader_vs_train": {
                        "preset": args.preset,
                        "batch_size": args.batch_size,
                        "loader_samples_per_s": round(loader_rate, 1),
                        "train_samples_per_s": round(train_rate, 1),
                        "loader_share_of_step": round(loader_s / step_s, 3),
                    },
                    "load_average_1min": os.getloadavg()[0],
                },
                indent=2,
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
