"""The ROS closed loop without ROS and without time pressure: the policy node's Runtime and the sim
node's SimServer joined in one process, the physics advancing exactly one control period per runtime
tick (so inference takes no sim time unless asked) and each camera frame rendered the moment it is due.

``gen0 sim rollout --policy CKPT`` runs its episodes here, so the number a user gets from the
simulator is the one the policy node earns (the runtime's executor, safety filter, horizons and the
controllers' emulation), less DDS and a busy CPU. ``benchmarks/lockstep_loop.py`` puts back what ROS
adds, in sim time: ``think_s`` (the sim runs on while the model thinks; the harmonic executor, on its
own thread as in the node, needs it), ``frame_delay_s`` (frames arrive after they were taken) and
``clock_lag_s`` (the runtime clock behind the sim's).

Each episode gets a fresh runtime, where the node keeps one across goals: what carries from one
episode to the next through ROS (the scene reset while the arm still braked, fixed in 21b4e50) is not
seen here. Harmonic runs are not deterministic (the worker is a thread; outcomes of a seed can differ
between runs), synchronous ones are.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import types
from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np

from gen0_policy.commands import TrajectoryCommand
from gen0_policy.embodiment import load_embodiment
from gen0_policy.runtime import Runtime, RuntimeConfig
from gen0_policy.runtime.clock import FunctionClock
from gen0_policy.runtime.loading import load_chunk_policy
from gen0_policy.runtime.routing import horizon_targets, routes, tick_targets
from gen0_policy.sim.server import SimConfig, SimServer, SnapshotRenderer


class Lockstep:
    """One SimServer and one Runtime; :meth:`episode` runs a goal to success or timeout."""

    def __init__(
        self,
        checkpoint: str,
        embodiment: str,
        task: str,
        runtime: dict[str, Any],
        sim: dict[str, Any],
        limit_scale: float = 1.0,
        think_s: float = 0.0,
        frame_delay_s: float = 0.0,
        clock_lag_s: float = 0.0,
    ) -> None:
        self.embodiment = load_embodiment(embodiment)
        # The runtime's safety filter may be given faster joints than the robot's (an experiment: do the
        # velocity and acceleration limits cost the task?); the simulated robot is unchanged.
        joints = tuple(
            dataclasses.replace(j, velocity=j.velocity * limit_scale, acceleration=j.acceleration * limit_scale)
            for j in self.embodiment.joints
        )
        self.runtime_embodiment = dataclasses.replace(self.embodiment, joints=joints)
        self.server = SimServer(SimConfig(embodiment=embodiment, task=task, real_time_factor=0.0, **sim))
        # command_horizon 0 is the node's "one point per tick" (no horizons), as policy_node.py maps it
        self.horizons = runtime.get("command_horizon", 1.0) > 0
        runtime = {k: v for k, v in runtime.items() if not (k == "command_horizon" and v == 0)}
        own = {"sync_execute_fraction": self.embodiment.sync_execute_fraction}  # as the node's default
        self.config = RuntimeConfig(**{"clock_stall_timeout": 1e9, "worker_timeout": 1e9, **own, **runtime})
        self.policy = load_chunk_policy(checkpoint, self.embodiment, threads=self.config.inference_threads)
        self.think_s = think_s
        self.clock_lag_s = clock_lag_s  # the runtime clock behind the sim's
        self.frame_delay_s = frame_delay_s  # capture to arrival of a frame (70-280 ms through ROS here)
        self.trace: dict[int, Any] | None = None  # seed -> chunks and joint states, if asked for

    def _outputs(self, rt: Runtime) -> None:
        """The node's routing (runtime/routing.py), to the server's controllers instead of topics."""
        server, period = self.server, rt.config.period
        routes_ = routes(self.embodiment)

        def on_command(command: Any) -> None:
            for route, positions in tick_targets(routes_, command, self.horizons):
                if route.kind == "trajectory":
                    server.command_trajectory(
                        route.name, TrajectoryCommand(route.joints, np.array([period]), positions[None])
                    )
                else:
                    server.command_positions(route.name, positions)

        def on_horizon(horizon: Any) -> None:
            for route, h in horizon_targets(routes_, horizon):
                server.command_trajectory(
                    route.name, TrajectoryCommand(route.joints, h.times, h.positions, h.velocities, start_time=h.start)
                )

        rt.on_command, rt.on_horizon = on_command, on_horizon if self.horizons else None

    def episode(
        self, seed: int, timeout_s: float, linger_s: float = 0.0, record_fps: float | None = None
    ) -> dict[str, Any]:
        """Run the goal of ``seed`` until success (and ``linger_s`` more: a video shows the result) or
        ``timeout_s`` of sim time; ``record_fps``: every camera's frames at that rate, for a video,
        under ``images`` (arrays, not JSON)."""
        server, emb = self.server, self.embodiment
        status = server.reset("", seed, clock_s=0.0)  # from 0: a seed's episode is the same whatever ran before
        harmonic = self.config.mode == "harmonic"
        think_ticks = max(1, round(self.think_s * self.config.control_rate_hz)) if self.think_s > 0 else 0
        thinking = SimThinking(self.policy, think_ticks, on_worker=harmonic)
        # The node's clock is its newest /clock message, read on a busy executor: it can lag the sim's.
        lag = self.clock_lag_s
        rt = Runtime(thinking, self.runtime_embodiment, self.config, clock=FunctionClock(lambda: server.now() - lag))
        self._outputs(rt)
        # tcp: [t, tool xyz, the grasped object's xyz, its place's xyz], for the grasp report and --trace
        trace: dict[str, list] = {"chunks": [], "joints": [], "tcp": []}
        task = getattr(server.env, "task", None)  # Meta-World's world has no task object: no grasp report
        grasped = task.grasped if task is not None else None
        if self.trace is not None or grasped:
            rt.on_chunk = lambda c: trace["chunks"].append(
                {
                    "t0": c.t0,
                    "dt": c.step_dt,
                    "obs": c.observation_stamp,
                    "actions": c.actions.tolist(),
                    "lat": c.inference_latency,
                }
            )
        renderer = SnapshotRenderer(server.config.camera_rate, server.config.camera_size)
        ticks_per_control = max(1, round(server.config.update_rate / self.config.control_rate_hz))
        physics_period = 1.0 / server.config.update_rate
        start = server.now()
        clock = {"next": start}
        in_flight: list[tuple[float, dict[str, np.ndarray]]] = []  # frames taken, not yet delivered
        result: dict[str, Any] = {"seed": seed, "success": False, "seconds": timeout_s}
        video: dict[str, list[np.ndarray]] = {c.name: [] for c in emb.cameras}
        next_frame = {"t": start}

        def advance() -> None:
            """One control period of the sim node: physics ticks, joint states, due camera frames."""
            for _ in range(ticks_per_control):
                # Ticks on multiples of the period, as the server's own loop places them (200 Hz on a 2 ms
                # timestep alternates 2 and 3 steps; "now + period" would round 2.5 either way).
                clock["next"] = max(clock["next"] + physics_period, server.now() + 1e-9)
                now, _ = server.step(clock["next"])
                rt.perception.put_joints(server.env.joint_positions(), now)
                if self.trace is not None or grasped:
                    data = server.env.data
                    trace["joints"].append([now, *server.env.joint_positions().tolist()])
                    if task is not None:
                        obj = data.body(grasped).xpos.tolist() if grasped else []
                        place = task.place_target(server.env.model, data) if grasped else None
                        trace["tcp"].append([now, *task.tcp(data).tolist(), *obj, *([] if place is None else place)])
                if record_fps and now >= next_frame["t"] - 1e-9:
                    next_frame["t"] += 1.0 / record_fps
                    for cam in emb.cameras:
                        video[cam.name].append(server.env.render(cam.name))
                due = renderer.due(now, emb.cameras)
                if due:
                    renderer.capture(server.env, now, due)
                    in_flight.append((now, renderer.render(due)))
                while in_flight and in_flight[0][0] + self.frame_delay_s <= now + 1e-9:  # delivered, stamped
                    taken, images = in_flight.pop(0)  # when they were taken
                    for cam, image in images.items():
                        rt.perception.put_image(cam, image, taken)
            elapsed = server.now() - start
            if not result["success"] and server.env.success():
                result.update(success=True, seconds=round(elapsed, 3))
            if (result["success"] and elapsed >= result["seconds"] + linger_s - 1e-9) or elapsed >= timeout_s:
                thinking.done.set()
                rt.stop()

        thinking.advance = advance
        rt.set_instruction(status.instruction)
        rt.set_workspace(status.workspace_lower, status.workspace_upper)  # as the node takes it from /task_status
        rt.begin_task(status.instruction)
        wall = time.monotonic()
        try:
            advance()
            if harmonic:
                self._harmonic(rt, thinking, advance)
            else:
                # The synchronous loop on this thread, each tick one control period of physics. Its waits
                # (the control period, the 1 s braking cap) read sim time: it is the only clock here, so
                # outcomes do not depend on how fast this machine renders.
                rt.run_here(advance, types.SimpleNamespace(monotonic=server.now, sleep=lambda _s: None))
        finally:
            thinking.done.set()
            rt.stop()
            renderer.close()
        result.update(chunks=rt.meters.chunks, wall_s=round(time.monotonic() - wall, 1), instruction=status.instruction)
        if record_fps:
            result["images"] = {cam: np.stack(frames) for cam, frames in video.items()}
        if grasped:
            result["grasp"] = grasp_report(server.env, trace, self.embodiment.lower[-1], self.embodiment.upper[-1])
        if self.trace is not None:
            self.trace[seed] = {"start": start, **trace}
        return result

    @staticmethod
    def _harmonic(rt: Runtime, thinking: SimThinking, advance: Callable[[], None]) -> None:
        """The harmonic executor on its own thread, as in the node, ticked from here; the sim waits for
        the model when an inference outlasts its ``think_s``."""
        rt.start(drive=False)
        while not rt.stopping:
            rt.tick()
            advance()
            thinking.period_passed()


def grasp_report(env: Any, trace: dict[str, list], closed: float, opened: float) -> dict[str, Any]:
    """Where the fingers began to close (measured gripper a quarter of its stroke shut; holding the cube
    leaves it half open, missing shuts it): the tool's horizontal distance from the object then, where
    the plan executing at that moment put the tool (forward kinematics of its joint targets at that
    time), and how far the object was lifted. A plan far from the object is a perception or policy
    error; a plan on it with the tool elsewhere is a tracking error. Where the task has a place to put
    the object (trace rows carry it after the object), also where the object was let go: the
    fingers open again (three quarters of the stroke) after its highest point, and the object's
    horizontal distance from that place then (``release``: None if it was never let go)."""
    if not trace["tcp"]:
        return {}
    rows, joints = np.array(trace["tcp"]), np.array(trace["joints"])
    t, tool, obj = rows[:, 0], rows[:, 1:4], rows[:, 4:7]
    out: dict[str, Any] = {"object_lift_m": round(float(obj[:, 2].max() - obj[0, 2]), 4)}
    gripper_open = (joints[:, -1] - closed) / (opened - closed)  # 0 shut, 1 open
    if rows.shape[1] >= 10:
        out["release"] = release_report(t, obj, rows[:, 7:10], gripper_open)
    closing = np.flatnonzero(gripper_open < 0.75)
    chunks = [c for c in trace["chunks"] if len(closing) and c["t0"] <= t[closing[0]]]
    if not chunks:
        return {**out, "closed": False}
    i = int(closing[0])
    actions = np.array(chunks[-1]["actions"])
    times = chunks[-1]["t0"] + np.arange(len(actions)) * chunks[-1]["dt"]
    target = np.array([np.interp(t[i], times, actions[:, j]) for j in range(actions.shape[1])])
    data = mujoco.MjData(env.model)
    data.qpos[:] = env.data.qpos
    data.qpos[[env.model.joint(n).qposadr[0] for n in env.embodiment.joint_names]] = target
    mujoco.mj_kinematics(env.model, data)
    planned = env.task.tcp(data)
    return {
        **out,
        "closed": True,
        "close_s": round(float(t[i] - t[0]), 2),
        "tool_xy_to_object_at_close_m": round(float(np.linalg.norm(tool[i, :2] - obj[i, :2])), 4),
        "planned_xy_to_object_at_close_m": round(float(np.linalg.norm(planned[:2] - obj[i, :2])), 4),
    }


def release_report(t: np.ndarray, obj: np.ndarray, place: np.ndarray, gripper_open: np.ndarray) -> dict | None:
    """Where a lifted object was let go: the first sample after its highest point with the fingers
    three quarters open, the object's horizontal distance from ``place`` then and its height above it."""
    peak = int(np.argmax(obj[:, 2]))
    opened = np.flatnonzero((np.arange(len(t)) > peak) & (gripper_open > 0.75))
    if not len(opened):
        return None
    i = int(opened[0])
    return {
        "release_s": round(float(t[i] - t[0]), 2),
        "object_xy_to_place_m": round(float(np.linalg.norm(obj[i, :2] - place[i, :2])), 4),
        "object_above_place_m": round(float(obj[i, 2] - place[i, 2]), 4),
    }


