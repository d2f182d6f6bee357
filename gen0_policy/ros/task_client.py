"""A client of a running simulation + policy: reset the sim with a seed, run the policy on the
episode's instruction (gen0_msgs/action/RunTask), watch its status and, if asked, its cameras.

Used by ``gen0 demo`` and benchmarks/closed_loop_benchmark.py; it talks only to the nodes' public
topics, services and actions, like any outside client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from gen0_msgs.action import RunTask
from gen0_msgs.msg import PolicyStatus
from gen0_msgs.srv import ResetTask
from gen0_policy.ros.action_client import ThreadSafeActionClient
from gen0_policy.ros.conversions import image_to_array

OUTCOMES = {
    getattr(RunTask.Goal, name): name.removeprefix("OUTCOME_").lower()
    for name in dir(RunTask.Goal)
    if name.startswith("OUTCOME_")
}


class TaskClient:
    """Spins its own node in a background executor; every call blocks the caller only.

    ``cameras``: camera names whose frames are kept during each episode (at most ``frame_rate_hz``)
    for a video; ``on_status``: called with every PolicyStatus (from the executor's thread)."""

    def __init__(
        self,
        name: str = "gen0_task_client",
        cameras: Sequence[str] = (),
        frame_rate_hz: float = 20.0,
        on_status: Callable[[PolicyStatus], None] | None = None,
    ) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.status: PolicyStatus | None = None
        self.statuses_received = 0
        self.goals_run = 0  # episodes this client has run: after one, the arm may still brake
        self.episode_statuses: list[PolicyStatus] = []  # every status during the running episode
        self.frames: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
        self._frame_period = 1.0 / frame_rate_hz
        self._last_frame = dict.fromkeys(cameras, 0.0)
        self._recording = False
        self._on_status = on_status
        self._progress = (0.0, time.monotonic())  # the running goal's last elapsed (sim s), when it grew (wall)
        self.node.create_subscription(PolicyStatus, "/gen0_policy/status", self._status, 10)
        for cam in cameras:
            self.node.create_subscription(
                Image, f"/{cam}/image_raw", lambda m, c=cam: self._frame(c, m), qos_profile_sensor_data
            )
        self.reset = self.node.create_client(ResetTask, "/gen0_sim/reset")
        self.run_task = ThreadSafeActionClient(self.node, RunTask, "/gen0_policy/run_task")
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _status(self, msg: PolicyStatus) -> None:
        self.status = msg
        self.statuses_received += 1
        self.episode_statuses.append(msg)
        if self._on_status is not None:
            self._on_status(msg)

    def _feedback(self, msg: Any) -> None:
        elapsed = float(msg.feedback.elapsed)
        if elapsed > self._progress[0]:
            self._progress = (elapsed, time.monotonic())

    def _frame(self, camera: str, msg: Image) -> None:
        now = time.monotonic()
        if self._recording and now - self._last_frame[camera] >= self._frame_period:
            self._last_frame[camera] = now
            self.frames[camera].append(image_to_array(msg))

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")

    def wait_until_ready(self, timeout: float = 180.0) -> PolicyStatus:
        """The first status that says running, or active and waiting for a run_task goal (a node with
        ``act_on_activate: false``); a fault raises with its reason."""

        def ready() -> PolicyStatus | None:
            s = self.status
            if s is not None and (s.state in (PolicyStatus.STATE_RUNNING, PolicyStatus.STATE_FAULT) or s.awaiting_goal):
                return s
            return None

        status = self.wait(ready, timeout, "the policy to run")
        if status.state == PolicyStatus.STATE_FAULT:
            raise RuntimeError(f"the policy cannot run: {status.reason}")
        if not (self.reset.wait_for_service(timeout_sec=30) and self.run_task.wait_for_server(30)):
            raise TimeoutError("the sim's reset service or the policy's run_task action did not appear")
        self._warm_up_goals()
        return status

    def _warm_up_goals(self, attempts: int = 10, attempt_timeout: float = 2.0) -> None:
        """Send goals the node refuses at once (a negative timeout) until one is answered: FastDDS can
        drop the answer to a request sent before the server discovered this client (ros2/rmw_fastrtps#842),
        and a real goal whose acceptance is lost runs on with no handle to it."""
        for _ in range(attempts):
            future = self.run_task.send_goal_async(RunTask.Goal(timeout=-1.0))
            try:
                handle = self.wait(lambda f=future: f.done() and f.result(), attempt_timeout, "a goal answer")
            except TimeoutError:
                continue
            if handle.accepted:  # not this node's run_task: it refuses negative timeouts
                raise RuntimeError("the run_task server accepted a goal with a negative timeout")
            return
        raise TimeoutError(f"the policy's run_task action answered none of {attempts} goals")

    def reset_sim(self, task: str, seed: int, attempts: int = 4, attempt_timeout: float = 20.0) -> ResetTask.Response:
        """Reset, asking again if no answer comes: a reset is idempotent, and FastDDS can drop the
        answer to a request sent before the service has discovered this client (ros2/rmw_fastrtps#842)."""
        for _ in range(attempts):
            future = self.reset.call_async(ResetTask.Request(task=task, seed=seed))
            try:
                return self.wait(lambda f=future: f.done() and f.result(), attempt_timeout, "sim reset")
            except TimeoutError:
                self.reset.remove_pending_request(future)
        raise TimeoutError(f"the sim did not answer {attempts} reset requests of {attempt_timeout:.0f} s each")

    def wait_for_result(self, result_future: Any, timeout: float, stall_s: float = 60.0) -> Any:
        """The goal's result. The goal's ``timeout`` counts sim time, which a loaded machine can run
        many times slower than the wall clock: so give up only when the goal's elapsed time (its
        feedback) has not grown for ``stall_s`` wall seconds, or has run 30 s past its timeout."""
        while not (result_future.done() and result_future.result()):
            elapsed, grew_at = self._progress
            if time.monotonic() - grew_at > stall_s:
                raise TimeoutError(
                    f"the run_task goal made no progress for {stall_s:.0f} s (elapsed {elapsed:.1f} s of sim time)"
                )
            if timeout > 0 and elapsed > timeout + 30.0:
                raise TimeoutError(f"the run_task goal ran {elapsed:.1f} s, 30 s past its timeout of {timeout} s")
            time.sleep(0.05)
        return result_future.result()

    def wait_until_still(self, timeout: float = 10.0) -> bool:
        """Wait for a status, newer than the call, that says the policy awaits a goal at rest; False if
        none came within ``timeout`` s. A scene reset while the arm still brakes from the last goal
        teleports it under commands that pull it back toward where the brake was going: through ROS,
        every reach episode after a success began with the arm dragged up to 1.9 rad from home."""
        seen = self.statuses_received
        try:
            self.wait(lambda: self.statuses_received > seen and self.status.awaiting_goal, timeout, "rest")
        except TimeoutError:
            return False
        return True

    def episode(self, task: str, seed: int, timeout: float) -> dict[str, Any]:
        """Reset the sim to (task, seed), once the policy stands still, and run the policy on its
        instruction; the outcome and timing."""
        # After a goal, reset only once the arm stands still. Before the first, wait_until_ready saw the
        # node running or awaiting a goal; a node that acts on activation never awaits one.
        still = self.wait_until_still() if self.goals_run else bool(self.status and self.status.awaiting_goal)
        reply = self.reset_sim(task, seed)
        if not reply.success:
            raise RuntimeError(f"sim reset failed: {reply.message}")
        time.sleep(0.5)  # let task status and cameras of the new episode arrive
        self.episode_statuses = []
        self.frames = {c: [] for c in self.frames}
        self._recording = True
        try:
            wall_start = time.monotonic()
            self._progress = (0.0, wall_start)
            goal = self.run_task.send_goal_async(
                RunTask.Goal(instruction=reply.instruction, timeout=timeout), feedback_callback=self._feedback
            )
            handle = self.wait(lambda: goal.done() and goal.result(), 30, "goal acceptance")
            self.goals_run += 1
            if not handle.accepted:
                raise RuntimeError("the policy rejected the run_task goal")
            result = self.wait_for_result(handle.get_result_async(), timeout).result
            wall_s = time.monotonic() - wall_start
        finally:
            if self.frames:
                time.sleep(0.5)  # film the result too
            self._recording = False
        return {
            "task": task,
            "seed": seed,
            "instruction": reply.instruction,
            "outcome": OUTCOMES.get(result.outcome, str(result.outcome)),
            "message": result.message,
            "duration": round(result.duration, 3),
            "wall_s": round(wall_s, 3),
            "reset_at_rest": still,  # False: the arm may have been moving when the scene was reset
        }

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
