"""gen0_policy_node: the policy as a lifecycle component of a ROS 2 robot stack.

configure loads the embodiment and the checkpoint, activate starts the harmonic runtime (think and
act at once), deactivate holds, cleanup frees. Cameras (sensor_msgs/Image, sensor-data QoS) and
/joint_states go into the runtime's perception stream; its commands go to the robot's controllers
(JointTrajectory to a joint_trajectory_controller, Float64MultiArray to forward position
controllers); ~/status (PolicyStatus) and ~/action_chunk (ActionChunk) say what it does and why.
Services ~/load_checkpoint (hot swap) and ~/set_instruction; action ~/run_task.
All the behaviour lives in gen0_policy.runtime; this file converts messages.
"""

from __future__ import annotations

import threading
import time

import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from rclpy.task import Future
from sensor_msgs.msg import Image, JointState

from gen0_msgs.msg import ActionChunk, PolicyStatus, TaskStatus
from gen0_msgs.srv import LoadCheckpoint, SetInstruction
from gen0_policy.embodiment import load_embodiment
from gen0_policy.errors import Gen0Error
from gen0_policy.messages import header_seconds
from gen0_policy.ros import conversions as conv
from gen0_policy.ros.controller_outputs import make_outputs, publish_command, publish_horizon
from gen0_policy.ros.lifecycle import refuse_invalid_transitions
from gen0_policy.ros.qos import REQUESTS
from gen0_policy.ros.spin import init, spin
from gen0_policy.ros.task_action import RunTaskServer
from gen0_policy.runtime import Command, FunctionClock, Runtime, RuntimeState
from gen0_policy.runtime.config import check_node_parameters, runtime_config, runtime_parameters
from gen0_policy.runtime.horizon import Horizon
from gen0_policy.runtime.loading import load_chunk_policy
from gen0_policy.runtime.task import WAITING_FOR_GOAL, Slots, TaskReport
from gen0_policy.runtime.trajectory import Chunk
from gen0_policy.runtime.uncertainty import Calibration

PARAMETERS = {  # name: default (units and meaning in config/policy_node.yaml): the node's own, then the runtime's
    "embodiment": "panda", "checkpoint": "", "device": "cpu", "engine": "auto", "precision": "auto",
    "instruction": "", "cameras": [""],
    "joint_states_topic": "joint_states", "output_mode": "joint_trajectory", "check_image_size": True,
    "status_rate": 10.0, "uncertain_timeout": 2.0, "uncertainty_calibration": "", "autostart": False,
    "act_on_activate": True,
    **runtime_parameters(),  # every RuntimeConfig field under its own name (runtime/config.py)
}  # fmt: skip
# What configure creates and cleanup destroys gets no QoS event handlers. rclpy adds a node's event
# handlers to its wait sets without checking them (ros2/rclpy#1284): one destroyed by cleanup on a
# worker thread while the spinning thread builds a wait set killed the node with InvalidHandle (found
# by the fuzz test). Without them a mismatched QoS shows as inputs that never arrive (the status says so).
NO_SUB_EVENTS = SubscriptionEventCallbacks(use_default_callbacks=False)
NO_PUB_EVENTS = PublisherEventCallbacks(use_default_callbacks=False)


