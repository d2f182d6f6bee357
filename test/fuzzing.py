"""Attacks on a running policy node and the oracles that judge it, shared by the fuzz tests
(test/test_fuzz_policy_node.py, short) and the fuzz benchmark (benchmarks/fuzz_benchmark.py, long).

An attack is a plain tuple drawn by hypothesis; ``Attacker.apply`` turns it into messages, service and
action calls, parameter changes and lifecycle transitions. ``Oracle`` reads everything the node sends:
every command finite, inside the position limits and no faster than the velocity limit over the time
its ``time_from_start`` gives the controller; every hold or fault with a reason; every request answered."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from discovery import first_answer, warm_up
from gen0_msgs.action import RunTask
from gen0_msgs.msg import PolicyStatus, TaskStatus
from gen0_msgs.srv import LoadCheckpoint, SetInstruction
from gen0_policy.embodiment import load_embodiment
from gen0_policy.ros import conversions as conv
from gen0_policy.ros.action_client import ThreadSafeActionClient
from spinning import Spinner

PANDA = load_embodiment("panda")
ARM = list(PANDA.controller("joint_trajectory_controller").joints)
ARM_INDEX = PANDA.joint_indices(ARM)
NODE = "/gen0_policy"
DEEP = QoSProfile(depth=1000)  # no command may be lost to the probe: a lost one hides a step
SPEED_TOLERANCE = 1.05  # the bar: at most 1.05x the velocity limit over the elapsed time

DEFAULTS = {  # config/policy_node.yaml and the fuzzed node's start parameters: what recovery restores
    "status_rate": 10.0, "control_rate_hz": 100.0, "max_observation_age": 0.3, "uncertainty_threshold": 0.0,
    "num_samples": 1, "worker_timeout": 2.0, "limit_scale": 1.0, "resync_tolerance": 1.0, "replan_period": 0.0,
    "uncertain_timeout": 2.0, "output_mode": "joint_trajectory", "mode": "harmonic", "embodiment": "panda",
    "synchronize_joints": True, "novelty_threshold": 5.0,
}  # fmt: skip

# ---------------------------------------------------------------- strategies
bad_floats = st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, 0.0])
offsets = st.one_of(st.floats(-1.0, 1.0), bad_floats)
stamps = st.one_of(st.just(("now", 0.0)), st.tuples(st.just("rel"), st.floats(-3.0, 3.0)), st.just(("zero", 0.0)))
name_sets = st.sampled_from(["ordered", "shuffled", "duplicate", "missing", "extra", "empty", "many"])
joint_states = st.tuples(
    st.just("joints"), name_sets, st.dictionaries(st.integers(0, PANDA.dof - 1), offsets, max_size=3), stamps,
    st.booleans(),  # positions length matches the names
)  # fmt: skip
images = st.tuples(
    st.just("image"), st.sampled_from([c.name for c in PANDA.cameras]),
    st.sampled_from(["rgb8", "bgr8", "mono8", "rgba8", "16UC1", "", "junk"]),
    st.sampled_from([(240, 320), (0, 0), (1, 1), (48, 64), (320, 240)]),
    st.sampled_from(["exact", "short", "long", "bad_step"]), stamps,
)  # fmt: skip
task_statuses = st.tuples(st.just("task"), st.booleans(), st.text(max_size=30), stamps)
clocks = st.tuples(st.just("clock"), st.floats(-50.0, 50.0))
topic_attacks = st.one_of(joint_states, joint_states, images, task_statuses, clocks)

paths = st.sampled_from(["good", "other", "", "/etc/passwd", "/nonexistent/ckpt", "/tmp", "self_latest"])
service_attacks = st.one_of(
    st.tuples(st.just("load"), paths),
    st.tuples(st.just("instruction"), st.one_of(st.text(max_size=60), st.just("x" * 100_000))),
    st.tuples(st.just("burst"), st.integers(5, 30)),
)
timeouts = st.sampled_from([math.nan, -1.0, -math.inf, math.inf, 0.0, 0.3, 1e9])
action_attacks = st.one_of(
    st.tuples(st.just("goal"), timeouts, st.text(max_size=30)),
    st.tuples(st.just("goals"), st.integers(2, 8)),
    st.tuples(st.just("cancel"), st.booleans()),
)
PARAMETER_NAMES = [
    "status_rate", "control_rate_hz", "max_observation_age", "uncertainty_threshold", "num_samples", "worker_timeout",
    "limit_scale", "resync_tolerance", "replan_period", "uncertain_timeout", "output_mode", "mode", "checkpoint",
    "embodiment", "synchronize_joints", "novelty_threshold", "no_such_parameter",
]  # fmt: skip
parameter_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 0.5, 1e9]),
    st.integers(-(2**40), 2**40), st.booleans(), st.text(max_size=20),
)  # fmt: skip
parameter_attacks = st.tuples(st.just("parameter"), st.sampled_from(PARAMETER_NAMES), parameter_values)
TRANSITION_LABELS = ["configure", "activate", "deactivate", "cleanup", "junk", ""]
lifecycle_attacks = st.one_of(
    st.tuples(st.just("transition"), st.sampled_from([1, 2, 3, 4, 0, 8, 9, 10, 11, 12, 20, 99, 255])),
    st.tuples(st.just("transition"), st.integers(0, 255).filter(lambda i: i not in (5, 6, 7))),  # not shutdown
    st.tuples(st.just("label"), st.sampled_from(TRANSITION_LABELS)),
)
any_attack = st.one_of(topic_attacks, service_attacks, action_attacks, parameter_attacks, lifecycle_attacks)


# ---------------------------------------------------------------- oracle
@dataclass
class Oracle:
    """Judges everything the node sends; ``violations`` says what broke and ``counts`` what was seen."""

    violations: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    max_speed_ratio: float = 0.0  # the fastest command seen, as a multiple of the velocity limit
    # The largest change of command velocity, as a multiple of the acceleration limit: reported, not judged
    # (a command repeated while sim time stands still reads as a stop and a restart).
    max_acceleration_ratio: float = 0.0
    _velocity: np.ndarray | None = None
    max_status_gap: float = 0.0  # s (wall) between two statuses received
    # The longest gaps, as (seconds, monotonic time of the status that ended it, state before, state after):
    # with the attacks of that window (Attacker.history) they say what silenced the status.
    status_gaps: list[tuple[float, float, int, int]] = field(default_factory=list)
    _last_status: float | None = None
    _last_state: int = -1
    _previous: np.ndarray | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def new_runtime(self) -> None:
        """A configure made a new runtime, which starts from the measured position: no previous command."""
        with self._lock:
            self._previous = self._velocity = None

    def on_arm(self, msg: JointTrajectory) -> None:
        with self._lock:
            self.count("commands")
            if list(msg.joint_names) != ARM or not msg.points:
                return self._violate(f"malformed command for {list(msg.joint_names)} with {len(msg.points)} points")
            if len(msg.points) > 1:
                return self._check_horizon(msg)
            positions = np.array(msg.points[0].positions)
            if positions.shape != (len(ARM),) or not np.all(np.isfinite(positions)):
                return self._violate(f"non-finite command {positions}")
            lower, upper = PANDA.lower[ARM_INDEX], PANDA.upper[ARM_INDEX]
            if np.any(positions < lower - 1e-9) or np.any(positions > upper + 1e-9):
                return self._violate(f"command outside the position limits: {positions}")
            reach = conv.to_seconds(msg.points[0].time_from_start)
            if self._previous is not None:
                speed = np.abs(positions - self._previous) / max(reach, 1e-9)
                ratio = float(np.max(speed / PANDA.velocity_limits[ARM_INDEX]))
                self.max_speed_ratio = max(self.max_speed_ratio, ratio)
                if ratio > SPEED_TOLERANCE:
                    self._violate(f"over-speed command: {ratio:.2f}x the velocity limit over {reach} s")
                velocity = (positions - self._previous) / max(reach, 1e-9)
                if self._velocity is not None:
                    change = np.abs(velocity - self._velocity) / max(reach, 1e-9)
                    accel = float(np.max(change / PANDA.acceleration_limits[ARM_INDEX]))
                    self.max_acceleration_ratio = max(self.max_acceleration_ratio, accel)
                self._velocity = velocity
            self._previous = positions

    def _check_horizon(self, msg: JointTrajectory) -> None:
        """A command horizon (the planned future, runtime/horizon.py): every point finite and within the
        position limits, every point's velocity and every step between points within the velocity limit."""
        self.count("horizons")
        positions = np.array([p.positions for p in msg.points], dtype=np.float64)
        times = np.array([conv.to_seconds(p.time_from_start) for p in msg.points])
        velocities = np.array([p.velocities for p in msg.points if len(p.velocities)], dtype=np.float64)
        if positions.shape != (len(msg.points), len(ARM)) or not np.all(np.isfinite(positions)):
            return self._violate(f"non-finite or ragged horizon of shape {positions.shape}")
        lower, upper = PANDA.lower[ARM_INDEX], PANDA.upper[ARM_INDEX]
        if np.any(positions < lower - 1e-9) or np.any(positions > upper + 1e-9):
            return self._violate("horizon outside the position limits")
        limit = PANDA.velocity_limits[ARM_INDEX]
        if np.any(np.diff(times) <= 0):
            return self._violate(f"horizon times not increasing: {times}")
        steps = np.abs(np.diff(positions, axis=0)) / np.diff(times)[:, None]
        ratio = float(np.max(steps / limit)) if len(steps) else 0.0
        if len(velocities):
            ratio = max(ratio, float(np.max(np.abs(velocities) / limit)))
        self.max_speed_ratio = max(self.max_speed_ratio, ratio)
        if ratio > SPEED_TOLERANCE:
            self._violate(f"over-speed horizon: {ratio:.2f}x the velocity limit")
        self._previous = self._velocity = None  # the controller splices horizons; the next point stream starts anew

    def on_status(self, msg: PolicyStatus) -> None:
        now = time.monotonic()
        if self._last_status is not None:
            gap = now - self._last_status
            self.max_status_gap = max(self.max_status_gap, gap)
            if gap > 0.5:
                gaps = [*self.status_gaps, (gap, now, self._last_state, msg.state)]
                self.status_gaps = sorted(gaps, reverse=True)[:5]
        self._last_status, self._last_state = now, msg.state
        holding = msg.state in (PolicyStatus.STATE_HOLDING, PolicyStatus.STATE_FAULT, PolicyStatus.STATE_UNCERTAIN)
        if holding and not msg.reason:
            with self._lock:
                self._violate(f"status {msg.state} without a reason")

    def _violate(self, what: str) -> None:
        self.count("violations")
        if len(self.violations) < 20:
            self.violations.append(what)


