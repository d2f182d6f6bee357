"""How our node processes spin and stop."""

from __future__ import annotations

import faulthandler
import signal
from collections.abc import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def spin(node: Node, executor: Executor | None = None) -> None:
    """Spin ``node`` until Ctrl-C or SIGTERM. rclpy's signal handler shuts the context down; when that
    lands while the executor builds its wait set, rclpy raises RCLError ("context is not valid")
    instead of ExternalShutdownException: a stop all the same, not a crash with a traceback."""
    executor = executor or SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    # `kill -USR1 PID` prints every thread's stack to the node's stderr and lets it run on: what a
    # hung node waits for, without a debugger (the closed-loop benchmark asks for it on a stall).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if node.context.ok():
            raise  # a real error, not the shutdown


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """A node process's ``main``: init, build the node, spin until Ctrl-C or SIGTERM, tear down."""
    rclpy.init(args=args)
    node = make_node()
    try:
        spin(node)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
