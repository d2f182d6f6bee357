"""How our node processes spin and stop."""

from __future__ import annotations

import faulthandler
import signal
import time
from collections.abc import Callable

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

# How long an error from spinning waits for rclpy's signal thread to shut the context down (a Ctrl-C
# in flight) before it counts as a crash, s.
SHUTDOWN_GRACE_S = 0.5


def spin(node: Node, executor: Executor | None = None) -> None:
    """Spin ``node`` until Ctrl-C or SIGTERM. rclpy's signal handler shuts the context down; when that
    lands while the executor builds its wait set, rclpy raises RCLError ("context is not valid")
    instead of ExternalShutdownException: a stop all the same, not a crash with a traceback. A signal
    that lands while rclpy's C++ converts a message for Python surfaces as another error (pybind11:
    "Unable to convert call argument '0' to Python object", seen once in 26 benchmark shutdowns), a
    moment before rclpy's signal thread shuts the context down: the same stop."""
    executor = executor or SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    dump_stacks_on_sigusr1()
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if not shutting_down(node.context, SHUTDOWN_GRACE_S):
            raise  # a real error, not the shutdown


def dump_stacks_on_sigusr1() -> None:
    """`kill -USR1 PID` prints every thread's stack to the node's stderr and lets it run on: what a hung
    node waits for, without a debugger (the closed-loop benchmark and the tests ask for it on a stall)."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def shutting_down(context: Context, grace_s: float) -> bool:
    """Whether ``context`` is shut down now or within ``grace_s`` (rclpy shuts it down from its own
    signal-handling thread, just after the signal)."""
    deadline = time.monotonic() + grace_s
    while context.ok():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """A node process's ``main``: init, build the node, spin until Ctrl-C or SIGTERM, tear down."""
    rclpy.init(args=args)
    node = make_node()
    try:
        spin(node)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