# ---------------------------------------------------------------- attacker
class Attacker:
    """Applies attacks through ``probe`` (test_ros_policy_node.Probe: a fake robot on sim time)."""

    def __init__(self, probe, oracle: Oracle, checkpoints: dict[str, str], answer_timeout: float = 10.0) -> None:
        self.probe, self.oracle, self.checkpoints, self.answer_timeout = probe, oracle, checkpoints, answer_timeout
        n = probe.node
        n.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", oracle.on_arm, DEEP)
        n.create_subscription(PolicyStatus, f"{NODE}/status", oracle.on_status, DEEP)
        self.task_pub = n.create_publisher(TaskStatus, "/task_status", 10)
        self.clients = {
            name: n.create_client(srv, f"{NODE}/{name}", qos_profile=DEEP)
            for name, srv in [
                ("load_checkpoint", LoadCheckpoint), ("set_instruction", SetInstruction),
                ("set_parameters", SetParameters), ("change_state", ChangeState), ("get_state", GetState),
            ]
        }  # fmt: skip
        self.action = ThreadSafeActionClient(  # deep queues here too: a burst of answers must not be lost to us
            n, RunTask, f"{NODE}/run_task", goal_service_qos_profile=DEEP, result_service_qos_profile=DEEP,
            cancel_service_qos_profile=DEEP,
        )  # fmt: skip
        self.goals: list = []
        self.pending: list[tuple[str, object, float]] = []  # (what, future, deadline)
        self.history: deque[tuple[float, tuple]] = deque(maxlen=5000)  # (monotonic time, attack): the recent ones
        self.status_rates: list[tuple[float, object]] = []  # (monotonic time, value) of each accepted status_rate

    def warm_up(self) -> None:
        """Before any attack (discovery.py): ask for the node's state, whose client is created after the
        other services', and send a goal it refuses at once (a negative timeout), until answered;
        otherwise a discovery race would count as a request never answered."""
        assert self.action.wait_for_server(timeout_sec=30), "no run_task action server"
        warm_up(self.clients["get_state"], GetState.Request(), service_timeout=30)
        first_answer(lambda: self.action.send_goal_async(RunTask.Goal(timeout=-1.0)), "run_task")

    # --- plumbing
    def _stamp(self, stamp: tuple[str, float]) -> float:
        kind, value = stamp
        return {"now": self.probe.sim_time, "rel": self.probe.sim_time + value, "zero": 0.0}[kind]

    def call(self, name: str, request, wait: bool = True):
        client = self.clients[name]
        if not client.wait_for_service(timeout_sec=self.answer_timeout):
            self.oracle._violate(f"service {name} not available")
            return None
        future = client.call_async(request)
        self.oracle.count("requests")
        self.pending.append((name, future, time.monotonic() + self.answer_timeout))
        if wait:
            self.settle()
        return future

    def settle(self) -> None:
        """Every request sent so far must be answered within answer_timeout."""
        for name, future, deadline in self.pending:
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            if not future.done():
                self.oracle._violate(f"{name} request never answered")
        self.pending = []

    def state(self) -> str:
        future = self.call("get_state", GetState.Request())
        return future.result().current_state.label if future is not None and future.done() else ""

    def transition(self, transition_id: int = 0, label: str = "") -> bool:
        future = self.call("change_state", ChangeState.Request(transition=Transition(id=transition_id, label=label)))
        ok = future is not None and future.done() and future.result().success
        if ok and (transition_id == Transition.TRANSITION_CONFIGURE or label == "configure"):
            self.oracle.new_runtime()
        return ok

    # --- attacks
    def apply(self, attack: tuple) -> None:
        self.oracle.count(f"attack_{attack[0]}")
        self.history.append((time.monotonic(), attack))
        getattr(self, f"_{attack[0]}")(*attack[1:])

    def _joints(self, names: str, offsets: dict, stamp, matching: bool) -> None:
        base = {j: float(self.probe.position[i]) for i, j in enumerate(PANDA.joint_names)}
        for i, delta in offsets.items():
            base[PANDA.joint_names[i]] += delta
        joints = list(PANDA.joint_names)
        order = {
            "ordered": joints, "shuffled": joints[::-1], "duplicate": [*joints, joints[0]],
            "missing": joints[1:], "extra": [*joints, "junk"], "empty": [], "many": [f"j{i}" for i in range(2000)],
        }[names]  # fmt: skip
        values = [base.get(j, 0.0) + (0.46 if k == len(joints) else 0.0) for k, j in enumerate(order)]
        msg = JointState(name=order, position=values if matching else values[:-1] if values else [1.0])
        msg.header.stamp = _time_msg(self._stamp(stamp))
        self.probe.joint_pub.publish(msg)

    def _image(self, camera: str, encoding: str, size, data: str, stamp) -> None:
        h, w = size
        channels = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "16UC1": 2}.get(encoding, 3)
        step = w * channels + (3 if data == "bad_step" else 0)
        n = {"exact": step * h, "short": max(0, step * h - 1), "long": step * h + 10, "bad_step": step * h}[data]
        msg = Image(height=h, width=w, encoding=encoding, step=step if data != "bad_step" else max(0, step - 6))
        msg.data = bytes(n)
        msg.header.stamp = _time_msg(self._stamp(stamp))
        self.probe.image_pubs[camera].publish(msg)

    def _task(self, success: bool, instruction: str, stamp) -> None:
        msg = TaskStatus(task="fuzz", instruction=instruction, success=success)
        msg.header.stamp = _time_msg(self._stamp(stamp))
        self.task_pub.publish(msg)

    def _clock(self, offset: float) -> None:
        self.probe.clock_pub.publish(Clock(clock=_time_msg(self.probe.sim_time + offset)))

    def _load(self, path: str) -> None:
        self.call("load_checkpoint", LoadCheckpoint.Request(path=self.checkpoints.get(path, path)))

    def _instruction(self, text: str) -> None:
        self.call("set_instruction", SetInstruction.Request(instruction=text))

    def _burst(self, n: int) -> None:
        for i in range(n):
            kind = i % 3
            if kind == 0:
                self.call("set_instruction", SetInstruction.Request(instruction=f"burst {i}"), wait=False)
            elif kind == 1:
                self.call("load_checkpoint", LoadCheckpoint.Request(path=self.checkpoints["good"]), wait=False)
            else:
                self.call("get_state", GetState.Request(), wait=False)
        self.settle()

    def _goal(self, timeout: float, instruction: str) -> None:
        if not self.action.wait_for_server(timeout_sec=self.answer_timeout):
            return self.oracle._violate("run_task server not available")
        future = self.action.send_goal_async(RunTask.Goal(instruction=instruction, timeout=timeout))
        self.oracle.count("requests")
        self.pending.append(("run_task goal", future, time.monotonic() + self.answer_timeout))
        self.settle()
        if future.done() and future.result().accepted:
            self.goals.append(future.result())

    def _goals(self, n: int) -> None:
        futures = [self.action.send_goal_async(RunTask.Goal(instruction="reach", timeout=0.5)) for _ in range(n)]
        self.pending += [("run_task goal", f, time.monotonic() + self.answer_timeout) for f in futures]
        self.oracle.count("requests", n)
        self.settle()
        self.goals += [f.result() for f in futures if f.done() and f.result().accepted]

    def _cancel(self, everything: bool) -> None:
        for handle in self.goals if everything else self.goals[-1:]:
            self.pending.append(("run_task cancel", handle.cancel_goal_async(), time.monotonic() + self.answer_timeout))
        self.settle()
        self.goals = self.goals[-20:]  # cancelling long-finished goals again and again tests nothing new

    def _parameter(self, name: str, value) -> None:
        future = self.call("set_parameters", SetParameters.Request(parameters=[_parameter(name, value)]))
        if name == "status_rate" and future is not None and future.done() and future.result().results[0].successful:
            self.status_rates.append((time.monotonic(), value))  # takes effect at the next configure

    def status_rate_before(self, t: float) -> object:
        """The status_rate last set before monotonic time ``t`` (None: never set)."""
        return next((v for when, v in reversed(self.status_rates) if when <= t), None)

    def _transition(self, transition_id: int) -> None:
        self.transition(transition_id=transition_id)

    def _label(self, label: str) -> None:
        self.transition(label=label)

    def around(self, start: float, end: float) -> list[str]:
        """The attacks applied between monotonic times ``start`` and ``end``, shortened for a report."""
        return [f"{t - start:+.2f} s {str(attack)[:80]}" for t, attack in self.history if start <= t <= end]

    # --- recovery
    def recover(self, defaults: dict[str, object], timeout: float = 30.0) -> float:
        """Good parameters, good input, configure and activate as needed: seconds until RUNNING."""
        self.probe.publishing = True
        for name, value in defaults.items():
            self._parameter(name, value)
        started = time.monotonic()
        state = self.state()
        if state == "active":
            self.transition(Transition.TRANSITION_DEACTIVATE)
            state = "inactive"
        if state == "inactive":
            self.transition(Transition.TRANSITION_CLEANUP)
        self.transition(Transition.TRANSITION_CONFIGURE)
        self.transition(Transition.TRANSITION_ACTIVATE)
        self.probe.status(PolicyStatus.STATE_RUNNING, timeout=timeout)
        return time.monotonic() - started


