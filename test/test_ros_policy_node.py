"""gen0_policy_node as a real process over real DDS (localhost, own domain id), with a real (tiny,
untrained) checkpoint: it comes up through its lifecycle, turns images and joint states into
trajectories within limits, and answers bad input (wrong encoding or size, missing joints, NaN,
stale data, a clock jump) with a hold and a clear status, never a crash or an out-of-limit command."""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from conftest import wait_until
from discovery import warm_up
from gen0_msgs.action import RunTask
from gen0_msgs.msg import ActionChunk, PolicyStatus, TaskStatus
from gen0_msgs.srv import LoadCheckpoint, SetInstruction
from gen0_policy.embodiment import load_embodiment
from gen0_policy.ros import conversions as conv
from gen0_policy.ros.action_client import ThreadSafeActionClient
from gen0_policy.ros.policy_node import StatusTicks
from gen0_policy.runtime.task import WAITING_FOR_GOAL
from spinning import Spinner

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

PANDA = load_embodiment("panda")
ARM = list(PANDA.controller("joint_trajectory_controller").joints)
GRIPPER = list(PANDA.controller("gripper_controller").joints)
NODE = "/gen0_policy"
NO_SUCH_TRANSITION = 200  # refused by every lifecycle node: a harmless request


def make_checkpoint(path: Path, run: str) -> Path:
    """A real checkpoint of the tiny test-preset network for the Panda (untrained weights)."""
    import torch

    from gen0_policy.model.checkpoint import save_policy
    from gen0_policy.model.config import preset
    from gen0_policy.model.modeling import Gen0Model
    from gen0_policy.model.processor import JointStats

    torch.manual_seed(0)
    config = preset("test", language_encoder="hash")
    middle = ((PANDA.lower + PANDA.upper) / 2).astype(np.float32)
    scale = np.full(PANDA.dof, 0.05, np.float32)
    stats = {"panda": JointStats(middle, scale, middle, scale)}
    save_policy(path, Gen0Model(config).state_dict(), config, [PANDA], stats, {"run": run, "fps": 10.0})
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return make_checkpoint(root / "a", "first"), make_checkpoint(root / "b", "second")


