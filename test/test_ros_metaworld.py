"""Meta-World's Sawyer through ROS (issue 15): `gen0 bringup sim --embodiment sawyer` starts the sim
node on Meta-World and the unchanged policy node, as real processes over real DDS; the policy's
end-effector displacements reach the robot as Cartesian hand targets (PoseStamped, what a Cartesian
motion controller takes) and a gripper opening, within the workspace and the hand's speed limit, and
the simulated hand follows them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from conftest import wait_until
from gen0_msgs.msg import PolicyStatus, TaskStatus
from gen0_policy.embodiment import load_embodiment
from gen0_policy.ros import conversions as conv
from spinning import Spinner

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(240)]

SAWYER = load_embodiment("sawyer")


def sawyer_checkpoint(path: Path) -> Path:
    """A real checkpoint of the tiny test-preset network for the Sawyer (untrained weights). Untrained, it
    outputs the action mean, so a mean of 0.1 in x (1 mm a step) is what moves the hand: with a zero mean
    the target, and the hand on it, stand still."""
    import torch

    from gen0_policy.model.checkpoint import save_policy
    from gen0_policy.model.config import preset
    from gen0_policy.model.modeling import Gen0Model
    from gen0_policy.model.processor import JointStats

    torch.manual_seed(0)
    config = preset("test", language_encoder="hash")
    middle = ((SAWYER.lower + SAWYER.upper) / 2).astype(np.float32)
    stats = {
        "sawyer": JointStats(
            middle, np.full(4, 0.1, np.float32), np.array([0.1, 0, 0, 0], np.float32), np.full(4, 0.5, np.float32)
        )
    }
    save_policy(path, Gen0Model(config).state_dict(), config, [SAWYER], stats, {"run": "sawyer", "fps": 80.0})
    return path


class Listener:
    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node("sawyer_listener", context=self.context)
        self.poses: list[PoseStamped] = []
        self.gripper: list[Float64MultiArray] = []
        self.states: list[JointState] = []
        self.statuses: list[PolicyStatus] = []
        self.tasks: list[TaskStatus] = []
        n = self.node
        n.create_subscription(TaskStatus, "/task_status", self.tasks.append, 10)
        n.create_subscription(PoseStamped, "/cartesian_motion_controller/target_frame", self.poses.append, 100)
        n.create_subscription(Float64MultiArray, "/gripper_controller/commands", self.gripper.append, 100)
        n.create_subscription(JointState, "/joint_states", self.states.append, 100)
        n.create_subscription(PolicyStatus, "/gen0_policy/status", self.statuses.append, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(n)
        self.spinner = Spinner(self.executor).start()

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def listener():
    p = Listener()
    yield p
    p.close()


def test_bringup_sim_drives_the_sawyer_with_cartesian_targets(processes, listener, tmp_path) -> None:
    checkpoint = sawyer_checkpoint(tmp_path / "sawyer")
    bringup = processes.python(
        "-m", "gen0_policy.cli", "bringup", "sim", "--embodiment", "sawyer", "--task", "reach",
        "--checkpoint", str(checkpoint), name="bringup",
    )  # fmt: skip
    wait_until(
        lambda: any(s.state == PolicyStatus.STATE_RUNNING for s in listener.statuses), 120, what="policy running"
    )
    wait_until(lambda: len(listener.poses) > 200 and len(listener.states) > 100, 90, what="hand targets streaming")
    assert bringup.poll() is None, processes.output(bringup)
    targets = np.array([conv.pose_stamped_to_array(p) for p in list(listener.poses)])
    assert np.all(np.isfinite(targets))
    assert np.all(targets >= SAWYER.lower[:3] - 1e-9) and np.all(targets <= SAWYER.upper[:3] + 1e-9)
    # ... and inside the box this task's controller clamps to, which the sim node reports (Meta-World's
    # reach: z >= 0.05 m less the tool frame's 3.8 mm, inside the embodiment's -0.0525)
    lower, upper = np.array(listener.tasks[-1].workspace_lower), np.array(listener.tasks[-1].workspace_upper)
    assert lower.shape == upper.shape == (4,) and lower[2] == pytest.approx(0.05 - 0.0038, abs=0.002)
    assert np.all(targets >= lower[:3] - 1e-9) and np.all(targets <= upper[:3] + 1e-9)
    # Consecutive targets (100 Hz control) never ask for more than the hand's 0.8 m/s (+5 %, late ticks).
    period = 1.0 / 100.0
    assert np.abs(np.diff(targets, axis=0)).max() <= 0.8 * 1.05 * 2 * period
    assert {p.header.frame_id for p in listener.poses} == {"world"}
    openings = np.array([g.data[0] for g in list(listener.gripper)])
    assert openings.size and np.all((openings >= 0) & (openings <= 1))
    assert list(listener.states[-1].name) == list(SAWYER.joint_names)

    # The simulated hand follows where it is sent: away from home, where the task starts it, and near
    # the latest target. Home, not the first state this probe hears: when discovery was slow the hand
    # had already left it (failed CI once, comparing with the first state heard).
    def hand_follows_the_policy() -> bool:
        hand = conv.joint_state_positions(listener.states[-1], SAWYER.joint_names)[:3]
        target = conv.pose_stamped_to_array(listener.poses[-1])
        return np.abs(hand - SAWYER.home[:3]).max() > 0.01 and np.abs(hand - target).max() < 0.05

    try:
        wait_until(hand_follows_the_policy, 30, what="the simulated hand to move from home to the policy's targets")
    except AssertionError as exc:  # say which half failed, and how far into its episode the world was
        hand = conv.joint_state_positions(listener.states[-1], SAWYER.joint_names)
        target = conv.pose_stamped_to_array(listener.poses[-1])
        elapsed = listener.tasks[-1].elapsed if listener.tasks else None
        seen = f"hand {hand}, home {SAWYER.home}, target {target}, episode at {elapsed} s"
        raise AssertionError(f"{exc}: {seen}") from None
    assert bringup.poll() is None, processes.output(bringup)
