"""benchmarks/status_watch.py, the fuzz benchmark's outside judge of status gaps: stopped with Ctrl-C
while statuses pour in, it still prints one summary whose every arrival is paired with its state."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor

from gen0_msgs.msg import PolicyStatus
from spinning import Spinner

WATCH = Path(__file__).resolve().parents[1] / "benchmarks" / "status_watch.py"


def test_a_watcher_stopped_mid_stream_prints_every_arrival_with_its_state() -> None:
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("status_source", context=context)
    publisher = node.create_publisher(PolicyStatus, "/gen0_policy/status", 100)
    status = PolicyStatus(state=PolicyStatus.STATE_RUNNING)
    node.create_timer(0.002, lambda: publisher.publish(status))  # 500 Hz: a Ctrl-C lands mid-callback
    spinner = Spinner(SingleThreadedExecutor(context=context)).start()
    spinner.executor.add_node(node)
    watch = subprocess.Popen([sys.executable, str(WATCH), "--arrivals"], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30.0
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert publisher.get_subscription_count() == 1, "the watcher never subscribed"
        time.sleep(1.0)
        watch.send_signal(signal.SIGINT)
        summary = json.loads(watch.communicate(timeout=30)[0])
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
        spinner.stop()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert watch.returncode == 0
    assert summary["messages"] > 50
    assert len(summary["arrivals"]) == summary["messages"]
    assert {state for _, state in summary["arrivals"]} == {PolicyStatus.STATE_RUNNING}
    times = [t for t, _ in summary["arrivals"]]
    assert times == sorted(times) and summary["max_gap_s"] >= 0.0