class Probe:
    """This process's rclpy node: fake robot (clock, joint states, cameras) and listener."""

    def __init__(self, fake_robot: bool = True) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node("policy_node_probe", context=self.context)
        self.statuses: list[PolicyStatus] = []
        self.arm: list[JointTrajectory] = []
        self.gripper: list[Float64MultiArray] = []
        self.chunks: list[ActionChunk] = []
        n = self.node
        n.create_subscription(PolicyStatus, f"{NODE}/status", self.statuses.append, 50)
        n.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", self.arm.append, 50)
        n.create_subscription(Float64MultiArray, "/gripper_controller/commands", self.gripper.append, 50)
        n.create_subscription(ActionChunk, f"{NODE}/action_chunk", self.chunks.append, 10)
        self.clock_pub = n.create_publisher(Clock, "/clock", 10)
        self.joint_pub = n.create_publisher(JointState, "/joint_states", 10)
        self.image_pubs = {
            c.name: n.create_publisher(Image, f"/{c.name}/image_raw", qos_profile_sensor_data) for c in PANDA.cameras
        }
        # One client per service, created before change_state: the first answered lifecycle call
        # (see transition) then means the node knows all of them. A participant's readers are
        # announced in creation order over a reliable channel, and FastDDS drops the answer to a
        # client whose reply reader the server has not discovered (ros2/rmw_fastrtps#842).
        self.clients = {
            name: n.create_client(srv, f"{NODE}/{name}")
            for srv, name in (
                (SetInstruction, "set_instruction"),
                (LoadCheckpoint, "load_checkpoint"),
                (SetParameters, "set_parameters"),
            )
        }
        self.change_state = n.create_client(ChangeState, f"{NODE}/change_state")
        self._change_state_warm = False
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(n)
        self.spinner = Spinner(self.executor).start()
        # The fake robot, driven from its own thread: what it publishes is set by these fields.
        self.sim_time = 100.0
        self.position = PANDA.home.copy()
        self.joint_names = list(PANDA.joint_names)
        self.encoding, self.image_size, self.publishing = "rgb8", (240, 320), True
        self.clock_frozen = False  # the simulator stops publishing /clock (and everything else)
        self._stop = threading.Event()
        self.joint_states: list[JointState] = []
        self._thread = threading.Thread(target=self._robot, daemon=True)
        if fake_robot:
            self._thread.start()
        else:
            n.create_subscription(JointState, "/joint_states", self.joint_states.append, 10)

    def _robot(self) -> None:
        k = 0
        while not self._stop.is_set():
            time.sleep(0.01)
            if self.clock_frozen:
                continue
            self.sim_time += 0.01
            self.clock_pub.publish(Clock(clock=conv.to_time(self.sim_time)))
            if not self.publishing:
                continue
            arm = [t for t in self.arm[-1:]]
            if arm:  # track the arm command perfectly: the newest trajectory where it is now
                self.position[: len(ARM)] = trajectory_position(arm[0], self.sim_time)
            names = self.joint_names  # read once: the test swaps the list while this thread runs
            positions = [self.position[PANDA.joint_names.index(j)] for j in names]
            self.joint_pub.publish(conv.joint_state_msg(names, np.array(positions), stamp=self.sim_time))
            if k % 3 == 0:
                for pub in self.image_pubs.values():
                    pub.publish(self._image())
            k += 1

    def _image(self) -> Image:
        h, w = self.image_size
        msg = conv.array_to_image(np.full((h, w, 3), 90, np.uint8), stamp=self.sim_time)
        if self.encoding != "rgb8":
            msg.encoding = self.encoding
        return msg

    def warm_up(self) -> None:
        """Ask for a transition no node accepts until one is answered: a real transition, or a load,
        whose answer is lost cannot be asked again."""
        assert self.change_state.wait_for_service(timeout_sec=30), "no lifecycle service"
        if not self._change_state_warm:
            warm_up(self.change_state, ChangeState.Request(transition=Transition(id=NO_SUCH_TRANSITION)))
            self._change_state_warm = True

    def transition(self, transition_id: int) -> bool:
        self.warm_up()
        future = self.change_state.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
        wait_until(future.done, 120, what=f"lifecycle transition {transition_id}")
        return future.result().success

    def call(self, name: str, request):
        self.warm_up()
        client = self.clients[name]
        assert client.wait_for_service(timeout_sec=20)
        future = client.call_async(request)
        wait_until(future.done, 120, what=name)
        return future.result()

    def status(self, state: int, contains: str = "", timeout: float = 20.0) -> PolicyStatus:
        first = max(0, len(self.statuses) - 1)  # the current status and any published after it

        def match():
            # Short states (a hold until fresh data) can come and go between two polls: look at all of them.
            for s in self.statuses[first:]:
                if s.state == state and contains in s.reason:
                    return s
            return None

        try:
            return wait_until(match, timeout, what=f"status {state} with {contains!r}")
        except AssertionError:
            last = self.statuses[-1] if self.statuses else None
            raise AssertionError(f"last status: {last and (last.state, last.reason)}") from None

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.spinner.stop()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def probe():
    p = Probe()
    yield p
    p.close()


@pytest.fixture
def listener():
    p = Probe(fake_robot=False)
    yield p
    p.close()


def start_policy(processes, checkpoint: Path, *params: str):
    return processes.python(
        "-m", "gen0_policy.ros.policy_node", "--ros-args", "--params-file", "config/policy_node.yaml",
        "-p", f"checkpoint:={checkpoint}", "-p", "use_sim_time:=true", "-p", "max_observation_age:=0.3",
        *[arg for p in params for arg in ("-p", p)], name="policy",
    )  # fmt: skip


def trajectory_position(msg: JointTrajectory, now: float) -> np.ndarray:
    """Where a JointTrajectory puts the joints at ``now`` (linear between points; stamp 0: the last)."""
    positions = np.array([p.positions for p in msg.points])
    start = conv.to_seconds(msg.header.stamp)
    if not start:
        return positions[-1]
    times = start + np.array([conv.to_seconds(p.time_from_start) for p in msg.points])
    return np.array([np.interp(now, times, positions[:, j]) for j in range(positions.shape[1])])


