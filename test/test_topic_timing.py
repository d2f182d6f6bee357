"""benchmarks/topic_timing.py, the outside judge of what a sim's topics deliver in sim time: against a
publisher of known rates and delays, it reports the clock's pace, each topic's rate and lateness."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Header

from gen0_policy.ros.conversions import to_time
from spinning import Spinner

TIMING = Path(__file__).resolve().parents[1] / "benchmarks" / "topic_timing.py"


def test_the_probe_reports_the_clock_pace_and_each_topics_rate_and_lateness_in_sim_time() -> None:
    """/clock ticks 10 ms of sim time every 20 ms of wall time (0.5x); the probed topic carries every
    fourth tick's stamp, published three ticks later: 25 Hz of sim time, 30 ms late; another topic,
    stamped zero, goes out every second tick: 50 Hz."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("timing_source", context=context)
    clock_pub = node.create_publisher(Clock, "/clock", 100)
    state_pub = node.create_publisher(JointState, "/probe_states", 100)
    now_pub = node.create_publisher(JointState, "/probe_now", 100)  # stamped zero, as a command may be
    tick = [0]

    def publish() -> None:
        tick[0] += 1
        now = 1.0 + 0.01 * tick[0]
        clock_pub.publish(Clock(clock=to_time(now)))
        if tick[0] % 2 == 0:
            now_pub.publish(JointState())
        if tick[0] % 4 == 3:
            state_pub.publish(JointState(header=Header(stamp=to_time(now - 0.03))))

    node.create_timer(0.02, publish)
    spinner = Spinner(SingleThreadedExecutor(context=context)).start()
    spinner.executor.add_node(node)
    try:
        topics = [f"--topic=/probe_{name}:sensor_msgs/msg/JointState" for name in ("states", "now")]
        command = [sys.executable, str(TIMING), "--seconds", "4", *topics]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout)
    finally:
        spinner.stop()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert 0.4 < result["clock_per_wall"] < 0.6  # 0.5x, give or take a timer held up and catching up
    assert result["clock_hz_sim"] == 100.0
    probe = result["topics"]["/probe_states"]
    assert probe["messages"] > 20 and probe["hz_sim"] == 25.0
    late = probe["late_ms_sim_p5_p50_p95"]  # less where a message overtook /clock ticks sent before it
    assert late[0] <= late[1] == 30.0 and late[2] <= 30.0
    assert probe["gap_ms_sim_p50_p95_max"] == [40.0, 40.0, 40.0]
    now = result["topics"]["/probe_now"]  # timed by the clock at arrival; no lateness to tell
    assert now["hz_sim"] == pytest.approx(50.0, rel=0.05) and now["late_ms_sim_p5_p50_p95"] == []


def test_the_clock_pace_is_not_moved_by_a_burst_of_catch_up_ticks_at_the_window_edge() -> None:
    """A source held up 600 ms of wall time while the probe started, then catching up in a burst: the
    end points would say 0.57x, as a CI run once saw; the fit says what the clock keeps to, 0.5x."""
    spec = importlib.util.spec_from_file_location("topic_timing", TIMING)
    timing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(timing)
    held_ticks = 30  # 600 ms of wall at 20 ms a tick, all sent in the first 10 ms of the window
    clock = [(0.01 * i / held_ticks, 0.01 * i) for i in range(held_ticks)]
    clock += [(0.01 + 0.02 * i, 0.01 * (held_ticks + i)) for i in range(200)]
    result = timing.summarize(clock, {})
    assert result["sim_s"] / result["wall_s"] > 0.56
    assert result["clock_per_wall"] == pytest.approx(0.5, abs=0.02)
