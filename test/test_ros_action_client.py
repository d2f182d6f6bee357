"""ThreadSafeActionClient against rclpy's send-then-record race (ros2/rclpy#1123): the gap between
sending a request and recording it is widened on purpose, so the plain client demonstrably loses the
response while ours completes goal, result and cancel requests."""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient, ActionServer, CancelResponse
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from conftest import wait_until
from gen0_msgs.action import RunTask
from gen0_policy.ros.action_client import ThreadSafeActionClient
from spinning import Spinner

pytestmark = pytest.mark.ros

GAP = 0.3  # seconds between a request leaving and rclpy recording it


class SlowRecordingHandle:
    """Delegates to rclpy's client handle but sleeps after each request is sent, before rclpy records it."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def __getattr__(self, name: str):
        attribute = getattr(self._handle, name)
        if name in ("send_goal_request", "send_result_request", "send_cancel_request"):

            def send(request):
                sequence = attribute(request)
                time.sleep(GAP)
                return sequence

            return send
        return attribute

    def __enter__(self):
        return self._handle.__enter__()

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)


@pytest.fixture
def graph():
    """A RunTask server and a spinning executor in one context; yields a client factory."""
    context = rclpy.Context()
    rclpy.init(context=context)
    server_node = Node("race_server", context=context)
    client_node = Node("race_client", context=context)
    release = threading.Event()

    def execute(goal_handle):
        # Hold the goal until the test releases it (or it is canceled), so cancel has something to cancel.
        while not release.is_set() and not goal_handle.is_cancel_requested:
            time.sleep(0.01)
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.succeed()
        return RunTask.Result(outcome=RunTask.Goal.OUTCOME_SUCCEEDED, message="done")

    ActionServer(server_node, RunTask, "race", execute, cancel_callback=lambda _: CancelResponse.ACCEPT)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    executor.add_node(server_node)
    executor.add_node(client_node)
    spinner = Spinner(executor).start()

    def make(cls):
        client = cls(client_node, RunTask, "race")
        assert client.wait_for_server(timeout_sec=20)
        client._client_handle = SlowRecordingHandle(client._client_handle)
        return client

    yield make, release
    release.set()
    time.sleep(0.2)  # let a held goal finish before its server goes away
    spinner.stop()
    rclpy.shutdown(context=context)


def test_plain_client_loses_the_response_when_the_gap_is_widened(graph) -> None:
    make, _ = graph
    future = make(ActionClient).send_goal_async(RunTask.Goal(instruction="x", timeout=1.0))
    time.sleep(3 * GAP + 1.0)
    assert not future.done()  # the bug this module works around


def test_thread_safe_client_completes_goal_result_and_cancel(graph) -> None:
    make, release = graph
    client = make(ThreadSafeActionClient)
    send = client.send_goal_async(RunTask.Goal(instruction="x", timeout=1.0))
    handle = wait_until(lambda: send.done() and send.result(), 10, what="goal acceptance")
    assert handle.accepted
    cancel = handle.cancel_goal_async()
    wait_until(cancel.done, 10, what="cancel response")
    result = handle.get_result_async()
    wait_until(result.done, 10, what="result")
    assert result.result().status == GoalStatus.STATUS_CANCELED

    send = client.send_goal_async(RunTask.Goal(instruction="y", timeout=1.0))
    handle = wait_until(lambda: send.done() and send.result(), 10, what="second goal acceptance")
    release.set()
    result = handle.get_result_async()
    wait_until(result.done, 10, what="second result")
    assert result.result().status == GoalStatus.STATUS_SUCCEEDED