def assert_horizon(msg: JointTrajectory, plan: bool = True) -> None:
    """A command horizon: stamped with its absolute start, positions and velocities at every point,
    ending at rest; a plan covers the 0.5 s command_horizon before it brakes."""
    assert conv.to_seconds(msg.header.stamp) > 0
    assert all(len(p.velocities) == len(ARM) for p in msg.points)
    assert not any(msg.points[-1].velocities)
    if plan:
        assert len(msg.points) >= 3 and conv.to_seconds(msg.points[-1].time_from_start) >= 0.5


def assert_commands_within_limits(probe: Probe) -> None:
    arm_idx = PANDA.joint_indices(ARM)
    for msg in list(probe.arm):
        assert list(msg.joint_names) == ARM
        positions = np.array([p.positions for p in msg.points])
        assert np.all(np.isfinite(positions))
        assert np.all(positions >= PANDA.lower[arm_idx] - 1e-9) and np.all(positions <= PANDA.upper[arm_idx] + 1e-9)
    grip_idx = PANDA.joint_indices(GRIPPER)
    for msg in list(probe.gripper):
        values = np.array(msg.data)
        assert values.shape == (1,) and PANDA.lower[grip_idx][0] - 1e-9 <= values[0] <= PANDA.upper[grip_idx][0] + 1e-9


def test_lifecycle_commands_and_bad_inputs_hold_with_a_reason(processes, probe, checkpoints) -> None:
    policy = start_policy(processes, checkpoints[0])
    probe.status(PolicyStatus.STATE_IDLE, "not configured", timeout=60)
    assert probe.transition(Transition.TRANSITION_CONFIGURE)
    assert probe.transition(Transition.TRANSITION_ACTIVATE)
    status = probe.status(PolicyStatus.STATE_RUNNING, timeout=60)
    assert status.checkpoint_id.startswith("first-") and status.embodiment == "panda"
    wait_until(lambda: len(probe.arm) > 50 and len(probe.gripper) > 50 and probe.chunks, 30, what="commands")
    chunk = probe.chunks[-1]
    assert list(chunk.joint_names) == list(PANDA.joint_names) and len(chunk.positions) == chunk.horizon * PANDA.dof

    # The planned future, not the next instant. On a loaded machine the fake robot's perfect tracking
    # can jump when the node's clock lags its own; the node then re-anchors with a one-point hold
    # (rightly), so wait for the plan that follows rather than judging whichever message came last.
    def newest_plan() -> JointTrajectory | None:
        newest = probe.arm[-1]
        return newest if len(newest.points) >= 3 else None

    assert_horizon(wait_until(newest_plan, 30, what="a planned horizon"))

    probe.encoding = "16UC1"  # an encoding the policy cannot use
    probe.status(PolicyStatus.STATE_HOLDING, "'16UC1' is not supported")
    probe.encoding = "rgb8"
    probe.status(PolicyStatus.STATE_RUNNING)
    probe.image_size = (100, 100)
    probe.status(PolicyStatus.STATE_HOLDING, "expected 320x240")
    probe.image_size = (240, 320)
    probe.status(PolicyStatus.STATE_RUNNING)
    probe.joint_names = list(PANDA.joint_names[:-1])  # the gripper joint is missing
    probe.status(PolicyStatus.STATE_HOLDING, "lacks joints ['finger_joint1']")
    probe.joint_names = list(PANDA.joint_names)
    probe.status(PolicyStatus.STATE_RUNNING)
    probe.position[-1] = np.nan  # the gripper (the fake robot overwrites the arm with its commands)
    probe.status(PolicyStatus.STATE_HOLDING, "not finite")
    probe.position[-1] = PANDA.home[-1]
    probe.status(PolicyStatus.STATE_RUNNING)
    probe.publishing = False
    probe.status(PolicyStatus.STATE_HOLDING, "stale observation")
    probe.publishing = True
    probe.status(PolicyStatus.STATE_RUNNING)
    probe.sim_time -= 30.0  # the simulation was reset: time goes backwards
    probe.status(PolicyStatus.STATE_HOLDING, "clock jumped backwards")
    probe.status(PolicyStatus.STATE_RUNNING)

    assert probe.transition(Transition.TRANSITION_DEACTIVATE)
    probe.status(PolicyStatus.STATE_IDLE, "deactivated")
    assert_horizon(probe.arm[-1], plan=False)  # a brake to rest
    assert probe.transition(Transition.TRANSITION_CLEANUP)
    probe.status(PolicyStatus.STATE_IDLE, "not configured")
    # Cleanup destroys the publishers while the action stream ticks on another thread (it once
    # crashed the node about one cycle in fifteen): cycle a few more times and stay up.
    for _ in range(3):
        assert probe.transition(Transition.TRANSITION_CONFIGURE)
        assert probe.transition(Transition.TRANSITION_ACTIVATE)
        probe.status(PolicyStatus.STATE_RUNNING, timeout=60)
        assert probe.transition(Transition.TRANSITION_DEACTIVATE)
        assert probe.transition(Transition.TRANSITION_CLEANUP)
        probe.status(PolicyStatus.STATE_IDLE, "not configured")
    assert policy.poll() is None, processes.output(policy)
    assert_commands_within_limits(probe)