def _time_msg(seconds: float):
    from builtin_interfaces.msg import Time

    if not math.isfinite(seconds) or seconds < 0:
        return Time()
    return conv.to_time(min(seconds, 2**31 - 1))


def _parameter(name: str, value) -> Parameter:
    if isinstance(value, bool):
        v = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    elif isinstance(value, int):
        v = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=max(-(2**63), min(value, 2**63 - 1)))
    elif isinstance(value, float):
        v = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    else:
        v = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(value))
    return Parameter(name=name, value=v)


class Listener:
    """The attacker's own node beside a real robot or simulator (no fake robot): the attack publishers,
    the sim time and joint positions it last heard, the statuses. Attributes as test_ros_policy_node.Probe."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data

        self.rclpy, self.context = rclpy, rclpy.Context()
        rclpy.init(context=self.context)
        self.node = n = Node("fuzz_attacker", context=self.context)
        self.sim_time, self.position, self.publishing = 0.0, PANDA.home.copy(), True
        self.statuses: list[PolicyStatus] = []
        n.create_subscription(PolicyStatus, f"{NODE}/status", self.statuses.append, DEEP)
        n.create_subscription(Clock, "/clock", lambda m: setattr(self, "sim_time", conv.to_seconds(m.clock)), 10)
        n.create_subscription(JointState, "/joint_states", self._on_joints, 10)
        self.clock_pub = n.create_publisher(Clock, "/clock", 10)
        self.joint_pub = n.create_publisher(JointState, "/joint_states", 10)
        self.image_pubs = {
            c.name: n.create_publisher(Image, f"/{c.name}/image_raw", qos_profile_sensor_data) for c in PANDA.cameras
        }
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(n)
        self.spinner = Spinner(self.executor).start()

    def _on_joints(self, msg: JointState) -> None:
        with contextlib.suppress(Exception):  # our own attacks are on this topic too
            self.position = conv.joint_state_positions(msg, PANDA.joint_names)

    def status(self, state: int, contains: str = "", timeout: float = 20.0) -> PolicyStatus:
        first = max(0, len(self.statuses) - 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in self.statuses[first:]:
                if s.state == state and contains in s.reason:
                    return s
            time.sleep(0.01)
        last = self.statuses[-1] if self.statuses else None
        raise AssertionError(f"no status {state} within {timeout} s; last: {last and (last.state, last.reason)}")

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)
