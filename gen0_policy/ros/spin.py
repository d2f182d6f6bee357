"""How our node processes spin and stop.

A signal stops a node in one thread, in order: SIGINT or SIGTERM sets a flag, the main thread's executor
loop sees it at its next wake-up and returns, and the caller stops the node's own threads, destroys the
node and shuts the context down. Two designs failed under stress (a loop of SIGINTs to the status
watcher receiving 500 Hz, the test that had failed once in CI):
- rclpy's own handlers shut the context down from a thread of their own, under the spinning executor
  and the threads that publish: 1 in 60 runs segfaulted (a sim node under them once outlived a
  SIGTERM in CI, not reproduced);
- KeyboardInterrupt raised by the handler lands wherever the main thread is, also inside pybind11's
  conversion of a message taken from DDS, which then fails as a RuntimeError ("Unable to convert call
  argument '0' to Python object") and swallows the interrupt: 1 in 62 runs crashed.
A second signal a while after the first raises KeyboardInterrupt: the way out of a stop that hangs.
One within REPEAT_WINDOW_S is the same stop: Ctrl-C under `ros2 launch` reaches a node twice, from the
terminal and from launch, and must not break off the node's teardown (a recorder closing its bag)."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

# How long an error from spinning waits for the context to finish shutting down (another thread
# shutting it down) before it counts as a crash, s.
SHUTDOWN_GRACE_S = 0.5
# The longest an executor waits before it returns to the loop, s: a signal's handler runs in the main
# thread only between waits, so this bounds how long Ctrl-C takes to stop a node that receives nothing.
SIGNAL_POLL_S = 0.1
# A signal this soon after the first is the same request to stop, s.
REPEAT_WINDOW_S = 1.0

_stop = threading.Event()
_first_signal_s = 0.0
_wakeup_read_fd: int | None = None  # SIGUSR1's pipe, once dump_stacks_on_sigusr1 has run


def _request_stop(signum: int, frame: object) -> None:
    global _first_signal_s
    if not _stop.is_set():
        _first_signal_s = time.monotonic()
        _stop.set()
    elif time.monotonic() - _first_signal_s > REPEAT_WINDOW_S:
        raise KeyboardInterrupt  # asked again: the stop itself hangs


def init(args: list[str] | None = None) -> None:
    """``rclpy.init`` for one of our node processes: SIGINT and SIGTERM (systemd, docker, a launcher's
    death) ask :func:`spin` to return, and rclpy installs no handler of its own (see the module's
    docstring). A signal before spinning starts (a MuJoCo world takes a while to build) makes it return
    at once. SIGINT is set even where it was ignored: a shell starts background jobs with SIGINT ignored
    and Python leaves it so, and `kill -INT` (what ros2 launch sends) then did nothing."""
    _stop.clear()
    dump_stacks_on_sigusr1()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _request_stop)


def spin(node: Node, executor: Executor | None = None) -> None:
    """Spin ``node`` until Ctrl-C or SIGTERM (after :func:`init`) or until its context shuts down. An
    error raised while another thread shuts the context down is a stop too (rclpy raises RCLError
    "context is not valid" when that lands while the executor builds its wait set); an error with the
    context up is a crash and is raised."""
    executor = executor or SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        while node.context.ok() and not _stop.is_set():
            executor.spin_once(timeout_sec=SIGNAL_POLL_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if not shutting_down(node.context, SHUTDOWN_GRACE_S):
            raise  # a real error, not the shutdown


def dump_stacks_on_sigusr1() -> None:
    """`kill -USR1 PID` prints every thread's stack to the node's stderr and lets it run on: what a hung
    node waits for, without a debugger (the closed-loop benchmark and the tests ask for it on a stall).

    Not ``faulthandler.register``: its handler walks the other threads' frames while they run, and the
    sim node died of it (SIGSEGV mid-dump under its physics thread: once in CI, and here in 2 runs of 3
    of 200 signals at 20 Hz). Python's own handler writes the signal's number to the wakeup pipe at once,
    in whichever thread the kernel picked; a thread of ours reads it and dumps holding the GIL, so no
    frame changes under it, and it answers while the main thread is stuck in C. Call from the main
    thread; it owns the process's wakeup fd."""
    global _wakeup_read_fd
    if _wakeup_read_fd is not None:
        return
    _wakeup_read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)  # the dump is the thread's; not the default death
    dumper = threading.Thread(target=_dump_stacks_on_each_sigusr1, args=(_wakeup_read_fd,), daemon=True)
    dumper.start()


def _dump_stacks_on_each_sigusr1(read_fd: int) -> None:
    while True:
        if signal.SIGUSR1 in os.read(read_fd, 64):  # the numbers of every signal caught (SIGINT too)
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)


def shutting_down(context: Context, grace_s: float) -> bool:
    """Whether ``context`` is shut down now or within ``grace_s`` (by another thread, just started)."""
    deadline = time.monotonic() + grace_s
    while context.ok():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """A node process's ``main``: init, build the node, spin until Ctrl-C or SIGTERM, tear down."""
    init(args)
    node = make_node()
    try:
        spin(node)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