def test_configure_adds_nothing_that_cleanup_can_pull_out_of_a_wait_set(checkpoints) -> None:
    """The node died of InvalidHandle under the fuzz test: cleanup, on a worker thread, destroyed a
    subscription whose QoS event handler the spinning thread was putting into a wait set, and rclpy
    adds event handlers without checking them (ros2/rclpy#1284; subscriptions and timers it checks).
    So what configure creates must add no event handler, no waitable, to the node."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from gen0_policy.ros.policy_node import PolicyNode

    rclpy.init(args=["--ros-args", "-p", f"checkpoint:={checkpoints[0]}"])
    node = PolicyNode()
    try:
        before = list(node.waitables)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert len(node._entities) == len(PANDA.cameras) + 4  # cameras, joints, chunks, two controllers
        assert list(node.waitables) == before
        assert all(not entity.event_handlers for entity in node._entities)
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert list(node.waitables) == before and not node._entities
    finally:
        node.destroy_node()
        rclpy.shutdown()


def test_services_hot_swap_and_run_task(processes, probe, checkpoints) -> None:
    # This test's clock is the probe's /clock thread: on a loaded machine it once paused for a second,
    # which the node rightly reports as a fault; frozen clocks have their own test.
    policy = start_policy(
        processes, checkpoints[0], "autostart:=true", "instruction:=reach the cube", "clock_stall_timeout:=5.0"
    )
    status = probe.status(PolicyStatus.STATE_RUNNING, timeout=90)
    assert status.instruction == "reach the cube"
    reply = probe.call("set_instruction", SetInstruction.Request(instruction="open the gripper"))
    assert reply.success
    wait_until(lambda: probe.statuses[-1].instruction == "open the gripper", 10, what="instruction")

    reply = probe.call("load_checkpoint", LoadCheckpoint.Request(path="/no/such/checkpoint"))
    assert not reply.success and "no checkpoint" in reply.message and reply.checkpoint_id.startswith("first-")
    count = len(probe.arm)
    reply = probe.call("load_checkpoint", LoadCheckpoint.Request(path=str(checkpoints[1])))
    assert reply.success and reply.checkpoint_id.startswith("second-") and reply.load_time > 0
    wait_until(lambda: probe.statuses[-1].checkpoint_id.startswith("second-"), 20, what="swap")
    assert len(probe.arm) > count  # commands kept flowing through the load

    client = ThreadSafeActionClient(probe.node, RunTask, f"{NODE}/run_task")
    assert client.wait_for_server(timeout_sec=20)
    feedback: list = []
    goal = client.send_goal_async(RunTask.Goal(instruction="reach the cube", timeout=1.0), feedback.append)
    wait_until(goal.done, 20, what="goal accepted")
    result = goal.result().get_result_async()
    wait_until(result.done, 30, what="task result")
    outcome = result.result().result
    assert outcome.outcome == RunTask.Goal.OUTCOME_TIMED_OUT and outcome.duration >= 1.0
    assert any(f.feedback.policy_state == PolicyStatus.STATE_RUNNING for f in feedback)  # a loaded CI may stall
    assert policy.poll() is None, processes.output(policy)
    assert_commands_within_limits(probe)


def test_configure_fails_clearly_without_a_checkpoint(processes, probe) -> None:
    processes.python("-m", "gen0_policy.ros.policy_node", "--ros-args", "-p", "embodiment:=panda", name="policy")
    probe.status(PolicyStatus.STATE_IDLE, "not configured", timeout=60)
    assert not probe.transition(Transition.TRANSITION_CONFIGURE)
    probe.status(PolicyStatus.STATE_FAULT, "parameter 'checkpoint' is empty")


def test_a_task_heard_before_configure_gives_its_instruction_at_once(processes, probe, checkpoints) -> None:
    """The sim's /task_status came before configure; the node used to take its instruction only from the
    next one, so under load (a sim slowed by its cameras) it acted on its first chunks with none."""
    start_policy(processes, checkpoints[0])
    probe.status(PolicyStatus.STATE_IDLE, "not configured", timeout=60)
    tasks = probe.node.create_publisher(TaskStatus, "/task_status", 10)
    wait_until(lambda: tasks.get_subscription_count() > 0, 30, what="the node to subscribe to /task_status")
    for _ in range(5):  # then silence: no task status after configure
        tasks.publish(TaskStatus(task="reach", instruction="reach the red target"))
        time.sleep(0.05)
    time.sleep(0.5)
    assert probe.transition(Transition.TRANSITION_CONFIGURE)
    wait_until(lambda: probe.statuses and probe.statuses[-1].instruction == "reach the red target", 20,
               what="the task's instruction in the configured node's status")  # fmt: skip


@pytest.mark.slow
def test_bringup_sim_closes_the_loop_through_ros(processes, listener, checkpoints) -> None:
    """`gen0 bringup sim`: the MuJoCo sim node and the policy node as separate processes, on sim time."""
    bringup = processes.python(
        "-m", "gen0_policy.cli", "bringup", "sim", "--embodiment", "panda", "--task", "reach",
        "--checkpoint", str(checkpoints[0]), name="bringup",
    )  # fmt: skip
    status = listener.status(PolicyStatus.STATE_RUNNING, timeout=120)
    assert status.instruction  # taken from the sim's task status
    wait_until(lambda: len(listener.arm) > 100 and len(listener.joint_states) > 100, 60, what="closed loop")
    # The sim starts at home and moves only when commanded. This untrained network commands about
    # the middle of the joint range, so the arm ends away from home, where the commands point. The
    # first joint state this probe hears can come after the arm got there, so home, not it, is the
    # reference (comparing with the first one heard failed whenever discovery was slow).
    arm_idx = PANDA.joint_indices(ARM)

    def arm_follows_the_policy() -> bool:
        arm = conv.joint_state_positions(listener.joint_states[-1], PANDA.joint_names)[arm_idx]
        commanded = np.array(listener.arm[-1].points[0].positions)
        away = np.abs(arm - PANDA.home[arm_idx]).max() > 0.1
        return away and np.abs(arm - commanded).max() < 0.02

    wait_until(arm_follows_the_policy, 30, what="the simulated arm to move from home to the policy's commands")
    assert_commands_within_limits(listener)
    assert bringup.poll() is None, processes.output(bringup)


def test_bringup_uses_the_launch_files_parameter_files_and_refuses_a_missing_checkpoint(tmp_path) -> None:
    from gen0_policy.cli import main as gen0

    with pytest.raises(SystemExit):
        gen0(["bringup", "sim", "--help"])
    assert gen0(["bringup", "sim", "--checkpoint", str(tmp_path / "none")]) == 2
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = gen0(["bringup", "sim", "--checkpoint", str(tmp_path), "--embodiment", "ur5e", "--print-only"])
    sim, policy = out.getvalue().strip().splitlines()
    assert code == 0 and "gen0_policy.ros.sim_node" in sim and "config/sim_node.yaml" in sim
    assert "-p embodiment:=ur5e" in sim and "task:=" not in sim  # empty task: the file's default
    assert "config/policy_node.yaml" in policy and "-p use_sim_time:=true -p autostart:=true" in policy
    assert f"checkpoint:={tmp_path}" in policy


def status_gaps(probe: Probe, since: int) -> float:
    """Longest gap (s, header stamps on the node's clock) between statuses after index ``since``."""
    stamps = [conv.to_seconds(s.header.stamp) for s in probe.statuses[since:]]
    return float(np.max(np.diff(stamps))) if len(stamps) > 1 else float("inf")


def test_invalid_transitions_and_parameters_are_refused_and_the_node_lives(processes, probe, checkpoints) -> None:
    """Issue 13 (1, 7): a change_state by an id invalid in the current state killed the node
    (RCLError escaped rclpy's service callback); status_rate 0 passed configure and crashed it."""
    policy = start_policy(processes, checkpoints[0], "status_rate:=0.0")
    probe.status(PolicyStatus.STATE_IDLE, "not configured", timeout=60)
    assert not probe.transition(Transition.TRANSITION_ACTIVATE)  # unconfigured: no activate
    assert not probe.transition(Transition.TRANSITION_CONFIGURE)
    probe.status(PolicyStatus.STATE_FAULT, "status_rate must be in [2, 1000]")
    assert not probe.transition(Transition.TRANSITION_ACTIVATE)  # after a failed configure
    assert not probe.transition(NO_SUCH_TRANSITION)
    reply = probe.call("set_parameters", SetParameters.Request(parameters=[rate(20.0)]))
    assert reply.results[0].successful
    assert probe.transition(Transition.TRANSITION_CONFIGURE)
    assert probe.transition(Transition.TRANSITION_ACTIVATE)
    assert not probe.transition(Transition.TRANSITION_ACTIVATE)  # already active
    assert not probe.transition(Transition.TRANSITION_CONFIGURE)
    probe.status(PolicyStatus.STATE_RUNNING, timeout=60)
    probe.clock_frozen = True  # a frozen /clock silenced the status (its timer ran on sim time)
    probe.status(PolicyStatus.STATE_FAULT, "clock has not advanced", timeout=10)
    probe.clock_frozen = False
    probe.status(PolicyStatus.STATE_RUNNING, timeout=30)
    assert policy.poll() is None, processes.output(policy)


def test_an_uncertainty_calibration_file_sets_the_signal_and_threshold(processes, probe, checkpoints, tmp_path) -> None:
    """The node's uncertainty_calibration: a missing file fails configure with what to do; a file's
    signal and threshold replace the parameters, and the node holds on them and says which."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue

    from gen0_policy.runtime.uncertainty import Calibration

    start_policy(processes, checkpoints[0], f"uncertainty_calibration:={tmp_path / 'missing.json'}")
    probe.status(PolicyStatus.STATE_IDLE, "not configured", timeout=60)
    assert not probe.transition(Transition.TRANSITION_CONFIGURE)
    probe.status(PolicyStatus.STATE_FAULT, "does not exist")
    # The node's num_samples is 1; the file's signal needs 2, so it must be raised or nothing is measured.
    path = Calibration("sample_spread", 1e-6, num_samples=2).save(tmp_path / "calibration.json")
    value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(path))
    request = SetParameters.Request(parameters=[Parameter(name="uncertainty_calibration", value=value)])
    assert probe.call("set_parameters", request).results[0].successful
    assert probe.transition(Transition.TRANSITION_CONFIGURE)
    assert probe.transition(Transition.TRANSITION_ACTIVATE)
    status = probe.status(PolicyStatus.STATE_UNCERTAIN, "(sample_spread)", timeout=60)
    assert status.uncertainty_threshold == pytest.approx(1e-6) and status.uncertainty > 1e-6
    assert status.uncertainty_signal == "sample_spread"  # a field, not only words in the reason


def rate(value: float):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue

    return Parameter(name="status_rate", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))


def test_status_ticks_on_several_threads_complete_every_future_a_waiter_picked_up() -> None:
    """The status timer is reentrant: two ticks at once swapped the next-tick future without a lock,
    and a run_task goal that picked up the orphaned one never ended (CI, once, after a hot swap)."""
    ticks, handed, stop = StatusTicks(), [], threading.Event()

    def waiter() -> None:  # what a goal's coroutine does between its checks
        while not stop.is_set():
            handed.append(ticks.next())

    def timer() -> None:
        for _ in range(20000):
            ticks.tick()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as a loaded machine might
    try:
        threads = [threading.Thread(target=waiter), *(threading.Thread(target=timer) for _ in range(3))]
        for thread in threads:
            thread.start()
        for thread in threads[1:]:
            thread.join()
        stop.set()
        threads[0].join()
    finally:
        sys.setswitchinterval(interval)
    current = ticks.next()
    orphans = sum(f is not current and not f.done() for f in set(handed))
    assert len(handed) > 1000 and orphans == 0, f"{orphans} futures picked up and never completed"


def test_bursts_of_goals_and_requests_are_all_answered_and_never_wedge_the_node(processes, probe, checkpoints) -> None:
    """Issue 13 (2, 8, 10): five concurrent run_task goals held all four executor threads for good;
    bursts of more than ten requests lost the excess unanswered; concurrent loads blocked the executor;
    negative or NaN timeouts never ended."""
    policy = start_policy(processes, checkpoints[0], "autostart:=true")
    probe.status(PolicyStatus.STATE_RUNNING, timeout=90)
    client = ThreadSafeActionClient(probe.node, RunTask, f"{NODE}/run_task")
    assert client.wait_for_server(timeout_sec=20)
    since = len(probe.statuses)
    goals = [client.send_goal_async(RunTask.Goal(instruction="reach the cube", timeout=2.0)) for _ in range(5)]
    bad = [client.send_goal_async(RunTask.Goal(timeout=t)) for t in (-1.0, float("nan"), float("-inf"))]
    wait_until(lambda: all(g.done() for g in goals + bad), 20, what="every goal answered")
    accepted = [g.result() for g in goals if g.result().accepted]
    assert len(accepted) == 1 and not any(g.result().accepted for g in bad)
    # One client per service, each warmed up with an answered request first: FastDDS silently drops a
    # response to a client whose response reader the service has not discovered yet, however long
    # wait_for_service waited (ros2/rmw_fastrtps#842). The burst itself must lose nothing.
    loader = probe.node.create_client(LoadCheckpoint, f"{NODE}/load_checkpoint", qos_profile=QoSProfile(depth=100))
    setter = probe.node.create_client(SetInstruction, f"{NODE}/set_instruction", qos_profile=QoSProfile(depth=100))
    warm_up(loader, LoadCheckpoint.Request(path="/nonexistent"))
    warm_up(setter, SetInstruction.Request(instruction="reach the cube"))
    replies = [loader.call_async(LoadCheckpoint.Request(path=str(checkpoints[1]))) for _ in range(12)]
    instructions = [setter.call_async(SetInstruction.Request(instruction=f"task {i}")) for i in range(20)]
    try:
        wait_until(lambda: all(f.done() for f in replies + instructions), 60, what="every request answered")
    except AssertionError as exc:
        lost = [f"load {i}" for i, f in enumerate(replies) if not f.done()]
        lost += [f"instruction {i}" for i, f in enumerate(instructions) if not f.done()]
        raise AssertionError(f"{exc}; unanswered: {', '.join(lost)}") from None
    assert all(f.result().success for f in instructions)
    assert sum(f.result().success for f in replies) >= 1
    assert all(f.result().success or "busy" in f.result().message for f in replies)
    result = accepted[0].get_result_async()
    try:
        wait_until(result.done, 30, what="the accepted goal's result")
    except AssertionError as exc:  # seen once in CI: say what the node was doing
        raise AssertionError(f"{exc}; the node's threads:\n{processes.stacks(policy)}") from None
    assert result.result().result.outcome == RunTask.Goal.OUTCOME_TIMED_OUT
    # The executor kept publishing status through all of it: loads that blocked it left gaps as long as the
    # loads; the 1 s target for status gaps is the fuzz benchmark's, on a quiet machine (CI is not).
    assert status_gaps(probe, since) < 3.0
    again = client.send_goal_async(RunTask.Goal(instruction="reach the cube", timeout=0.5))
    wait_until(again.done, 20, what="a new goal after the first ended")
    assert again.result().accepted
    # What happened is in the node's log too (issue 17): state changes, the task's end, the hot swap.
    log = processes.output(policy)
    assert "state: running" in log and "task 'reach the cube' ended: timed_out after" in log, log[-3000:]
    wait_until(lambda: "hot swap: now running" in processes.output(policy), 30, what="the hot swap in the log")
    assert policy.poll() is None, processes.output(policy)


def test_activation_cycles_do_not_multiply_commands_and_inactive_means_silent(processes, probe, checkpoints) -> None:
    """Issue 13 (4): every activate added an action-stream timer that deactivate never removed (61 ->
    281 Hz after ten cycles), and the node kept commanding while inactive."""
    policy = start_policy(processes, checkpoints[0])
    probe.status(PolicyStatus.STATE_IDLE, "not configured", timeout=60)
    assert probe.transition(Transition.TRANSITION_CONFIGURE)

    def commands_per_sim_second(seconds: float = 1.0) -> float:
        count, start = len(probe.arm), probe.sim_time
        time.sleep(seconds)
        return (len(probe.arm) - count) / (probe.sim_time - start)

    for _ in range(6):
        assert probe.transition(Transition.TRANSITION_ACTIVATE)
        assert probe.transition(Transition.TRANSITION_DEACTIVATE)
    assert probe.transition(Transition.TRANSITION_ACTIVATE)
    probe.status(PolicyStatus.STATE_RUNNING, timeout=60)
    assert commands_per_sim_second(2.0) < 110  # control_rate_hz 100, however many cycles before
    assert probe.transition(Transition.TRANSITION_DEACTIVATE)
    # Braking to rest takes a fraction of a sim second; on a loaded machine sim time runs slow.
    wait_until(lambda: commands_per_sim_second(0.5) == 0, 30, what="silence after braking to rest")
    assert commands_per_sim_second() == 0
    assert policy.poll() is None, processes.output(policy)


def test_a_task_driven_node_stands_still_until_its_first_goal(processes, probe, checkpoints) -> None:
    """With act_on_activate false the activated node sends nothing until a run_task goal: a client that
    resets the scene and then sends a goal (gen0 demo, the closed-loop benchmark) saw its first episode
    begin with half a second of motion planned for another instruction, then a restart mid-motion."""
    policy = start_policy(processes, checkpoints[0], "autostart:=true", "act_on_activate:=false")
    waiting = probe.status(PolicyStatus.STATE_IDLE, WAITING_FOR_GOAL, timeout=90)
    assert waiting.reason == WAITING_FOR_GOAL and waiting.awaiting_goal  # what clients read, not the words
    time.sleep(1.0)  # observations flow all this time
    assert not probe.arm and not probe.gripper and probe.statuses[-1].state == PolicyStatus.STATE_IDLE

    client = ThreadSafeActionClient(probe.node, RunTask, f"{NODE}/run_task")
    assert client.wait_for_server(timeout_sec=20)
    goal = client.send_goal_async(RunTask.Goal(instruction="reach the cube", timeout=1.0))
    wait_until(goal.done, 20, what="goal accepted")
    result = goal.result().get_result_async()
    wait_until(result.done, 30, what="task result")
    assert result.result().result.outcome == RunTask.Goal.OUTCOME_TIMED_OUT
    assert probe.arm, "the goal ran no commands"
    probe.status(PolicyStatus.STATE_IDLE, "waiting for the next run_task goal")  # and after it, still again
    wait_until(lambda: probe.statuses[-1].awaiting_goal, 20, what="at rest, awaiting the next goal")
    assert policy.poll() is None, processes.output(policy)