class StatusTicks:
    """The future of the next status tick, for coroutines that wait without holding an executor thread.

    ``tick`` may be called from any executor thread. When the status timer shared a reentrant group, two
    ticks ran at once on a busy machine; swapped without the lock, both completed the same future and the
    one a goal had just picked up was never completed: the goal waited forever (seen once in CI, after a
    hot swap)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = Future()

    def next(self) -> Future:
        with self._lock:
            return self._next

    def tick(self) -> None:
        with self._lock:
            done, self._next = self._next, Future()
        done.set_result(None)


class PolicyNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("gen0_policy")
        refuse_invalid_transitions(self)
        self.p = {name: self.declare_parameter(name, default).value for name, default in PARAMETERS.items()}
        self.runtime: Runtime | None = None
        self._entities: list = []
        self._task: TaskStatus | None = None
        self._fault = ""
        self._last_state: RuntimeState | None = None
        self._last_awaiting = False  # a client waits for this before resetting the scene: say it at once
        self._logged_checkpoint = ""  # the checkpoint id last named in the log (hot swaps are logged)
        self._last_status = 0.0
        self._status_period = 1.0 / PARAMETERS["status_rate"]  # until configure validates the parameter
        # Held while publishing commands and while cleanup destroys the publishers: the action
        # stream's tick runs on another executor thread and must never publish on a destroyed one.
        self._output_lock = threading.Lock()
        self._activation_lock = threading.Lock()  # guards the tick timer, which lives from activate to rest
        self._tick_timer = None
        self._loads = Slots(1)
        self._ticks = StatusTicks()  # what waiting coroutines (goals, loads) await
        self.status_pub = self.create_publisher(PolicyStatus, "~/status", 10)
        self._group = ReentrantCallbackGroup()
        self._control_group = MutuallyExclusiveCallbackGroup()
        # Sensors off the node's default group: rclpy's time source receives /clock there, and queued
        # behind 200 Hz joint states and image conversions the node clock fell 20-130 ms behind the
        # simulator's, so horizons were stamped late (issue 12). One group per stream keeps each in order.
        self._joints_group = MutuallyExclusiveCallbackGroup()
        for srv, name, callback in (
            (LoadCheckpoint, "~/load_checkpoint", self._on_load),
            (SetInstruction, "~/set_instruction", self._on_instruction),
        ):
            self.create_service(srv, name, callback, qos_profile=REQUESTS, callback_group=self._group)
        self.run_task = RunTaskServer(self, self._group)
        self.create_subscription(TaskStatus, "task_status", self._on_task, 10, callback_group=self._group)
        # Steady time, not the node clock: a frozen /clock must be reported, not silence the status.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        # Its own group: one tick at a time (two at once logged a hot swap twice and raced on the state).
        self.create_timer(0.02, self._publish_status, callback_group=MutuallyExclusiveCallbackGroup(), clock=steady)
        if self.p["autostart"]:
            self._autostart = self.create_timer(0.1, self._start_once)

    # ------------------------------------------------------------------ lifecycle
    def _start_once(self) -> None:
        self._autostart.cancel()
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        try:
            check_node_parameters(p)
            embodiment = load_embodiment(p["embodiment"])
            policy = load_chunk_policy(
                p["checkpoint"], embodiment, p["device"], p["engine"], p["num_samples"], p["precision"],
                p["inference_threads"],
            )  # fmt: skip
            names = [c for c in p["cameras"] if c] or [c.name for c in embodiment.cameras]
            sizes = {c.name: (c.height, c.width) for c in embodiment.cameras}
            cameras = {name: sizes.get(name) if p["check_image_size"] else None for name in names}
            config = runtime_config(p, embodiment.control_rate_hz, embodiment.sync_execute_fraction)
            if p["uncertainty_calibration"]:  # a measured signal and threshold replace the two parameters
                calibration = Calibration.load(p["uncertainty_calibration"])
                config = calibration.apply(config)
                if warning := calibration.mismatch(str(getattr(policy, "checkpoint_id", ""))):
                    self.get_logger().warning(warning)
            clock = FunctionClock(lambda: self.get_clock().now().nanoseconds * 1e-9)
            on_horizon = self._on_horizon if p["command_horizon"] > 0 else None
            runtime = Runtime(policy, embodiment, config, clock, cameras, self._on_command, self._on_chunk, on_horizon)
            runtime.set_instruction(p["instruction"])
            if (task := self._task) is not None:  # heard before configure: from the first command on, the
                self._take_task(runtime, task)  # task's instruction (unless told one) and its box hold
        except Gen0Error as exc:
            return self._fail(f"configure failed: {exc}")
        self.runtime, self._status_period = runtime, 1.0 / p["status_rate"]
        self.embodiment, self.p, self._fault = embodiment, p, ""
        self._outputs = make_outputs(self, embodiment, p["output_mode"], event_callbacks=NO_PUB_EVENTS)
        self._entities += list(self._outputs.publishers.values())
        for name in cameras:
            callback = lambda m, n=name: self._on_image(n, m)  # noqa: E731 - binds the camera
            sub = self.create_subscription(
                Image, f"{name}/image_raw", callback, qos_profile_sensor_data,
                callback_group=MutuallyExclusiveCallbackGroup(), event_callbacks=NO_SUB_EVENTS,
            )  # fmt: skip
            self._entities.append(sub)
        joints = self.create_subscription(
            JointState, p["joint_states_topic"], self._on_joints, 10,
            callback_group=self._joints_group, event_callbacks=NO_SUB_EVENTS,
        )  # fmt: skip
        self._entities.append(joints)
        self.chunk_pub = self.create_publisher(ActionChunk, "~/action_chunk", 10, event_callbacks=NO_PUB_EVENTS)
        self._entities.append(self.chunk_pub)
        self.get_logger().info(f"configured {embodiment.name} with checkpoint {policy.checkpoint_id}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        sim_time = bool(self.get_parameter("use_sim_time").value)
        self.runtime.resume()
        if not self.p["act_on_activate"]:  # a task-driven robot stands still until it is given a task
            self.runtime.end_task(WAITING_FOR_GOAL)  # before the runtime's first tick: not one command
        self.runtime.start(drive=not sim_time)  # wall time: the runtime ticks itself
        with self._activation_lock:  # sim time: a ROS timer on the node clock, if the runtime needs one
            if self.runtime.needs_ticks and self._tick_timer is None:
                period = self.runtime.config.period
                self._tick_timer = self.create_timer(period, self._tick, callback_group=self._control_group)
        return TransitionCallbackReturn.SUCCESS

    def _tick(self) -> None:
        runtime = self.runtime
        if runtime is not None:
            runtime.tick()
        self._end_activation(lambda: runtime is None or runtime.quiescent)  # braked to rest after deactivate

    def _end_activation(self, now=lambda: True) -> None:
        """Destroy the activation's tick timer if ``now()`` (checked under the lock activate takes)."""
        with self._activation_lock:
            if self._tick_timer is not None and now():
                self.destroy_timer(self._tick_timer)
                self._tick_timer = None

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.runtime.hold("deactivated")  # brake to rest, then send nothing
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        # Callbacks on other executor threads read self.runtime once; clear it before stopping it.
        with self._output_lock:
            runtime, self.runtime = self.runtime, None
        if runtime is not None:
            runtime.stop()
        self._end_activation()
        with self._output_lock:
            for entity in self._entities:
                destroy = {"Publisher": self.destroy_publisher}.get(type(entity).__name__, self.destroy_subscription)
                destroy(entity)
            self._entities = []
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.on_cleanup(state)

    def _fail(self, reason: str) -> TransitionCallbackReturn:
        self._fault = reason
        self.get_logger().error(reason)
        return TransitionCallbackReturn.FAILURE

    # ------------------------------------------------------------------ inputs
    def _on_image(self, camera: str, msg: Image) -> None:
        runtime = self.runtime
        if runtime is None:
            return  # cleaned up while this message was in flight
        try:
            runtime.perception.put_image(camera, conv.image_to_array(msg), header_seconds(msg.header.stamp))
        except Gen0Error as exc:
            runtime.perception.note_rejection(f"{camera}: {exc}", camera)
            self.get_logger().warn(f"rejected image from {camera}: {exc}", throttle_duration_sec=2.0)

    def _on_joints(self, msg: JointState) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        try:
            positions = conv.joint_state_positions(msg, self.embodiment.joint_names)
            runtime.perception.put_joints(positions, header_seconds(msg.header.stamp))
        except Gen0Error as exc:
            runtime.perception.note_rejection(f"joint_states: {exc}", "joint_states")
            self.get_logger().warn(f"rejected joint state: {exc}", throttle_duration_sec=2.0)

    def _on_task(self, msg: TaskStatus) -> None:
        self._task = msg
        runtime = self.runtime
        if runtime is not None:
            self._take_task(runtime, msg)

    def _take_task(self, runtime: Runtime, msg: TaskStatus) -> None:
        """The task's own instruction unless the node was told one, and the box its controllers clamp to
        (targets and end-effector sums stay inside it). Applied at configure too: a node that went on
        acting until the next task status once ran its first chunks with no instruction."""
        if not runtime.instruction and msg.instruction:
            try:
                runtime.set_instruction(msg.instruction)
            except Gen0Error as exc:
                self.get_logger().warn(f"ignored the task's instruction: {exc}", throttle_duration_sec=2.0)
        try:
            runtime.set_workspace(msg.workspace_lower, msg.workspace_upper)
        except Gen0Error as exc:
            self.get_logger().warn(f"ignored the task's workspace: {exc}", throttle_duration_sec=2.0)

    # ------------------------------------------------------------------ outputs
    def _on_command(self, command: Command) -> None:
        with self._output_lock:
            runtime = self.runtime
            if runtime is None or not self.context.ok():
                return  # cleaned up or shutting down: the runtime's threads may outlive both by a tick
            publish_command(self._outputs, command, runtime.config.period, horizons=runtime.on_horizon is not None)

    def _on_horizon(self, horizon: Horizon) -> None:
        """The planned future to each joint_trajectory_controller, stamped with its absolute start."""
        with self._output_lock:
            if self.runtime is None or not self.context.ok():
                return
            publish_horizon(self._outputs, horizon)

    def _on_chunk(self, chunk: Chunk) -> None:
        msg = conv.action_chunk_msg(chunk, self.embodiment.joint_names)
        with self._output_lock:  # the worker may finish a chunk while cleanup destroys the publisher
            if self.runtime is not None and self.context.ok():
                self.chunk_pub.publish(msg)

    def status(self, report: bool = False) -> PolicyStatus:
        """The node's status; ``report``: the publisher's, where a hold shorter than a status tick still
        shows once (``Runtime.report``)."""
        runtime = self.runtime  # read once: cleanup may clear it on another executor thread
        status = None if runtime is None else runtime.report() if report else runtime.status()
        return conv.policy_status_msg(status, self.p["embodiment"], self._fault, self.get_clock().now().to_msg())

    def _publish_status(self) -> None:
        self._ticks.tick()
        msg = self.status(report=True)
        now = time.monotonic()
        changed = msg.state != self._last_state or msg.awaiting_goal != self._last_awaiting
        if changed or now - self._last_status >= self._status_period:
            if msg.state != self._last_state:
                self._log_state(msg)
            self._last_state, self._last_awaiting, self._last_status = msg.state, msg.awaiting_goal, now
            self.status_pub.publish(msg)
        if msg.checkpoint_id != self._logged_checkpoint:  # a hot swap took over (or the first load)
            if self._logged_checkpoint:
                self.get_logger().info(f"hot swap: now running {msg.checkpoint_id} (was {self._logged_checkpoint})")
            self._logged_checkpoint = msg.checkpoint_id

    def _log_state(self, msg: PolicyStatus) -> None:
        """Each state change, with the reason for a hold, in the log (and so in the bringup terminal):
        a user sees what the robot does without echoing ~/status."""
        text = f"state: {RuntimeState(msg.state).label}" + (f" ({msg.reason})" if msg.reason else "")
        if msg.state in (PolicyStatus.STATE_RUNNING, PolicyStatus.STATE_IDLE, PolicyStatus.STATE_LOADING):
            self.get_logger().info(text)
        else:  # a separate call site: rclpy refuses two severities at one
            self.get_logger().warn(text)

    async def _until(self, done) -> None:
        """Wait for ``done()`` without holding an executor thread: resumed at every status tick."""
        while not done():
            await self._ticks.next()

    async def next_status_tick(self) -> None:
        await self._ticks.next()

    # ------------------------------------------------------------------ services and action
    async def _on_load(self, request: LoadCheckpoint.Request, response: LoadCheckpoint.Response):
        started, runtime = time.monotonic(), self.runtime
        if runtime is None:
            response.success, response.message = False, "not configured; configure the node first"
            return response
        response.checkpoint_id = runtime.checkpoint_id
        if not self._loads.acquire():
            response.success, response.message = False, "busy: another checkpoint is loading; try again when it is done"
            return response
        try:
            embodiment, device, engine = self.embodiment, self.p["device"], self.p["engine"]
            samples, precision, threads = self.p["num_samples"], self.p["precision"], self.p["inference_threads"]
            future = runtime.load_policy(
                lambda: load_chunk_policy(request.path, embodiment, device, engine, samples, precision, threads),
                request.path,
            )
            await self._until(future.done)  # the load runs on its own thread; the executor stays free
            policy = future.result()
            response.success, response.message = True, f"loaded {policy.checkpoint_id}; swapping at its first chunk"
            response.checkpoint_id = policy.checkpoint_id
        except Exception as exc:  # the old policy keeps running; say why the new one did not load
            response.success, response.message = False, str(exc)
        finally:
            self._loads.release()
        response.load_time = time.monotonic() - started
        return response

    def _on_instruction(self, request, response):
        runtime = self.runtime
        try:
            if runtime is None:
                raise Gen0Error("not configured")
            runtime.set_instruction(request.instruction)
            response.success, response.message = True, f"instruction set to {request.instruction!r}"
        except Gen0Error as exc:
            response.success, response.message = False, str(exc)
        return response

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def task_report(self) -> TaskReport | None:
        task = self._task  # read once: the subscription replaces it on another executor thread
        return None if task is None else TaskReport(task.task, task.success, conv.to_seconds(task.header.stamp))


def main(args: list[str] | None = None) -> None:
    init(args)  # Ctrl-C and SIGTERM end spin() here, so the runtime stops before its publishers go
    node = PolicyNode()
    try:
        spin(node, MultiThreadedExecutor(num_threads=6))  # clock, control tick, joints, cameras, services
    finally:
        if node.runtime is not None:
            node.runtime.stop()  # before the context goes: its threads publish
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
