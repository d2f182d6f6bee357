"""An outside watcher of a policy node's ~/status: a process that subscribes to nothing else, so the
gaps it sees are the node's (and DDS's), not those of a busy client. Runs until SIGINT or SIGTERM,
then prints one JSON object: messages, the longest gap, and the five longest gaps with the monotonic
time each ended (CLOCK_MONOTONIC is shared by every process, so gaps can be matched with a client's log).

    ROS_DOMAIN_ID=77 .venv/bin/python benchmarks/status_watch.py [--topic /gen0_policy/status]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import rclpy
from rclpy.qos import QoSProfile

from gen0_msgs.msg import PolicyStatus
from gen0_policy.ros.spin import init, spin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default="/gen0_policy/status")
    parser.add_argument("--arrivals", action="store_true", help="also print every arrival: [time, state]")
    args = parser.parse_args()
    init()
    node = rclpy.create_node("gen0_status_watch")
    seen: list[tuple[float, int]] = []  # one append per message: a Ctrl-C between two lists' appends
    # left them of different lengths, and the summary then failed instead of printing

    def on_status(msg: PolicyStatus) -> None:
        seen.append((time.monotonic(), msg.state))

    node.create_subscription(PolicyStatus, args.topic, on_status, QoSProfile(depth=100))
    try:
        spin(node)  # until SIGINT or SIGTERM
    finally:
        arrivals = [t for t, _ in seen]
        gaps = sorted(((b - a, b) for a, b in itertools.pairwise(arrivals)), reverse=True)
        print(
            json.dumps(
                {
                    "messages": len(arrivals),
                    "first": arrivals[0] if arrivals else None,
                    "max_gap_s": round(gaps[0][0], 3) if gaps else None,
                    "longest_gaps": [[round(g, 3), round(end, 3)] for g, end in gaps[:5]],
                }
                | ({"arrivals": [[round(t, 4), s] for t, s in seen]} if args.arrivals else {})
            ),
            flush=True,
        )
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
