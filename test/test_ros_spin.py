"""gen0_policy/ros/spin.py: how every node process spins and stops. A signal can surface as an error
from inside rclpy a moment before rclpy's signal thread shuts the context down; that is a stop, while
an error with the context still up is a crash that must be seen."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import rclpy
from rclpy.context import Context

from gen0_policy.ros.spin import spin


@pytest.fixture
def context() -> Iterator[Context]:
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def failing_node(context: Context, shut_down_after_s: float | None):
    node = rclpy.create_node("spin_test", context=context)

    def fail() -> None:
        if shut_down_after_s is not None:  # as rclpy's signal thread does, just after the signal
            threading.Timer(shut_down_after_s, context.try_shutdown).start()
        raise RuntimeError("Unable to convert call argument '0' to Python object")

    node.create_timer(0.01, fail)
    return node


def test_an_error_as_the_context_shuts_down_is_a_stop(context: Context) -> None:
    node = failing_node(context, shut_down_after_s=0.1)
    try:
        spin(node)  # returns: no traceback for a Ctrl-C
    finally:
        node.destroy_node()
    assert not context.ok()


def test_an_error_with_the_context_up_is_raised(context: Context) -> None:
    node = failing_node(context, shut_down_after_s=None)
    try:
        with pytest.raises(RuntimeError, match="Unable to convert"):
            spin(node)
    finally:
        node.destroy_node()
    assert context.ok()
