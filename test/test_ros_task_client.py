"""TaskClient waits for a run_task result by the goal's progress, not by the wall clock: a goal's
timeout counts sim time, and a loaded machine runs the sim many times slower than real time (a CI
run once gave up on an 8 s goal after 68 s of wall time while the sim was still running it)."""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from rclpy.action import ActionServer
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from gen0_msgs.action import RunTask
from gen0_policy.ros.task_client import TaskClient
from spinning import Spinner

pytestmark = pytest.mark.ros

SIM_PER_WALL = 0.1  # the emulated sim runs at a tenth of real time


@pytest.fixture
def slow_task_server():
    """A RunTask server whose goals report elapsed sim time at SIM_PER_WALL; ``stall`` freezes it."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node("gen0_policy", context=context)
    stall, closing = threading.Event(), threading.Event()

    def execute(goal_handle):
        start, elapsed = time.monotonic(), 0.0
        while elapsed <= goal_handle.request.timeout and not closing.is_set():
            if not stall.is_set():
                elapsed = (time.monotonic() - start) * SIM_PER_WALL
            goal_handle.publish_feedback(RunTask.Feedback(elapsed=elapsed))
            time.sleep(0.05)
        goal_handle.succeed()
        return RunTask.Result(outcome=RunTask.Goal.OUTCOME_TIMED_OUT, message="slow", duration=elapsed)

    ActionServer(node, RunTask, "/gen0_policy/run_task", execute)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    spinner = Spinner(executor).start()
    yield stall
    closing.set()
    time.sleep(0.2)  # the goal's loop ends before its publishers go
    spinner.stop()
    node.destroy_node()
    rclpy.shutdown(context=context)


def _send(client: TaskClient, timeout: float):
    assert client.run_task.wait_for_server(timeout_sec=20)
    goal = client.run_task.send_goal_async(RunTask.Goal(timeout=timeout), feedback_callback=client._feedback)
    handle = client.wait(lambda: goal.done() and goal.result(), 20, "goal acceptance")
    return handle.get_result_async()


def test_a_slow_sim_is_waited_for_while_its_goal_makes_progress(slow_task_server) -> None:
    client = TaskClient("slow_sim_client")
    try:
        start = time.monotonic()
        # 0.2 s of sim time take 2 s of wall time: ten times a wall limit of the goal's timeout + 1 s.
        result = client.wait_for_result(_send(client, 0.2), timeout=0.2, stall_s=1.0).result
        assert time.monotonic() - start > 1.5
        assert result.message == "slow" and result.duration > 0.2
    finally:
        client.close()


def test_a_goal_that_stops_progressing_is_given_up_with_a_clear_error(slow_task_server) -> None:
    slow_task_server.set()  # the sim clock stops
    client = TaskClient("stalled_sim_client")
    try:
        with pytest.raises(TimeoutError, match="no progress for 1 s"):
            client.wait_for_result(_send(client, 0.2), timeout=0.2, stall_s=1.0)
    finally:
        client.close()


def test_the_next_scene_reset_waits_until_the_policy_stands_still() -> None:
    """A reset while the arm still braked from the last goal teleported it under commands that pulled it
    back toward where the brake was going: every reach episode after a success began up to 1.9 rad from
    home. The client waits for a status, newer than its call, that says the policy awaits a goal at rest."""
    from gen0_msgs.msg import PolicyStatus

    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node("gen0_policy", context=context)
    status_pub = node.create_publisher(PolicyStatus, "/gen0_policy/status", 10)
    client = TaskClient("still_client")
    try:
        at_rest = PolicyStatus(state=PolicyStatus.STATE_IDLE, awaiting_goal=True)
        braking = PolicyStatus(state=PolicyStatus.STATE_IDLE, reason="task succeeded", awaiting_goal=False)
        client.wait(lambda: status_pub.get_subscription_count() > 0, 20, "the client's subscription")
        status_pub.publish(at_rest)  # from before the call: not evidence that the arm stands still now
        client.wait(lambda: client.status is not None and client.status.awaiting_goal, 10, "the first status")
        results: list[bool] = []
        waiter = threading.Thread(target=lambda: results.append(client.wait_until_still(timeout=20)))
        waiter.start()
        for _ in range(10):  # half a second of braking
            status_pub.publish(braking)
            time.sleep(0.05)
        assert waiter.is_alive()
        status_pub.publish(at_rest)
        waiter.join(10)
        assert results == [True]
        assert client.wait_until_still(timeout=0.5) is False  # no news: it says so and does not hang
    finally:
        client.close()
        node.destroy_node()
        rclpy.shutdown(context=context)
