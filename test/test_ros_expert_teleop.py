"""The scripted expert as a simulated teleoperator, all real processes: gen0_sim_node with
expert_teleop:=true publishes the expert's commands on the controller topics (seen from this
process), executes them (the task succeeds), and the recorder bags them as real command messages
(read back with the independent mcap reader)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from std_msgs.msg import Float64MultiArray
from test_ros_recorder import Client, start_recorder
from test_ros_sim_node import ARM, PANDA, Probe
from trajectory_msgs.msg import JointTrajectory

from conftest import wait_until
from discovery import warm_up
from gen0_msgs.msg import TaskStatus
from gen0_msgs.srv import ResetTask
from gen0_policy.ros import conversions as conv

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # console scripts of the venv running the tests
ARM_TOPIC = "/joint_trajectory_controller/joint_trajectory"
GRIP_TOPIC = "/gripper_controller/commands"
TOPICS = ["/joint_states", ARM_TOPIC, GRIP_TOPIC, "/task_status"]


def test_expert_teleop_publishes_commands_that_solve_the_task_and_get_recorded(processes, tmp_path: Path) -> None:
    sim = processes.start(
        str(BIN / "gen0_sim_node"), "--ros-args", "-p", "embodiment:=panda", "-p", "task:=reach", "-p", "seed:=3",
        "-p", "cameras:=false", "-p", "expert_teleop:=true", name="sim",
    )  # fmt: skip
    recorder = start_recorder(processes, tmp_path, tmp_path / "bags", topics=TOPICS, embodiment="panda")

    probe = Probe()
    client = Client()
    try:
        probe.listen(JointTrajectory, ARM_TOPIC)
        probe.listen(Float64MultiArray, GRIP_TOPIC)
        probe.listen(TaskStatus, "/task_status")
        reset = probe.node.create_client(ResetTask, "/gen0_sim/reset")
        probe.start()

        # The expert's arm commands are what a teleop sends: the arm's joints, one point one
        # control period ahead, stamp zero (= execute on arrival).
        msg = wait_until(lambda: probe.latest.get(ARM_TOPIC), timeout=90, what=f"expert commands on {ARM_TOPIC}")
        assert list(msg.joint_names) == list(ARM)
        assert len(msg.points) == 1 and len(msg.points[0].positions) == len(ARM)
        assert conv.to_seconds(msg.points[0].time_from_start) == pytest.approx(1.0 / PANDA.control_rate_hz)
        assert conv.to_seconds(msg.header.stamp) == 0.0
        grip = wait_until(lambda: probe.latest.get(GRIP_TOPIC), what="expert gripper commands")
        assert len(grip.data) == 1 and PANDA.lower[7] <= grip.data[0] <= PANDA.upper[7]
        wait_until(
            lambda: all(f"subscribed to {t} " in processes.output(recorder) for t in TOPICS),
            timeout=60,
            what="the recorder to see every topic",
        )

        # A fresh episode while recording: the expert re-plans, its commands solve the task.
        started = client.start(instruction="reach the target", operator_name="scripted expert")
        assert started.success, started.message
        wait_until(lambda: reset.wait_for_service(timeout_sec=0.1), what="/gen0_sim/reset")
        warm_up(reset, ResetTask.Request(task="no_such_task", seed=0))  # refused: changes nothing
        old = wait_until(lambda: probe.latest.get("/task_status"), what="/task_status").episode
        future = reset.call_async(ResetTask.Request(seed=4))
        answer = wait_until(lambda: future.result(), what="the reset answer")
        assert answer.success, answer.message
        wait_until(
            lambda: probe.latest["/task_status"].episode > old and probe.latest["/task_status"].success,
            timeout=90,
            what=f"task success through the expert's teleop commands; last status {probe.latest['/task_status']}",
        )
        client.spin(0.5)
        stopped = client.stop(episode_success=True, notes="expert teleop")
        assert stopped.success, stopped.message
    finally:
        client.close()
        probe.close()
    assert "rejected command" not in processes.output(sim)

    # The bag holds the command messages themselves, and they moved the arm.
    counts: dict[str, int] = {}
    arm: list[list[float]] = []
    success = False
    with next(Path(stopped.bag_path).glob("*.mcap")).open("rb") as f:
        for _, channel, _, msg in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            if channel.topic == ARM_TOPIC:
                assert list(msg.joint_names) == list(ARM)
                arm.append(list(msg.points[0].positions))
            elif channel.topic == "/task_status":
                success |= bool(msg.success)
    assert set(TOPICS) <= set(counts), counts
    assert counts[ARM_TOPIC] > 20 and counts[GRIP_TOPIC] > 20, counts
    assert np.ptp(np.array(arm), axis=0).max() > 0.05, "the expert's recorded commands never moved the arm"
    assert success, "the bag's /task_status never reported success"
