"""What a joint_trajectory_controller gets from the policy, measured from outside: the MuJoCo sim node
(rendering its native cameras) and the policy node run as separate processes, as `gen0 bringup sim`
starts them, in sim time; an independent rclpy subscriber that knows only trajectory_msgs and /clock
records every JointTrajectory the controller receives and replays them through its own model of the
controller (ros2_controllers with trajectory replacement: a goal is spliced in at its header stamp
while a trajectory of more than one point runs, else it replaces it at once; cubic between points with
velocities, linear with positions only; the last point is held). Prints JSON per output mode
(command horizons beside one-point streaming):

- command rate (sim Hz), longest gap between commands (sim and wall s);
- starved fraction: time past the end of the newest trajectory (the controller holds still), and the
  longest starvation;
- joint velocity and acceleration of the executed trajectory at 1 kHz: the largest velocity jump
  across a hand-off (a new message taking over), peak and 99th-percentile acceleration;
- the policy process frozen (SIGSTOP/SIGCONT) ``--freezes`` times for ``--freeze-ms``: starvation
  during each freeze and the arm's speed through it;
- /clock against the wall: real-time factor overall and over the fastest second, /clock publishers,
  and how often /clock went backwards (two simulators on one ROS domain would show here).

    .venv/bin/python benchmarks/controller_horizon_benchmark.py --checkpoint checkpoints/multitask_cpu
    .venv/bin/python benchmarks/controller_horizon_benchmark.py --checkpoint CKPT --duration 6 --modes horizon
    .venv/bin/python benchmarks/controller_horizon_benchmark.py --checkpoint CKPT --modes horizon,horizon_viewer \
        --freezes 0   # the viewer node on and off (recording to a file), side by side
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from trajectory_msgs.msg import JointTrajectory

# The policy node's command_horizon (s) per mode; *_viewer modes also run the viewer node (issue 17:
# the control rate must not drop when the viewer is on), recording to a file in the log folder.
MODES = {"horizon": 0.5, "one_point": 0.0, "horizon_viewer": 0.5, "one_point_viewer": 0.0}
TOPIC = "/joint_trajectory_controller/joint_trajectory"


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Observer:
    """Records /clock and every trajectory message with the sim time and wall time it arrived."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node("controller_observer", context=self.context)
        self.lock = threading.Lock()
        self.sim = None  # latest /clock, s
        self.clock_log: list[tuple[float, float]] = []  # (wall, sim)
        self.clock_backwards = 0
        self.messages: list[dict[str, Any]] = []
        self.node.create_subscription(Clock, "/clock", self._on_clock, 100)
        self.node.create_subscription(JointTrajectory, TOPIC, self._on_trajectory, 100)
        self.executor = SingleThreadedExecutor(context=self.context)  # one thread: arrival order is kept
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_clock(self, msg: Clock) -> None:
        t = seconds(msg.clock)
        with self.lock:
            if self.sim is not None and t < self.sim:
                self.clock_backwards += 1
            self.sim = t
            self.clock_log.append((time.monotonic(), t))

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        with self.lock:
            if self.sim is None:
                return
            points = list(msg.points)
            self.messages.append(
                {
                    "sim": self.sim,
                    "wall": time.monotonic(),
                    "stamp": seconds(msg.header.stamp),
                    "times": np.array([seconds(p.time_from_start) for p in points]),
                    "positions": np.array([list(p.positions) for p in points]),
                    "velocities": np.array([list(p.velocities) for p in points]) if points[0].velocities else None,
                }
            )

    def reset(self) -> None:
        with self.lock:
            self.messages, self.clock_log, self.clock_backwards = [], [], 0

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=5)  # rclpy aborts the process if its context goes while it spins
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


