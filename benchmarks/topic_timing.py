"""What an outside rclpy node sees of a running sim, in sim time: how fast /clock runs against the wall,
and for each topic its rate in sim time and how far the clock had gone past a message's stamp when it
arrived (a camera frame stamped at 1.000 s that arrives while /clock says 1.047 s is 47 ms late). A
message stamped zero ("now", as a controller command may be) is timed by the clock at its arrival.

    gen0 bringup sim --embodiment sawyer &                       # or a closed_loop_benchmark.py run
    python benchmarks/topic_timing.py --seconds 20               # the Sawyer's topics by default
    python benchmarks/topic_timing.py --topic /scene/image_raw:sensor_msgs/msg/Image --topic ...

Prints JSON. It knows nothing of the project: plain rclpy, the messages' own header stamps.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from typing import Any

import numpy as np

SAWYER_TOPICS = [
    "/corner2/image_raw:sensor_msgs/msg/Image",
    "/gripperPOV/image_raw:sensor_msgs/msg/Image",
    "/joint_states:sensor_msgs/msg/JointState",
    "/cartesian_motion_controller/target_frame:geometry_msgs/msg/PoseStamped",
]


def message_type(name: str) -> Any:
    """``sensor_msgs/msg/Image`` -> the class."""
    package, kind, cls = name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), cls)


def percentiles_ms(values: list[float], q: tuple[int, ...] = (5, 50, 95)) -> list[float]:
    return [round(float(v) * 1e3, 1) for v in np.percentile(values, q)] if values else []


def clock_pace(wall: np.ndarray, sim: np.ndarray, edge: float = 0.1) -> float:
    """Sim seconds per wall second between 10 % and 90 % of the window, not end to end: a burst of
    catch-up ticks at either edge (a clock held up while this probe started) would move the latter."""
    a, b = wall[0] + edge * (wall[-1] - wall[0]), wall[-1] - edge * (wall[-1] - wall[0])
    return round(float(np.interp(b, wall, sim) - np.interp(a, wall, sim)) / float(b - a), 3)


Arrivals = dict[str, list[tuple[float | None, float]]]


def summarize(clock: list[tuple[float, float]], arrivals: Arrivals) -> dict[str, Any]:
    """``clock``: (wall s, sim s) per /clock message; ``arrivals``: topic -> (stamp or None for a zero
    stamp, sim clock on arrival)."""
    wall, sim = np.array(clock).T if clock else (np.zeros(1), np.zeros(1))
    span_wall, span_sim = float(wall[-1] - wall[0]), float(sim[-1] - sim[0])
    out: dict[str, Any] = {
        "wall_s": round(span_wall, 2),
        "sim_s": round(span_sim, 3),
        "clock_per_wall": clock_pace(wall, sim) if span_wall > 0 else None,
        "clock_hz_sim": round((len(sim) - 1) / span_sim, 1) if span_sim > 0 else None,
        "topics": {},
    }
    for topic, rows in arrivals.items():
        stamps = np.sort([c if s is None else s for s, c in rows])
        gaps, span = np.diff(stamps), float(stamps[-1] - stamps[0]) if len(stamps) else 0.0
        out["topics"][topic] = {
            "messages": len(rows),
            "hz_sim": round((len(stamps) - 1) / span, 1) if span > 0 else None,
            "gap_ms_sim_p50_p95_max": [*percentiles_ms(list(gaps), (50, 95)), round(float(gaps.max()) * 1e3, 1)]
            if gaps.size
            else [],
            "late_ms_sim_p5_p50_p95": percentiles_ms([c - s for s, c in rows if s is not None]),
        }
    return out


def record(topics: list[str], seconds: float) -> dict[str, Any]:
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock

    def t(stamp: Any) -> float:
        return stamp.sec + stamp.nanosec * 1e-9

    rclpy.init()
    node = Node("topic_timing_probe")
    clock: list[tuple[float, float]] = []
    arrivals: Arrivals = {}
    node.create_subscription(Clock, "/clock", lambda m: clock.append((time.monotonic(), t(m.clock))), 100)
    for spec in topics:
        topic, kind = spec.split(":")
        rows = arrivals.setdefault(topic, [])

        def on_message(msg: Any, rows: list = rows) -> None:
            if clock:
                stamped = msg.header.stamp.sec or msg.header.stamp.nanosec  # zero means "now"
                rows.append((t(msg.header.stamp) if stamped else None, clock[-1][1]))

        qos = qos_profile_sensor_data if kind.endswith("/Image") else 10
        node.create_subscription(message_type(kind), topic, on_message, qos)
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return summarize(clock, arrivals)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="wall seconds to listen")
    parser.add_argument("--topic", action="append", help="TOPIC:pkg/msg/Type (repeat); default: the Sawyer's")
    args = parser.parse_args(argv)
    result = {"benchmark": "topic_timing", **record(args.topic or SAWYER_TOPICS, args.seconds)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
