"""gen0_sim_node as a real process, driven from this test process over real DDS (localhost, own
domain id): trajectories move the joints, bad commands are rejected and logged while the node
keeps running, images/camera_info/clock/task status arrive, and the seeded reset works."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from conftest import wait_until
from discovery import warm_up
from gen0_msgs.msg import TaskStatus
from gen0_msgs.srv import ResetTask
from gen0_policy.embodiment import load_embodiment
from gen0_policy.ros import conversions as conv
from spinning import Spinner

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]

PANDA = load_embodiment("panda")
ARM = PANDA.controller("joint_trajectory_controller").joints


class Probe:
    """This process's own rclpy context and node, spun in a background thread, keeping the latest
    message per topic."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node("sim_node_probe", context=self.context)
        self.latest: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.spinner = Spinner(self.executor)

    def listen(self, msg_type, topic: str, qos=10) -> None:
        def store(msg, topic=topic):
            self.latest[topic] = msg
            self.counts[topic] = self.counts.get(topic, 0) + 1

        self.node.create_subscription(msg_type, topic, store, qos)

    def start(self) -> Probe:
        self.spinner.start()
        return self

    def joints(self) -> np.ndarray:
        return conv.joint_state_positions(self.latest["/joint_states"], PANDA.joint_names)

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def probe():
    p = Probe()
    yield p
    p.close()


REFUSED_RESET = ResetTask.Request(task="no_such_task", seed=0)  # answered, changes nothing


def start_sim(processes, *params: str):
    args = ["embodiment:=panda", "task:=reach", "camera_rate:=10.0", "camera_width:=64", "camera_height:=48", *params]
    ros_args = [x for a in args for x in ("-p", a)]
    return processes.python("-m", "gen0_policy.ros.sim_node", "--ros-args", *ros_args, name="sim")


