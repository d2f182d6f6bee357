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

import math
import threading
import time

import numpy as np
import rclpy
from rclpy.action import ActionServer, CancelResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from gen0_msgs.action import RunTask
from gen0_msgs.msg import ActionChunk, PolicyStatus, TaskStatus
from gen0_msgs.srv import LoadCheckpoint, SetInstruction
from gen0_policy.embodiment import load_embodiment
from gen0_policy.errors import ConfigError, Gen0Error
from gen0_policy.ros import conversions as conv
from gen0_policy.runtime import Command, FunctionClock, Runtime, RuntimeConfig, RuntimeState
from gen0_policy.runtime.horizon import Horizon
from gen0_policy.runtime.loading import load_chunk_policy
from gen0_policy.runtime.trajectory import Chunk

PARAMETERS = {  # name: default (units and meaning in config/policy_node.yaml)
    "embodiment": "panda",
    "checkpoint": "",
    "device": "cpu",
    "instruction": "",
    "cameras": [""],
    "joint_states_topic": "joint_states",
    "output_mode": "joint_trajectory",
    "command_horizon": 0.5,
    "horizon_refresh": 0.05,
    "mode": "harmonic",
    "control_rate": 100.0,
    "max_observation_age": 0.5,
    "uncertainty_threshold": 0.0,
    "num_samples": 1,
    "worker_timeout": 2.0,
    "limit_scale": 1.0,
    "resync_tolerance": 1.0,
    "synchronize_joints": True,
    "replan_period": 0.0,
    "check_image_size": True,
    "status_rate": 10.0,
    "realtime_priority": 0,
    "worker_realtime_priority": 0,
    "uncertain_timeout": 2.0,
    "autostart": False,
}
OUTPUT_MODES = ("joint_trajectory", "forward_position")


class PolicyNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("gen0_policy")
        self.p = {name: self.declare_parameter(name, default).value for name, default in PARAMETERS.items()}
        self.runtime: Runtime | None = None
        self._entities: list = []
        self._task: TaskStatus | None = None
        self._fault = ""
        self._last_state: RuntimeState | None = None
        self._last_status = 0.0
        # Held while publishing commands and while cleanup destroys the publishers: the action
        # stream's tick runs on another executor thread and must never publish on a destroyed one.
        self._output_lock = threading.Lock()
        self.status_pub = self.create_publisher(PolicyStatus, "~/status", 10)
        self._group = ReentrantCallbackGroup()
        self._control_group = MutuallyExclusiveCallbackGroup()
        self.create_service(LoadCheckpoint, "~/load_checkpoint", self._on_load, callback_group=self._group)
        self.create_service(SetInstruction, "~/set_instruction", self._on_instruction, callback_group=self._group)
        ActionServer(
            self,
            RunTask,
            "~/run_task",
            self._run_task,
            callback_group=self._group,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
        )
        self.create_subscription(TaskStatus, "task_status", self._on_task, 10, callback_group=self._group)
        self.create_timer(0.02, self._publish_status, callback_group=self._group)
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
            if p["output_mode"] not in OUTPUT_MODES:
                raise ConfigError(f"output_mode must be one of {OUTPUT_MODES}, got {p['output_mode']!r}")
            if not p["checkpoint"]:
                raise ConfigError("parameter 'checkpoint' is empty; pass -p checkpoint:=PATH (a checkpoint folder)")
            embodiment = load_embodiment(p["embodiment"])
            policy = load_chunk_policy(p["checkpoint"], embodiment, p["device"])
            names = [c for c in p["cameras"] if c] or [c.name for c in embodiment.cameras]
            sizes = {c.name: (c.height, c.width) for c in embodiment.cameras}
            cameras = {name: sizes.get(name) if p["check_image_size"] else None for name in names}
            config = RuntimeConfig(
                mode=p["mode"],
                control_rate_hz=p["control_rate"],
                max_observation_age=p["max_observation_age"],
                uncertainty_threshold=p["uncertainty_threshold"] or math.inf,
                num_samples=p["num_samples"],
                worker_timeout=p["worker_timeout"],
                limit_scale=p["limit_scale"],
                resync_tolerance=p["resync_tolerance"],
                synchronize_joints=p["synchronize_joints"],
                replan_period=p["replan_period"],
                realtime_priority=p["realtime_priority"],
                worker_realtime_priority=p["worker_realtime_priority"],
                command_horizon=p["command_horizon"] or 1.0 / p["control_rate"],
                horizon_refresh=p["horizon_refresh"],
            )
        except Gen0Error as exc:
            return self._fail(f"configure failed: {exc}")
        clock = FunctionClock(lambda: self.get_clock().now().nanoseconds * 1e-9)
        on_horizon = self._on_horizon if p["command_horizon"] > 0 else None  # 0: one point per tick
        self.runtime = Runtime(policy, embodiment, config, clock, cameras, self._on_command, self._on_chunk, on_horizon)
        self.runtime.set_instruction(p["instruction"])
        self.embodiment, self.p, self._fault = embodiment, p, ""
        self._make_outputs()
        for name in cameras:
            self._entities.append(
                self.create_subscription(
                    Image, f"{name}/image_raw", lambda m, n=name: self._on_image(n, m), qos_profile_sensor_data
                )
            )
        self._entities.append(self.create_subscription(JointState, p["joint_states_topic"], self._on_joints, 10))
        self.chunk_pub = self.create_publisher(ActionChunk, "~/action_chunk", 10)
        self._entities.append(self.chunk_pub)
        self.get_logger().info(f"configured {embodiment.name} with checkpoint {policy.checkpoint_id}")
        return TransitionCallbackReturn.SUCCESS

    def _make_outputs(self) -> None:
        """One publisher per controller: (publisher, joint indices, message kind)."""
        controllers = self.embodiment.controllers
        self._outputs = []
        for spec in controllers:
            forward = spec.type == "forward_position_controller" or self.p["output_mode"] == "forward_position"
            topic, kind = (
                (f"{spec.name}/commands", Float64MultiArray)
                if forward
                else (f"{spec.name}/joint_trajectory", JointTrajectory)
            )
            pub = self.create_publisher(kind, topic, 10)
            self._entities.append(pub)
            self._outputs.append((pub, self.embodiment.joint_indices(spec.joints), spec.joints, forward))
        if not controllers:
            pub = self.create_publisher(JointTrajectory, "joint_trajectory_controller/joint_trajectory", 10)
            self._entities.append(pub)
            self._outputs.append((pub, np.arange(self.embodiment.dof), self.embodiment.joint_names, False))

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        sim_time = bool(self.get_parameter("use_sim_time").value)
        self.runtime.start(drive=not sim_time)  # wall time: the runtime's own real-time thread
        if sim_time:  # sim time: a ROS timer on the node clock paces the action stream
            timer = self.create_timer(self.runtime.config.period, self.runtime.tick, callback_group=self._control_group)
            self._entities.append(timer)
        self.runtime.resume()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.runtime.hold("deactivated")  # brake and hold the last safe position
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        # Callbacks on other executor threads read self.runtime once; clear it before stopping it.
        with self._output_lock:
            runtime, self.runtime = self.runtime, None
        if runtime is not None:
            runtime.stop()
        with self._output_lock:
            for entity in self._entities:
                destroy = {"Timer": self.destroy_timer, "Publisher": self.destroy_publisher}.get(
                    type(entity).__name__, self.destroy_subscription
                )
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
            stamp = conv.to_seconds(msg.header.stamp) or None
            runtime.perception.put_image(camera, conv.image_to_array(msg), stamp)
        except Gen0Error as exc:
            runtime.perception.note_rejection(f"{camera}: {exc}", camera)
            self.get_logger().warn(f"rejected image from {camera}: {exc}", throttle_duration_sec=2.0)

    def _on_joints(self, msg: JointState) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        try:
            positions = conv.joint_state_positions(msg, self.embodiment.joint_names)
            runtime.perception.put_joints(positions, conv.to_seconds(msg.header.stamp) or None)
        except Gen0Error as exc:
            runtime.perception.note_rejection(f"joint_states: {exc}", "joint_states")
            self.get_logger().warn(f"rejected joint state: {exc}", throttle_duration_sec=2.0)

    def _on_task(self, msg: TaskStatus) -> None:
        self._task = msg
        runtime = self.runtime
        if runtime is not None and not runtime.instruction and msg.instruction:
            runtime.set_instruction(msg.instruction)  # the task's own instruction unless told otherwise

    # ------------------------------------------------------------------ outputs
    def _on_command(self, command: Command) -> None:
        with self._output_lock:
            runtime = self.runtime
            if runtime is None or not self.context.ok():
                return  # cleaned up or shutting down: the runtime's threads may outlive both by a tick
            period = runtime.config.period
            for pub, index, names, forward in self._outputs:
                positions = command.positions[index]
                if forward:
                    pub.publish(conv.float64_multi_array_msg(positions))
                elif runtime.on_horizon is None:  # one point, reached one control period from now
                    pub.publish(conv.joint_trajectory_msg(names, [period], positions[None], start_time=0.0))

    def _on_horizon(self, horizon: Horizon) -> None:
        """The planned future to each joint_trajectory_controller, stamped with its absolute start."""
        with self._output_lock:
            if self.runtime is None or not self.context.ok():
                return
            for pub, index, names, forward in self._outputs:
                if not forward:  # this controller's joints, one point per chunk step where that is exact enough
                    h = horizon.select(index)
                    pub.publish(conv.joint_trajectory_msg(names, h.times, h.positions, h.velocities, None, h.start))

    def _on_chunk(self, chunk: Chunk) -> None:
        msg = ActionChunk(
            joint_names=list(self.embodiment.joint_names),
            step_dt=chunk.step_dt,
            horizon=chunk.horizon,
            positions=chunk.actions.astype(np.float64).reshape(-1).tolist(),
            committed_prefix_length=chunk.committed,
            uncertainty=chunk.uncertainty,
            inference_latency=chunk.inference_latency,
            checkpoint_id=chunk.checkpoint_id,
        )
        msg.header.stamp = conv.to_time(chunk.t0)
        msg.observation_stamp = conv.to_time(chunk.observation_stamp)
        with self._output_lock:  # the worker may finish a chunk while cleanup destroys the publisher
            if self.runtime is not None and self.context.ok():
                self.chunk_pub.publish(msg)

    def _status(self) -> PolicyStatus:
        msg = PolicyStatus(embodiment=self.p["embodiment"])
        msg.header.stamp = self.get_clock().now().to_msg()
        runtime = self.runtime  # read once: cleanup may clear it on another executor thread
        if runtime is None:
            msg.state = PolicyStatus.STATE_FAULT if self._fault else PolicyStatus.STATE_IDLE
            msg.reason = self._fault or "not configured"
            return msg
        s = runtime.status()
        msg.state, msg.reason, msg.uncertainty = int(s.state), s.reason, s.uncertainty
        msg.uncertainty_threshold = min(s.uncertainty_threshold, 3.0e38)
        msg.inference_latency, msg.observation_age, msg.control_rate = (
            s.inference_latency,
            s.observation_age,
            s.control_rate,
        )
        msg.chunk_count, msg.checkpoint_id, msg.instruction = s.chunk_count, s.checkpoint_id, s.instruction
        msg.warnings = list(s.warnings)
        return msg

    def _publish_status(self) -> None:
        msg = self._status()
        now = time.monotonic()
        if msg.state != self._last_state or now - self._last_status >= 1.0 / self.p["status_rate"]:
            self._last_state, self._last_status = msg.state, now
            self.status_pub.publish(msg)

    # ------------------------------------------------------------------ services and action
    def _on_load(self, request: LoadCheckpoint.Request, response: LoadCheckpoint.Response) -> LoadCheckpoint.Response:
        started = time.monotonic()
        if self.runtime is None:
            response.success, response.message = False, "not configured; configure the node first"
            return response
        runtime, embodiment, device = self.runtime, self.embodiment, self.p["device"]
        future = runtime.load_policy(lambda: load_chunk_policy(request.path, embodiment, device), request.path)
        try:
            policy = future.result(timeout=120.0)
            response.success, response.message = True, f"loaded {policy.checkpoint_id}; swapping at its first chunk"
            response.checkpoint_id = policy.checkpoint_id
        except Exception as exc:  # the old policy keeps running; say why the new one did not load
            response.success, response.message = False, str(exc)
            response.checkpoint_id = runtime.checkpoint_id
        response.load_time = time.monotonic() - started
        return response

    def _on_instruction(self, request, response):
        runtime = self.runtime
        if runtime is None:
            response.success, response.message = False, "not configured"
        else:
            runtime.set_instruction(request.instruction)
            response.success, response.message = True, f"instruction set to {request.instruction!r}"
        return response

    def _run_task(self, goal_handle) -> RunTask.Result:
        """Act on the instruction until the task reports success, the timeout, a fault, lasting
        uncertainty or a cancel."""
        goal, result = goal_handle.request, RunTask.Result()
        start, wall_start = self._now(), time.monotonic()
        uncertain_since = None
        runtime = self.runtime
        if runtime is not None:
            runtime.set_instruction(goal.instruction)
        while rclpy.ok():
            elapsed = self._now() - start
            status = self._status()
            outcome, message = None, ""
            if goal_handle.is_cancel_requested:
                outcome, message = RunTask.Goal.OUTCOME_CANCELED, "canceled"
            elif status.state == PolicyStatus.STATE_FAULT or self.runtime is None:
                outcome, message = RunTask.Goal.OUTCOME_FAULT, status.reason or "not active"
            elif self._task is not None and self._task.success and self._task_time() > start:
                outcome, message = RunTask.Goal.OUTCOME_SUCCEEDED, f"task {self._task.task} succeeded"
            elif goal.timeout > 0 and elapsed > goal.timeout:
                outcome, message = RunTask.Goal.OUTCOME_TIMED_OUT, f"no success within {goal.timeout} s"
            if status.state == PolicyStatus.STATE_UNCERTAIN:
                uncertain_since = uncertain_since or time.monotonic()
                if time.monotonic() - uncertain_since > self.p["uncertain_timeout"]:
                    outcome, message = RunTask.Goal.OUTCOME_UNCERTAIN, status.reason
            else:
                uncertain_since = None
            if outcome is not None:
                result.outcome, result.message, result.duration = outcome, message, elapsed
                (goal_handle.canceled if outcome == RunTask.Goal.OUTCOME_CANCELED else goal_handle.succeed)()
                return result
            feedback = RunTask.Feedback(elapsed=elapsed, policy_state=status.state, uncertainty=status.uncertainty)
            feedback.status = status.reason or RuntimeState(status.state).label
            goal_handle.publish_feedback(feedback)
            time.sleep(0.1 if time.monotonic() - wall_start < 1.0 else 0.2)
        goal_handle.abort()
        return result

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _task_time(self) -> float:
        return conv.to_seconds(self._task.header.stamp)


def main(args: list[str] | None = None) -> None:
    # Ctrl-C raises KeyboardInterrupt here instead of shutting the context down under the runtime's
    # threads, so the runtime stops before its publishers go away.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = PolicyNode()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node.runtime is not None:
            node.runtime.stop()  # before the context goes: its threads publish
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
