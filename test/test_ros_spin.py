"""gen0_policy/ros/spin.py: how every node process spins and stops. A signal raises KeyboardInterrupt in
the main thread, even while a node receives nothing (an executor that waited without a timeout never
returned to Python to run the handler). An error raised while another thread shuts the context down
is a stop, while an error with the context still up is a crash that must be seen."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
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
        if shut_down_after_s is not None:  # as another thread of the process might
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


QUIET_NODE = """
import time
import rclpy
from gen0_policy.ros.spin import init, spin
init()
node = rclpy.create_node("quiet")


def spinning():  # once, then nothing wakes the executor
    timer.cancel()
    print("spinning", flush=True)


timer = node.create_timer(0.05, spinning)
try:
    spin(node)
finally:
    print("stopping", flush=True)
    time.sleep(0.5)  # a teardown that takes a while: a recorder closing its bag
    node.destroy_node()
    rclpy.try_shutdown()
print("stopped", flush=True)
"""


@pytest.mark.parametrize("signals", [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
                         ids=["SIGINT", "SIGTERM", "SIGINT twice, as ros2 launch and a terminal send it"])  # fmt: skip
def test_a_signal_stops_a_node_that_receives_nothing(no_process_left_behind, signals) -> None:
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    proc = subprocess.Popen([sys.executable, "-c", QUIET_NODE], **pipes)
    try:
        assert proc.stdout.readline() == "spinning\n", proc.stderr.read()
        proc.send_signal(signals[0])
        assert proc.stdout.readline() == "stopping\n"
        for sig in signals[1:]:  # lands in the teardown
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == "stopped\n" and "Traceback" not in err, err


STUCK_IN_C = """
import ctypes, signal
from gen0_policy.ros.spin import init
init()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # the main thread never sees it
print("stuck", flush=True)
ctypes.CDLL(None).sleep(30)  # in C, GIL released, as in a hung rcl call
"""


def test_sigusr1_prints_the_stacks_while_the_main_thread_is_stuck_in_c(no_process_left_behind) -> None:
    """The dump is a thread's of its own, not the main thread's handler: a node hung in C still answers.
    "stuck" is printed a line before the C call, so a first signal may find the main thread still on
    the print (as it did once in CI): then it is asked again, and the dump must show the C call."""
    sleep_line = next(i for i, line in enumerate(STUCK_IN_C.splitlines(), 1) if ".sleep(30)" in line)
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK_IN_C], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    frames = []
    try:
        assert proc.stdout.readline() == "stuck\n", proc.stderr.read()
        for _ in range(5):
            proc.send_signal(signal.SIGUSR1)
            while not (line := proc.stderr.readline()).startswith("Thread 0x"):  # the main thread's stack
                assert line, "the process printed no stack"
            frames.append(proc.stderr.readline())  # its innermost frame
            if f"line {sleep_line} in <module>" in frames[-1]:
                break
            time.sleep(0.2)
        assert proc.poll() is None  # and runs on
    finally:
        proc.kill()
        proc.wait()
    assert f"line {sleep_line} in <module>" in frames[-1], frames  # where it hangs