def test_trajectory_moves_joints_and_bad_commands_are_rejected(processes, probe):
    sim = start_sim(processes)
    probe.listen(JointState, "/joint_states")
    traj_pub = probe.node.create_publisher(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", 10)
    grip_pub = probe.node.create_publisher(Float64MultiArray, "/gripper_controller/commands", 10)
    probe.start()
    wait_until(lambda: "/joint_states" in probe.latest, timeout=60, what="/joint_states from the sim node")
    wait_until(lambda: traj_pub.get_subscription_count() and grip_pub.get_subscription_count(), what="subscribers")
    home = probe.joints()
    np.testing.assert_allclose(home, PANDA.home, atol=0.05)

    # A two-point trajectory, joint names in reverse order: the arm arrives at the last point.
    goal = PANDA.home[:7] + np.array([0.3, 0.2, -0.2, 0.3, 0.2, -0.3, 0.4])
    via = (PANDA.home[:7] + goal) / 2
    names = list(reversed(ARM))
    traj_pub.publish(conv.joint_trajectory_msg(names, [0.5, 1.0], np.stack([via, goal])[:, ::-1]))
    wait_until(lambda: np.abs(probe.joints()[:7] - goal).max() < 0.02, timeout=30, what="arm at the goal")

    grip_pub.publish(conv.float64_multi_array_msg([0.0]))
    wait_until(lambda: probe.joints()[7] < 0.005, timeout=30, what="gripper closed")

    # Bad commands: outside limits, unknown joint, wrong length, a start time long past, a wall-clock
    # stamp from a node without use_sim_time. None moves anything.
    probe.listen(Clock, "/clock")
    wait_until(lambda: "/clock" in probe.latest, what="/clock")
    bad_limits = goal.copy()
    bad_limits[3] = 0.5  # joint4 must stay below -0.0698
    traj_pub.publish(conv.joint_trajectory_msg(ARM, [0.5], bad_limits[None]))
    traj_pub.publish(conv.joint_trajectory_msg([*ARM[:6], "elbow"], [0.5], goal[None]))
    grip_pub.publish(conv.float64_multi_array_msg([0.0, 0.0]))
    grip_pub.publish(conv.float64_multi_array_msg([0.3]))
    sim_now = conv.to_seconds(probe.latest["/clock"].clock)
    traj_pub.publish(conv.joint_trajectory_msg(ARM, [1e-3], PANDA.home[None, :7], start_time=sim_now / 2))
    traj_pub.publish(conv.joint_trajectory_msg(ARM, [0.1], PANDA.home[None, :7], start_time=time.time()))

    expected_lines = [
        "rejected command on /joint_trajectory_controller/joint_trajectory",
        "for joint joint4 at point #0 is outside its limits [-3.0718, -0.0698]",
        "incoming joints ['elbow'] are not among its joints",
        "rejected command on /gripper_controller/commands",
        "command has 2 values but the controller has 1 joints ['finger_joint1']",
        "command 0.3 for joint finger_joint1 is outside its limits [0, 0.04]",
        "ends in the past",
        "stamp with sim time (use_sim_time:=true) or send a zero stamp",
    ]
    wait_until(
        lambda: all(line in processes.output(sim) for line in expected_lines),
        timeout=15,
        what=f"all rejections logged; log: {processes.output(sim)[-2000:]}",
    )
    count = probe.counts["/joint_states"]
    wait_until(lambda: probe.counts["/joint_states"] > count + 50, timeout=15, what="joint states still flowing")
    assert sim.poll() is None, processes.output(sim)
    np.testing.assert_allclose(probe.joints()[:7], goal, atol=0.02)  # did not move
    assert probe.joints()[7] < 0.005


def test_cameras_clock_status_and_reset(processes, probe):
    start_sim(processes, "seed:=5")
    for msg_type, topic, qos in [
        (JointState, "/joint_states", 10),
        (Clock, "/clock", 10),
        (TaskStatus, "/task_status", 10),
        (Image, "/scene/image_raw", qos_profile_sensor_data),
        (CameraInfo, "/scene/camera_info", qos_profile_sensor_data),
        (Image, "/wrist/image_raw", qos_profile_sensor_data),
    ]:
        probe.listen(msg_type, topic, qos)
    reset = probe.node.create_client(ResetTask, "/gen0_sim/reset")
    probe.start()
    wait_until(lambda: len(probe.latest) == 6, timeout=60, what=f"all topics (have {sorted(probe.latest)})")

    image = probe.latest["/scene/image_raw"]
    assert (image.width, image.height, image.encoding, image.header.frame_id) == (64, 48, "rgb8", "scene_optical_frame")
    rgb = conv.image_to_array(image)
    assert rgb.shape == (48, 64, 3) and rgb.std() > 5  # a rendered scene, not a blank frame
    info = probe.latest["/scene/camera_info"]
    assert (info.width, info.height) == (64, 48) and info.k[2] == 32.0 and info.k[0] > 0

    t0 = conv.to_seconds(probe.latest["/clock"].clock)
    time.sleep(0.5)
    t1 = conv.to_seconds(probe.latest["/clock"].clock)
    assert t1 > t0 + 0.1  # /clock advances (real-time factor 1, loaded machine)
    status = probe.latest["/task_status"]
    assert (status.task, status.seed, status.episode) == ("reach", 5, 1) and status.instruction

    warm_up(reset, REFUSED_RESET)  # a lost answer to the reset below cannot be asked for again
    future = reset.call_async(ResetTask.Request(task="", seed=11))
    response = wait_until(lambda: future.result(), timeout=20, what="reset response")
    assert response.success and response.seed == 11 and response.instruction, response.message
    wait_until(lambda: probe.latest["/task_status"].episode == 2, what="status of the new episode")
    status = probe.latest["/task_status"]
    assert status.seed == 11 and status.elapsed < 1.0
    assert conv.to_seconds(probe.latest["/clock"].clock) >= t1  # the clock never runs backwards

    # A new task builds a new world: the clock continues, images keep coming from the new model.
    future = reset.call_async(ResetTask.Request(task="push", seed=2))
    response = wait_until(lambda: future.result(), timeout=60, what="reset response")
    assert response.success and response.seed == 2, response.message
    wait_until(lambda: probe.latest["/task_status"].task == "push", what="status of the push task")
    assert probe.latest["/task_status"].episode == 3
    images = probe.counts["/scene/image_raw"]
    wait_until(lambda: probe.counts["/scene/image_raw"] > images + 2, timeout=30, what="images after the rebuild")
    assert conv.to_seconds(probe.latest["/clock"].clock) >= t1

    future = reset.call_async(ResetTask.Request(task="no_such_task", seed=1))
    response = wait_until(lambda: future.result(), timeout=20, what="reset response")
    assert not response.success and "unknown task 'no_such_task' for panda; available tasks are" in response.message


def test_real_time_factor_zero_runs_faster_than_real_time(processes, probe):
    start_sim(processes, "real_time_factor:=0.0", "cameras:=false")
    probe.listen(Clock, "/clock")
    probe.start()
    wait_until(lambda: "/clock" in probe.latest, timeout=60, what="/clock")
    t0, w0 = conv.to_seconds(probe.latest["/clock"].clock), time.monotonic()
    time.sleep(1.0)
    sim_elapsed = conv.to_seconds(probe.latest["/clock"].clock) - t0
    assert sim_elapsed > 1.5 * (time.monotonic() - w0)


def test_update_rate_is_the_rate_of_the_clock_and_a_burst_of_resets_is_answered(processes, probe):
    """Issue 13: update_rate 200 on a 2 ms physics step ran at 250 Hz (round(2.5) = 2 steps a tick), and
    of 20 resets sent at once only 10 were answered (the request queue held 10)."""
    start_sim(processes, "update_rate:=200.0", "cameras:=false")
    reset = probe.node.create_client(ResetTask, "/gen0_sim/reset", qos_profile=QoSProfile(depth=100))
    stamps: list[float] = []
    probe.node.create_subscription(Clock, "/clock", lambda m: stamps.append(conv.to_seconds(m.clock)), 1000)
    probe.start()
    wait_until(lambda: len(stamps) > 10, timeout=60, what="/clock")
    start = stamps[-1]
    wait_until(lambda: stamps[-1] > start + 2.0, timeout=60, what="two simulated seconds")
    ticks = sum(start < t <= start + 2.0 for t in list(stamps))
    assert 396 <= ticks <= 404  # 200 Hz of sim time (a lost message or two on a loaded machine)
    warm_up(reset, REFUSED_RESET)  # the burst must not meet a server that has not discovered us yet
    futures = [reset.call_async(ResetTask.Request(seed=i)) for i in range(20)]
    wait_until(lambda: all(f.done() for f in futures), 60, what="20 answers")
    assert all(f.result().success for f in futures)
