"""An outside probe of a running sim + policy: records what a user's rclpy node sees (the policy's action
chunks and status, the controller's trajectories, the sim's joint states and task status), and sets
one episode beside ``lockstep_loop.py --trace`` of the same seed.

    gen0 demo --task pick_place --episodes 2 --seed 115 &      # in one shell (episode 2: seed 116)
    python benchmarks/ros_trace.py record --seconds 50 --out ros.json
    python benchmarks/lockstep_loop.py --task pick_place --seed 116 --episodes 1 --trace lockstep.json
    python benchmarks/ros_trace.py compare ros.json lockstep.json --seed 116

``compare`` prints JSON: each chunk's observation stamp and start, and the arm's joints every 0.1 s
from each run's first chunk, in seconds since the episode's reset.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np


def record(seconds: float, out: str) -> None:
    import rclpy
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from gen0_msgs.msg import ActionChunk, PolicyStatus, TaskStatus

    def t(stamp: Any) -> float:
        return stamp.sec + stamp.nanosec * 1e-9

    rclpy.init()
    node = Node("gen0_trace_probe")
    trace: dict[str, list] = {"chunks": [], "joints": [], "task_status": [], "trajectories": [], "policy_status": []}
    clock = [0.0]  # the newest /clock, sim s

    def on_clock(m: Clock) -> None:
        clock[0] = t(m.clock)

    def on_chunk(m: ActionChunk) -> None:
        actions = np.array(m.positions).reshape(m.horizon, -1)
        chunk = {"t0": t(m.header.stamp), "obs": t(m.observation_stamp), "lat": m.inference_latency}
        trace["chunks"].append({**chunk, "actions": actions.tolist()})

    def on_trajectory(m: JointTrajectory) -> None:
        trace["trajectories"].append(
            {
                "received": clock[0],
                "start": t(m.header.stamp),
                "times": [t(p.time_from_start) for p in m.points],
                "positions": [list(p.positions) for p in m.points],
            }
        )

    node.create_subscription(Clock, "/clock", on_clock, 10)
    node.create_subscription(ActionChunk, "/gen0_policy/action_chunk", on_chunk, 50)
    node.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", on_trajectory, 100)
    node.create_subscription(
        JointState, "/joint_states", lambda m: trace["joints"].append([t(m.header.stamp), *m.position]), 500
    )
    node.create_subscription(
        TaskStatus, "/task_status", lambda m: trace["task_status"].append([t(m.header.stamp), m.elapsed, m.seed]), 50
    )
    node.create_subscription(
        PolicyStatus, "/gen0_policy/status", lambda m: trace["policy_status"].append([clock[0], m.state, m.reason]), 100
    )
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.01)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    with open(out, "w") as f:
        json.dump(trace, f)
    print(json.dumps({k: len(v) for k, v in trace.items()}))


def compare(ros_file: str, lockstep_file: str, seed: int) -> None:
    with open(ros_file) as f:
        ros = json.load(f)
    with open(lockstep_file) as f:
        lockstep = json.load(f)[str(seed)]
    # The last reset to this seed: the sim clock runs on across episodes, and a stamp minus the episode's
    # elapsed time is when it was reset.
    resets = [stamp - elapsed for stamp, elapsed, s in ros["task_status"] if s == seed]
    if not resets:
        raise SystemExit(f"no task status of seed {seed} in {ros_file}")
    start = float(np.max(np.round(resets, 2)))
    runs = {
        "ros": (start, [c for c in ros["chunks"] if c["t0"] >= start], np.array(ros["joints"])),
        "lockstep": (lockstep["start"], lockstep["chunks"], np.array(lockstep["joints"])),
    }
    report: dict[str, Any] = {"seed": seed}
    for name, (t_reset, chunks, joints) in runs.items():
        chunks = sorted(chunks, key=lambda c: c["t0"])
        first = chunks[0]["t0"] if chunks else t_reset
        times = joints[:, 0]
        samples = []
        for dt in np.arange(0.0, 3.0, 0.1):
            i = min(int(np.searchsorted(times, first + dt)), len(times) - 1)
            samples.append([round(float(dt), 1), *np.round(joints[i, 1:], 3).tolist()])
        report[name] = {
            "chunks": [
                {"observation_s": round(c["obs"] - t_reset, 3), "start_s": round(c["t0"] - t_reset, 3)} for c in chunks
            ],
            "joints_from_first_chunk": samples,
        }
    print(json.dumps(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    rec = verbs.add_parser("record", help="record the topics for a while")
    rec.add_argument("--seconds", type=float, default=40.0, help="wall s to record")
    rec.add_argument("--out", required=True, help="JSON file")
    cmp = verbs.add_parser("compare", help="one episode through ROS beside lockstep_loop.py --trace")
    cmp.add_argument("ros")
    cmp.add_argument("lockstep")
    cmp.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    if args.verb == "record":
        record(args.seconds, args.out)
    else:
        compare(args.ros, args.lockstep, args.seed)


if __name__ == "__main__":
    main()
