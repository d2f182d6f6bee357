"""~/run_task for the policy node: act on an instruction until the task reports success, the
timeout, a fault, lasting uncertainty or a cancel (gen0_policy.runtime.task decides which).

Goals are accepted or refused at once (one at a time, never queued), and a running goal holds no
executor thread: it awaits the node's status tick between checks, so five goals cannot wedge it.
"""

from __future__ import annotations

import time
from typing import Any

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse

from gen0_msgs.action import RunTask
from gen0_policy.errors import Gen0Error
from gen0_policy.ros.qos import REQUESTS
from gen0_policy.runtime import RuntimeState
from gen0_policy.runtime.task import Outcome, Slots, TaskMonitor, check_instruction, check_timeout

MAX_TASK_GOALS = 1  # one instruction at a time; further goals are rejected at once, never queued


class RunTaskServer:
    """The action server on ``node``, which provides ``runtime``, ``status()``, ``now_s()``,
    ``task_report()``, ``next_status_tick()``, ``p["uncertain_timeout"]`` and its logger."""

    def __init__(self, node: Any, callback_group: Any) -> None:
        self.node = node
        self._goals = Slots(MAX_TASK_GOALS)
        ActionServer(
            node, RunTask, "~/run_task", self._run, callback_group=callback_group,
            goal_callback=self._on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
            goal_service_qos_profile=REQUESTS, result_service_qos_profile=REQUESTS, cancel_service_qos_profile=REQUESTS,
        )  # fmt: skip

    def _on_goal(self, goal: RunTask.Goal) -> GoalResponse:
        """Accept or refuse at once: a bad goal or one too many never waits in a queue."""
        log = self.node.get_logger()
        try:
            check_timeout(goal.timeout)
            check_instruction(goal.instruction)
        except Gen0Error as exc:
            log.warn(f"run_task goal rejected: {exc}")
            return GoalResponse.REJECT
        if not self._goals.acquire():
            log.warn(f"run_task goal rejected: {MAX_TASK_GOALS} task(s) already running; cancel first")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    async def _run(self, goal_handle) -> RunTask.Result:
        node = self.node
        goal, result, outcome = goal_handle.request, RunTask.Result(), "aborted"
        try:
            monitor = TaskMonitor(node.now_s(), check_timeout(goal.timeout), node.p["uncertain_timeout"])
            runtime = node.runtime
            if runtime is not None:
                runtime.begin_task(goal.instruction)  # from fresh observations; at rest again when it ends
            while rclpy.ok():
                status, now = node.status(), node.now_s()
                state = RuntimeState(status.state) if node.runtime is not None else None
                canceled = goal_handle.is_cancel_requested
                ended = monitor.step(now, time.monotonic(), state, status.reason, canceled, node.task_report())
                if ended is not None:
                    result.outcome, result.message, result.duration = int(ended[0]), ended[1], monitor.elapsed(now)
                    outcome = ended[0].name.lower()
                    node.get_logger().info(
                        f"task {goal.instruction or '(current instruction)'!r} ended: {outcome} "
                        f"after {result.duration:.1f} s ({ended[1]})"
                    )
                    (goal_handle.canceled if ended[0] == Outcome.CANCELED else goal_handle.succeed)()
                    return result
                if monitor.feedback_due(time.monotonic()):
                    feedback = RunTask.Feedback(elapsed=monitor.elapsed(now), policy_state=status.state)
                    feedback.uncertainty, feedback.status = status.uncertainty, status.reason or state.label
                    goal_handle.publish_feedback(feedback)
                await node.next_status_tick()
            goal_handle.abort()
            return result
        finally:
            runtime = node.runtime
            if runtime is not None:
                runtime.end_task(f"task {outcome}; waiting for the next run_task goal (or activate)")
            self._goals.release()
