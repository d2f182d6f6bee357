"""Leader-arm mirror node in a real process, driven by real leader/follower publisher processes
(the rules themselves: test_runtime_teleop.py)."""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import wait_until
from gen0_policy.embodiment import load_embodiment

REPO = Path(__file__).resolve().parent.parent

# argv: topic, seconds to publish, rate; publishes panda joints: joint1 far past its upper limit,
# the others home + a slow wave, the gripper beyond fully open. Exits when done (the leader "drops").
JOINT_PUBLISHER = r"""
import sys, time, math, rclpy
from rclpy.node import Node
from sensor_msgs.msg import JointState
from gen0_policy.embodiment import load_embodiment
topic, seconds, rate, mode = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
emb = load_embodiment("panda")
rclpy.init()
node = Node("joint_publisher")
pub = node.create_publisher(JointState, topic, 10)
start = time.monotonic()
def tick():
    t = time.monotonic() - start
    if t > seconds:
        raise SystemExit
    pos = [j.home for j in emb.joints]
    if mode == "leader":
        pos = [p + 0.2 * math.sin(t) for p in pos]
        pos[0], pos[-1] = 5.0, 0.08
    msg = JointState(name=list(reversed(emb.joint_names)), position=list(reversed(pos)))
    pub.publish(msg)
node.create_timer(1.0 / rate, tick)
try:
    rclpy.spin(node)
except SystemExit:
    pass
"""


@pytest.mark.ros
def test_mirror_node_commands_follower_and_stops_when_leader_goes_stale(processes) -> None:
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from std_msgs.msg import Float64MultiArray, String
    from trajectory_msgs.msg import JointTrajectory

    emb = load_embodiment("panda")
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("mirror_test", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    arm: list[tuple[float, list[float]]] = []
    gripper: list[list[float]] = []
    states: list[str] = []
    node.create_subscription(
        JointTrajectory,
        "/joint_trajectory_controller/joint_trajectory",
        lambda m: arm.append((time.monotonic(), list(m.points[0].positions))),
        100,
    )
    node.create_subscription(
        Float64MultiArray, "/gripper_controller/commands", lambda m: gripper.append(list(m.data)), 100
    )
    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(String, "/leader_mirror/state", lambda m: states.append(m.data), latched)

    def spin_until(predicate, timeout, what):
        return wait_until(lambda: executor.spin_once(timeout_sec=0.02) or predicate(), timeout, 0.0, what)

    try:
        mirror = processes.start(
            str(Path(sys.executable).parent / "gen0_leader_mirror_node"),  # the console script of this venv
            "--ros-args",
            "--params-file",
            str(REPO / "config/leader_mirror.yaml"),
            "-p",
            "max_velocity_scale:=1.0",
            name="mirror",
        )
        processes.python("-c", JOINT_PUBLISHER, "/joint_states", "60", "50", "follower", name="follower")
        spin_until(lambda: "waiting" in states, 20, "mirror node up")
        # 8 s: joint1 needs ~1.3 s at its velocity limit to reach its upper limit, and a loaded machine can
        # starve the leader into stale spells that restart the approach from the follower's pose.
        leader = processes.python("-c", JOINT_PUBLISHER, "/leader/joint_states", "8", "100", "leader", name="leader")
        spin_until(lambda: len(arm) > 5, 20, "follower commands")
        spin_until(lambda: leader.poll() is not None, 30, "the leader to finish")  # keep receiving meanwhile
        leader_gone = time.monotonic()
        spin_until(lambda: "stale" in states, 5, "the deadman to trip")
        executor.spin_until_future_complete(rclpy.task.Future(), timeout_sec=0.5)  # collect stragglers
        assert mirror.poll() is None
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)

    assert states[0] == "waiting" and "mirroring" in states and states[-1] == "stale", states
    times = np.array([t for t, _ in arm])
    positions = np.array([p for _, p in arm])
    arm_idx = emb.joint_indices(emb.controller("joint_trajectory_controller").joints)
    lower, upper = emb.lower[arm_idx], emb.upper[arm_idx]
    assert np.all(positions >= lower - 1e-9) and np.all(positions <= upper + 1e-9), "commands beyond limits"
    # engaging starts at the follower's pose and moves at most one velocity-limited step per tick
    np.testing.assert_allclose(positions[0], emb.home[arm_idx], atol=emb.velocity_limits.max() * 0.01 + 1e-9)
    # ... and so does every re-engagement after a stale spell (a loaded machine can starve the leader)
    limit = emb.velocity_limits[arm_idx] * 0.01 + 1e-9
    for before, after in itertools.pairwise(positions):
        restart = np.all(np.abs(after - emb.home[arm_idx]) <= limit)
        assert np.all(np.abs(after - before) <= limit) or restart, f"command jumped from {before} to {after}"
    assert positions[-1][0] == pytest.approx(upper[0]), "joint1 should settle on its upper limit"
    assert times[-1] < leader_gone + 0.25 + 0.3, "commands continued after the deadman timeout"
    assert gripper and all(0.0 <= g[0] <= 0.04 for g in gripper) and gripper[-1][0] == pytest.approx(0.04)
