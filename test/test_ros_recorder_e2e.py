"""End to end, all real processes: a leader arm is mirrored onto the simulated Panda, the recorder
bags the episode, an independent reader (mcap) checks the bag, ``gen0 data build`` turns it into a
LeRobot v3 dataset, and the trainer takes a few steps on it."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from test_ros_recorder import Client, start_recorder

from conftest import wait_until
from gen0_policy.data.bags import BuildConfig
from gen0_policy.data.build import build_dataset
from gen0_policy.data.lerobot import LeRobotDataset

pytestmark = [pytest.mark.ros, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # console scripts of the venv running the tests
TOPICS = [
    "/joint_states",
    "/scene/image_raw",
    "/wrist/image_raw",
    "/joint_trajectory_controller/joint_trajectory",
    "/gripper_controller/commands",
    "/task_status",
]

# A person moving a leader arm: every joint waves around home, the gripper opens and closes.
LEADER = r"""
import math, time, rclpy
from rclpy.node import Node
from sensor_msgs.msg import JointState
from gen0_policy.embodiment import load_embodiment
emb = load_embodiment("panda")
rclpy.init()
node = Node("leader_arm")
pub = node.create_publisher(JointState, "/leader/joint_states", 10)
start = time.monotonic()
def tick():
    t = time.monotonic() - start
    pos = [j.home + 0.3 * math.sin(0.8 * t + i) for i, j in enumerate(emb.joints)]
    pos[-1] = 0.02 + 0.02 * math.sin(t)
    pub.publish(JointState(name=list(emb.joint_names), position=pos))
node.create_timer(0.01, tick)
rclpy.spin(node)
"""


def test_record_sim_teleop_build_and_train(processes, tmp_path: Path) -> None:
    sim = processes.start(
        str(BIN / "gen0_sim_node"), "--ros-args", "-p", "embodiment:=panda", "-p", "task:=reach",
        "-p", "camera_width:=64", "-p", "camera_height:=48", "-p", "camera_rate:=15.0", name="sim",
    )  # fmt: skip
    processes.start(
        str(BIN / "gen0_leader_mirror_node"), "--ros-args", "--params-file", str(REPO / "config/leader_mirror.yaml"),
        "-p", "max_velocity_scale:=1.0", "-p", "deadman_timeout:=0.5", name="mirror",
    )  # fmt: skip
    recorder = start_recorder(processes, tmp_path, tmp_path / "bags", topics=TOPICS, embodiment="panda")
    processes.python("-c", LEADER, name="leader")
    wait_until(
        lambda: all(f"subscribed to {t} " in processes.output(recorder) for t in TOPICS),
        timeout=120,
        what=f"the recorder to see every topic (sim log: {processes.output(sim)[-500:]})",
    )

    client = Client()
    try:
        started = client.start(instruction="wave the arm", operator_name="leader")
        assert started.success, started.message
        client.spin(4.0)
        stopped = client.stop(episode_success=True, notes="e2e")
        assert stopped.success, stopped.message
    finally:
        client.close()

    # An independent reader sees every stream, and the follower really followed the leader.
    bag = Path(stopped.bag_path)
    counts: dict[str, int] = {}
    joint1: list[float] = []
    with next(bag.glob("*.mcap")).open("rb") as f:
        for _, channel, _, msg in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            if channel.topic == "/joint_states":
                joint1.append(msg.position[list(msg.name).index("joint1")])
    assert set(counts) == {*TOPICS, "/episode_info"}, counts
    # a loaded machine renders few frames; every stream must be there all the same
    assert counts["/joint_states"] > 100 and counts["/scene/image_raw"] >= 3 and counts["/episode_info"] == 2
    assert np.ptp(joint1) > 0.1, "the simulated arm did not move with the leader"

    report = build_dataset([bag], tmp_path / "ds", BuildConfig(fps=10, image_size=(32, 32)))
    assert report.written == [str(bag)] and report.quality[0].ok, report.quality[0].summary_line()
    episode = LeRobotDataset(tmp_path / "ds").episode(0)
    assert len(episode) >= 15 and episode.success and episode.instruction == "wave the arm"
    assert episode.images["scene"].shape[1:] == (32, 32, 3) and episode.images["wrist"].any()
    # actions are the mirrored leader targets: the measured joints follow them
    assert np.corrcoef(episode.actions[:-3, 0], episode.states[3:, 0])[0, 1] > 0.8
    assert not math.isnan(float(episode.actions.sum()))

    from gen0_policy.train.config import TrainConfig
    from gen0_policy.train.loop import train

    metrics = train(
        TrainConfig(
            out_dir=str(tmp_path / "run"), preset="test", model={"language_encoder": "hash"},
            datasets=[{"path": str(tmp_path / "ds")}], steps=3, batch_size=4, warmup_steps=1, val_fraction=0.0,
            save_every=3, progress=False,
        )
    )  # fmt: skip
    assert math.isfinite(metrics["loss"])
    assert (tmp_path / "run" / "latest").is_file()