class SimThinking:
    """The policy, its inference lasting ``ticks`` control periods of sim time however long it takes on
    this machine (0: none). On the ticking thread (synchronous), the sim runs those periods on (the arm
    holding) once the model has answered; on a worker (harmonic), the ticking thread reports each period
    (:meth:`period_passed`) and waits for the answer once they are spent. The rest is the policy's."""

    def __init__(self, policy: Any, ticks: int, on_worker: bool) -> None:
        self._policy, self.ticks, self.on_worker = policy, ticks, on_worker
        self.advance: Callable[[], None] = lambda: None  # one control period of the sim
        self.done = threading.Event()  # the episode is over: nobody waits any more
        # Counters under one condition, not events: with events the worker cleared "answered" for its
        # next inference before the ticking thread had seen it set, and both waited for ever.
        self._cond = threading.Condition()
        self._thinking = self._spent = False
        self._periods = 0
        self._answers = 0  # inferences answered so far

    def infer(self, *args: Any, **kwargs: Any) -> Any:
        if self.on_worker:
            with self._cond:
                self._thinking, self._spent, self._periods = True, False, 0
        try:
            return self._policy.infer(*args, **kwargs)
        finally:
            if self.on_worker:
                with self._cond:
                    self._wait(lambda: self._spent)  # the sim time of the inference has passed
                    self._thinking = self._spent = False
                    self._answers += 1
                    self._cond.notify_all()
            else:
                for _ in range(self.ticks):
                    self.advance()

    def period_passed(self) -> None:
        """A control period passed on the ticking thread; once an inference's periods are spent, wait for it."""
        with self._cond:
            if not self._thinking or self._spent:
                return
            self._periods += 1
            if self._periods < self.ticks:
                return
            self._spent = True
            answer = self._answers + 1
            self._cond.notify_all()
            self._wait(lambda: self._answers >= answer)

    def _wait(self, predicate: Callable[[], bool]) -> None:
        """Wait on the condition (held) until ``predicate`` or the episode's end."""
        while not predicate() and not self.done.is_set():
            self._cond.wait(0.1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)