class ControllerModel:
    """The desired trajectory a joint_trajectory_controller executes from the messages it receives.
    Points are (time, position, velocity or None); between two points: cubic Hermite when both carry
    velocities, else linear; before the first, the first; after the last, the last held."""

    def __init__(self) -> None:
        self.points: list[tuple[float, np.ndarray, np.ndarray | None]] = []
        self.goal_points = 0  # points of the installed goal (a splice needs more than one running)

    def state(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        pts = self.points
        k = bisect.bisect_right([p[0] for p in pts], t) - 1
        if k < 0:
            return pts[0][1], np.zeros_like(pts[0][1])
        if k >= len(pts) - 1:
            last = pts[-1]
            return last[1], last[2] if last[2] is not None else np.zeros_like(last[1])
        (t0, p0, v0), (t1, p1, v1) = pts[k], pts[k + 1]
        h, s = t1 - t0, t - t0
        if v0 is None or v1 is None:
            return p0 + (p1 - p0) * s / h, (p1 - p0) / h
        slope = (p1 - p0) / h
        c2, c3 = (3 * slope - 2 * v0 - v1) / h, (v0 + v1 - 2 * slope) / h**2
        return p0 + s * (v0 + s * (c2 + s * c3)), v0 + s * (2 * c2 + 3 * s * c3)

    def receive(self, now: float, msg: dict[str, Any]) -> tuple[float, float]:
        """Install a message arriving at ``now``; returns (hand-off time, end time)."""
        start = msg["stamp"] or now
        vel = msg["velocities"]
        times, positions = start + msg["times"], msg["positions"]
        new = [(times[i], positions[i], None if vel is None else vel[i]) for i in range(len(times))]
        if not self.points:
            self.points, self.goal_points = [(now, new[0][1], None)] + [q for q in new if q[0] > now], len(new)
            return now, new[-1][0]
        splice = self.goal_points > 1
        handoff = max(start, now) if splice else now
        here = self.state(now)
        kept = [(now, here[0], here[1])]
        if splice:
            kept += [q for q in self.points if now < q[0] < handoff]
            if not any(abs(q[0] - handoff) < 1e-9 for q in new) and handoff > now:
                p, v = self.state(handoff)
                kept.append((handoff, p, v))
        future = [q for q in new if q[0] >= handoff - 1e-9]
        if future and abs(future[0][0] - now) < 1e-9:
            kept = []  # a point exactly now: the desired state jumps there
        self.points = kept + future if future else kept
        self.goal_points = len(new) + (max(len(kept) - 1, 0) if splice else 0)
        return handoff, new[-1][0]


def analyse(messages: list[dict[str, Any]], t0: float, t1: float, freezes: list[tuple[float, float]]) -> dict[str, Any]:
    """Replay the messages through the controller model over sim time [t0, t1] at 1 kHz."""
    model, dt = ControllerModel(), 0.001
    grid = np.arange(t0, t1, dt)
    ends, handoffs, pos, vel = [], [], [], []
    i, end = 0, -np.inf
    for t in grid:
        while i < len(messages) and messages[i]["sim"] <= t:
            handoff, end = model.receive(messages[i]["sim"], messages[i])
            if messages[i]["sim"] >= t0:
                handoffs.append(handoff)
            i += 1
        if not model.points:
            ends.append(-np.inf)
            pos.append(None)
            vel.append(None)
            continue
        ends.append(end)
        p, v = model.state(t)
        pos.append(p)
        vel.append(v)
    valid = np.array([p is not None for p in pos])
    grid, ends = grid[valid], np.array(ends)[valid]
    vel_arr = np.array([v for v in vel if v is not None])
    starved = grid > ends
    runs, run = [], 0.0
    for s in starved:
        run = run + dt if s else 0.0
        runs.append(run)
    acc = np.diff(vel_arr, axis=0) / dt
    jumps = []
    for h in handoffs:
        k = int(np.searchsorted(grid, h))
        if 2 <= k < len(grid) - 2:
            jumps.append(float(np.max(np.abs(vel_arr[k + 1] - vel_arr[k - 2]))))
    inside = [m for m in messages if t0 <= m["sim"] <= t1]
    gaps_sim = np.diff([m["sim"] for m in inside]) if len(inside) > 1 else np.array([np.inf])
    gaps_wall = np.diff([m["wall"] for m in inside]) if len(inside) > 1 else np.array([np.inf])
    speed = np.linalg.norm(vel_arr, axis=1)
    frozen = []
    for a, b in freezes:
        during = (grid >= a) & (grid <= b + 0.1)
        before = (grid >= a - 0.5) & (grid < a)
        frozen.append(
            {
                "sim_start_s": round(a, 3),
                "sim_length_s": round(b - a, 3),
                "starved_s": round(float(np.sum(starved[during]) * dt), 3),
                "min_speed_during": round(float(np.min(speed[during])), 4) if np.any(during) else None,
                "mean_speed_before": round(float(np.mean(speed[before])), 4) if np.any(before) else None,
            }
        )
    return {
        "messages": len(inside),
        "command_rate_hz": round(len(inside) / (t1 - t0), 2),
        "longest_gap_s": {"sim": round(float(np.max(gaps_sim)), 4), "wall": round(float(np.max(gaps_wall)), 4)},
        "points_per_message": round(float(np.mean([len(m["times"]) for m in inside])), 1) if inside else 0,
        "late_messages": sum(1 for m in inside if m["stamp"] and m["stamp"] < m["sim"]),
        "starved_fraction": round(float(np.mean(starved)), 4),
        "longest_starvation_s": round(float(np.max(runs)) if runs else 0.0, 3),
        "velocity_jump_at_handoff_rad_s": {
            "max": round(max(jumps), 4) if jumps else None,
            "p95": round(float(np.percentile(jumps, 95)), 4) if jumps else None,
        },
        "acceleration_rad_s2": {
            "peak": round(float(np.max(np.abs(acc))), 3) if len(acc) else None,
            "p99": round(float(np.percentile(np.max(np.abs(acc), axis=1), 99)), 3) if len(acc) else None,
        },
        "mean_speed_rad_s": round(float(np.mean(speed)), 4),
        "freezes": frozen,
    }


def clock_report(log: list[tuple[float, float]], backwards: int, publishers: int) -> dict[str, Any]:
    if len(log) < 2:
        return {"clock_messages": len(log)}
    wall, sim = np.array(log).T
    bins = []
    for w in np.arange(wall[0], wall[-1] - 1.0, 0.5):
        sel = (wall >= w) & (wall < w + 1.0)
        if np.sum(sel) > 1:
            bins.append((sim[sel][-1] - sim[sel][0]) / (wall[sel][-1] - wall[sel][0]))
    return {
        "real_time_factor": round(float((sim[-1] - sim[0]) / (wall[-1] - wall[0])), 3),
        "fastest_second_rtf": round(float(max(bins)), 3) if bins else None,
        "slowest_second_rtf": round(float(min(bins)), 3) if bins else None,
        "clock_went_backwards": backwards,
        "clock_publishers": publishers,
    }


def start_nodes(args: argparse.Namespace, horizon: float, log_dir: Path, mode: str) -> dict[str, subprocess.Popen]:
    """The sim and policy nodes exactly as `gen0 bringup sim` starts them, with this command_horizon."""
    from gen0_policy.bringup import commands
    from gen0_policy.paths import config_dir

    bringup = argparse.Namespace(
        target="sim", embodiment=args.embodiment, task=args.task, seed=0, checkpoint=args.checkpoint,
        mode="harmonic", instruction="", param=[f"command_horizon:={horizon}"], policy_params="",
        sim_params="",
    )  # fmt: skip
    env = dict(os.environ)
    env.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(config_dir() / "fastdds.xml"))
    env.setdefault("MUJOCO_GL", "egl")  # as `gen0` sets it: headless machines render offscreen
    procs = {}
    named = commands(bringup)
    if mode.endswith("_viewer"):
        from gen0_policy.bringup import node_command

        suffix = ".rrd" if args.viewer_backend == "rerun" else ".mcap"
        params = {"embodiment": args.embodiment, "backend": args.viewer_backend,
                  "save_path": str(log_dir / f"{mode}{suffix}")}  # fmt: skip
        named.append(("viewer", node_command("gen0_policy.ros.viewer_node", config_dir() / "viewer_node.yaml", params)))
    for name, command in named:
        log = (log_dir / f"{mode}-{name}.log").open("w")
        procs[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return procs


def stop_nodes(procs: dict[str, subprocess.Popen]) -> None:
    try:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)  # a frozen process cannot stop
                os.killpg(proc.pid, signal.SIGINT)
        for proc in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
    finally:  # even when interrupted: never leave a node running
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run_mode(args: argparse.Namespace, observer: Observer, mode: str, log_dir: Path) -> dict[str, Any]:
    procs = start_nodes(args, MODES[mode], log_dir, mode)
    try:
        deadline = time.monotonic() + args.startup_timeout
        while len(observer.messages) < 20:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs.values()):
                raise RuntimeError(f"no commands from the {mode} policy (logs in {log_dir})")
            time.sleep(0.2)
        time.sleep(args.warmup)
        observer.reset()
        wall0 = time.monotonic()
        freeze_at = [wall0 + args.duration * (k + 1) / (args.freezes + 1) for k in range(args.freezes)]
        freezes = []
        for at in freeze_at:
            time.sleep(max(0.0, at - time.monotonic()))
            a = observer.sim
            os.killpg(procs["policy"].pid, signal.SIGSTOP)
            time.sleep(args.freeze_ms / 1000)
            b = observer.sim
            os.killpg(procs["policy"].pid, signal.SIGCONT)
            freezes.append((a, b))
        time.sleep(max(0.0, wall0 + args.duration - time.monotonic()))
        publishers = observer.node.count_publishers("/clock")
        with observer.lock:
            messages, clock_log, backwards = list(observer.messages), list(observer.clock_log), observer.clock_backwards
    finally:
        stop_nodes(procs)
    t0, t1 = clock_log[0][1] + 0.1, clock_log[-1][1]
    result = analyse(messages, t0, t1, freezes)
    result["clock"] = clock_report(clock_log, backwards, publishers)
    result["command_horizon_s"] = MODES[mode]
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="trained checkpoint folder")
    parser.add_argument("--embodiment", default="panda")
    parser.add_argument("--task", default="reach")
    parser.add_argument("--modes", default="horizon,one_point", help=f"comma-separated, from {list(MODES)}")
    parser.add_argument("--duration", type=float, default=30.0, help="wall s measured per mode")
    parser.add_argument("--warmup", type=float, default=3.0, help="wall s after the first commands, not measured")
    parser.add_argument("--freezes", type=int, default=3, help="SIGSTOPs of the policy process per mode")
    parser.add_argument("--freeze-ms", type=float, default=300.0, help="length of each freeze, wall ms")
    parser.add_argument("--startup-timeout", type=float, default=180.0, help="wall s to wait for the first commands")
    parser.add_argument("--log-dir", default="", help="where the nodes' logs go (default: a temp folder)")
    parser.add_argument("--viewer-backend", default="rerun", choices=("rerun", "foxglove"), help="for *_viewer modes")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    log_dir = Path(args.log_dir or f"/tmp/gen0_controller_horizon_{os.getpid()}")
    log_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "benchmark": "controller_horizon_benchmark",
        "settings": vars(args),
        "log_dir": str(log_dir),
    }
    observer = Observer()
    try:
        for mode in args.modes.split(","):
            observer.reset()
            try:
                results[mode] = run_mode(args, observer, mode, log_dir)
            except RuntimeError as exc:  # report it, measure the other modes
                results[mode] = {"error": str(exc)}
            (log_dir / "results.json").write_text(json.dumps(results, indent=2))  # what is done so far
    finally:
        observer.close()
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
