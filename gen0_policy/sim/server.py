"""The simulator as a ros2_control robot, without ROS: what gen0_sim_node serves, testable on its own.

Physics runs on its own thread at ``update_rate`` in sim time, paced against the wall clock by
``real_time_factor``; cameras render snapshots of the physics state on another thread. As in gz-sim, a
camera runs at its rate in sim time: physics waits, one tick past a frame at most, for the renderer
(``camera_lockstep``), so a slow CPU slows the clock rather than dropping frames or showing them late.
Commands arrive through :meth:`SimServer.command_trajectory`
and :meth:`SimServer.command_positions` from any thread, are checked at once and executed from the
next physics tick; what the robot publishes leaves through the callbacks. The sim clock (what /clock
says) continues monotonically across resets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import mujoco
import numpy as np

from gen0_policy.commands import TrajectoryCommand
from gen0_policy.embodiment import CameraSpec, load_embodiment
from gen0_policy.errors import CommandError, ConfigError, Gen0Error
from gen0_policy.sim.controllers import ControllerSet
from gen0_policy.sim.env import SimEnv, make_env
from gen0_policy.sim.tasks import available_tasks
from gen0_policy.sim.teleop import ControllerCommand, ExpertTeleop

log = logging.getLogger(__name__)
SLOW_COMMAND_S = 0.05  # s a command may take to install in a physics tick before the sim says so
MAX_QUEUED = 1000  # commands waiting for the physics tick (10 s of a 100 Hz stream)
CLOCK_REPORT_S = 10.0  # s of wall time between checks that the renderer does not hold /clock back

# A start time this far ahead of the sim clock is almost surely a wall-clock stamp from a node
# that does not run with use_sim_time; executing it would mean waiting for decades.
MAX_START_AHEAD = 3600.0  # s


@dataclass(frozen=True)
class SimConfig:
    """gen0_sim_node's parameters, under the same names (units and meaning in config/sim_node.yaml)."""

    embodiment: str = "panda"  # config/embodiments/<name>.yaml
    task: str = ""  # task name; "" = the first available task
    seed: int = 0  # seed of the first episode
    update_rate: float = 200.0  # Hz: controllers, physics ticks, /joint_states and /clock
    cameras: bool = True  # false: render no camera (a state-only run)
    camera_rate: float = 0.0  # Hz per camera (sim time); 0 = each camera's own rate_hz (its embodiment file)
    camera_width: int = 0  # px; 0 = the embodiment's camera size
    camera_height: int = 0  # px; 0 = the embodiment's camera size
    status_rate: float = 10.0  # Hz of the task status
    real_time_factor: float = 1.0  # sim seconds per wall second (a ceiling); 0 = as fast as possible
    # gz-sim's rule: every camera frame is rendered at its sim time, physics waiting (one tick ahead at most)
    # while the renderer is busy, so the clock slows where the CPU cannot keep up. False: physics never
    # waits, and a busy renderer's frames come late (in sim time) and fewer (Gazebo Classic without --lockstep).
    camera_lockstep: bool = True
    allow_partial_joints_goal: bool = False  # as joint_trajectory_controller's parameters
    allow_nonzero_velocity_at_trajectory_end: bool = False
    allow_trajectory_replacement: bool = True
    expert_teleop: bool = False  # the scripted expert publishes commands on the controller topics

    def __post_init__(self) -> None:
        if not (self.update_rate > 0 and self.status_rate > 0 and self.camera_rate >= 0 and self.real_time_factor >= 0):
            raise ConfigError("update_rate and status_rate must be > 0, camera_rate and real_time_factor >= 0")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> SimConfig:
        """The fields found in ``values`` (node parameters), the defaults for the rest."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    @property
    def camera_size(self) -> tuple[int, int] | None:
        """(width, height) of every camera, or None for the embodiment's own sizes."""
        w, h = int(self.camera_width), int(self.camera_height)
        return (w, h) if w and h else None


@dataclass(frozen=True)
class EpisodeStatus:
    """What /task_status says: the episode, whether it has succeeded, and when (sim clock, s)."""

    task: str
    instruction: str
    seed: int
    episode: int
    success: bool
    elapsed: float
    stamp: float
    # The box the task's controllers clamp their targets to, in joint_states order (Meta-World's per-task
    # mocap box); empty: the embodiment's limits. A policy holds its targets there too (Runtime.set_workspace).
    workspace_lower: tuple[float, ...] = ()
    workspace_upper: tuple[float, ...] = ()


class RealTimePacer:
    """Keeps the sim clock at ``real_time_factor`` times the wall clock (0: as fast as possible). Fallen
    behind by more than ``max_lag`` s (a slow machine), it starts over from now instead of catching up
    in a burst."""

    def __init__(self, real_time_factor: float, sim_now: float, wall_now: float, max_lag: float = 0.5) -> None:
        self.real_time_factor, self.max_lag = real_time_factor, max_lag
        self._sim_start, self._wall_start = sim_now, wall_now

    def delay(self, sim_now: float, wall_now: float) -> float:
        """Seconds of wall time to wait before simulating past ``sim_now``."""
        if self.real_time_factor <= 0:
            return 0.0
        ahead = self._wall_start + (sim_now - self._sim_start) / self.real_time_factor - wall_now
        if ahead < -self.max_lag:
            self._sim_start, self._wall_start = sim_now, wall_now
        return max(ahead, 0.0)


class SnapshotRenderer:
    """Renders cameras from a copy of the physics state: :meth:`capture` (physics lock held) copies
    only what drawing needs; :meth:`render` then runs without the lock. Each camera at most every
    ``1 / rate_hz`` s of sim time, ``rate_hz`` 0 meaning its own ``rate_hz`` from the embodiment (a
    robot's cameras run at their own rates, and the data was recorded at them); one mujoco.Renderer
    per size, made and used on the calling thread (GL contexts are)."""

    def __init__(self, rate_hz: float, camera_size: tuple[int, int] | None) -> None:
        self.rate_hz, self.camera_size = float(rate_hz), camera_size
        self.last: dict[str, float] = {}  # camera: sim time of its last capture
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._model: mujoco.MjModel | None = None
        self._snapshot: mujoco.MjData | None = None
        self._finish: Callable[[str, np.ndarray], np.ndarray] | None = None
        self._prepare: Callable[[Any], None] | None = None

    def period_s(self, camera: CameraSpec) -> float:
        return 1.0 / (self.rate_hz or camera.rate_hz)

    def due(self, now: float, cameras: Iterable[CameraSpec]) -> list[CameraSpec]:
        """The cameras whose next frame is due at sim time ``now``."""
        return [c for c in cameras if now >= self.last.get(c.name, -float("inf")) + self.period_s(c) - 1e-9]

    def capture(self, env: SimEnv, now: float, cameras: Iterable[CameraSpec]) -> None:
        self._finish = getattr(env, "finish_frame", None)  # e.g. Meta-World's upside-down corner cameras
        self._prepare = getattr(env, "prepare_scene", None)  # e.g. Meta-World's shadows off, as in its data
        if self._model is not env.model:  # a new task built a new model
            self.close()
            self._model, self._snapshot = env.model, mujoco.MjData(env.model)
        data, snapshot = env.data, self._snapshot
        snapshot.qpos[:], snapshot.qvel[:], snapshot.time = data.qpos, data.qvel, data.time
        snapshot.mocap_pos[:], snapshot.mocap_quat[:] = data.mocap_pos, data.mocap_quat
        for cam in cameras:
            # On schedule, unless far behind (a reset moved the clock, the camera was unwatched): then now.
            last, period = self.last.get(cam.name, -float("inf")), self.period_s(cam)
            self.last[cam.name] = now if now - last > 2 * period else last + period

    def render(self, cameras: Iterable[CameraSpec]) -> dict[str, np.ndarray]:
        """{camera: (H, W, 3) uint8} of the last capture."""
        mujoco.mj_forward(self._model, self._snapshot)  # positions of bodies and cameras
        images = {}
        for cam in cameras:
            w, h = self.camera_size or (cam.width, cam.height)
            if (w, h) not in self._renderers:
                self._renderers[(w, h)] = mujoco.Renderer(self._model, height=h, width=w)
            renderer = self._renderers[(w, h)]
            renderer.update_scene(self._snapshot, camera=cam.name)
            if self._prepare:
                self._prepare(renderer.scene)
            rgb = renderer.render()
            images[cam.name] = self._finish(cam.name, rgb) if self._finish else rgb
        return images

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()


def _ignore(*_: Any) -> None:
    pass


def _metaworld(embodiment: str) -> bool:
    return load_embodiment(embodiment).sim.get("simulator") == "metaworld"


def server_tasks(embodiment: str) -> list[str]:
    """The tasks the server can simulate for ``embodiment``: our worlds', or Meta-World's 50."""
    if _metaworld(embodiment):
        from gen0_policy.sim.metaworld_env import suite_tasks

        return list(suite_tasks("mt50"))
    return available_tasks(embodiment)


class _World(NamedTuple):
    """What a task switch replaces at once."""

    env: SimEnv
    controllers: ControllerSet
    teleop: ExpertTeleop | None


class SimServer:
    """One simulated robot: a task's world, its ros2_control controllers and (with ``expert_teleop``)
    the scripted expert as teleoperator. :meth:`start` runs the physics and camera threads, which call

    - ``on_state(now, positions, velocities, efforts)`` every physics tick (the physics lock held),
    - ``on_teleop(commands)`` with the expert's commands, to be sent where a teleop would send them,
    - ``on_status(status)`` at ``status_rate``,
    - ``on_images(now, {camera: rgb})`` for the cameras ``watched()`` names, each at its rate
      (``camera_rate``, or its own).

    ``alive()`` turning False (the ROS context shut down) ends the threads as quietly as :meth:`stop`."""

    def __init__(
        self,
        config: SimConfig,
        on_state: Callable[[float, np.ndarray, np.ndarray, np.ndarray], None] = _ignore,
        on_teleop: Callable[[list[ControllerCommand]], None] = _ignore,
        on_status: Callable[[EpisodeStatus], None] = _ignore,
        on_images: Callable[[float, dict[str, np.ndarray]], None] = _ignore,
        watched: Callable[[], Iterable[str]] = lambda: (),
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.config = config
        self.on_state, self.on_teleop, self.on_status, self.on_images = on_state, on_teleop, on_status, on_images
        self.watched, self.alive = watched, alive
        self.lock = threading.Lock()  # the world, the controllers and the clock
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._episode = 0
        self._offset = 0.0  # sim clock = offset + env.time, kept monotonic across resets
        self.teleop: ExpertTeleop | None = None
        self.env: SimEnv | None = None
        self._resets = threading.Lock()  # one reset at a time; only the swap of worlds takes the physics lock
        # Checked commands, executed at the next physics tick: (controllers checked against, name, command).
        # Bounded: with the physics stopped, seconds-old commands are dropped, oldest first, not hoarded.
        self._commands: deque[tuple[ControllerSet, str, TrajectoryCommand | np.ndarray]] = deque(maxlen=MAX_QUEUED)
        # Physics and the camera thread (_camera_loop): the cameras someone watches, the frame schedule, and
        # the sim time of the capture being rendered (None: the renderer is free), all under _frames.
        self._frames = threading.Condition()
        self._snapshots = SnapshotRenderer(config.camera_rate, config.camera_size)
        self._watched_cameras: list[CameraSpec] = []
        self._rendering_s: float | None = None
        self._camera_thread: threading.Thread | None = None
        seed = int(config.seed)
        self._install(self._build(config.task or server_tasks(config.embodiment)[0], seed), seed)

    # ------------------------------------------------------------ episodes
    def now(self) -> float:
        """Sim clock, s (what /clock says)."""
        return self._offset + self.env.time if self.env is not None else 0.0

    def next_seed(self, requested: int) -> int:
        """The seed of the next episode: ``requested``, or the last one + 1 if it is negative."""
        return int(requested) if requested >= 0 else self._seed + 1

    def reset(self, task: str, seed: int, clock_s: float | None = None) -> EpisodeStatus:
        """A new episode of ``task`` ("" = the current one); raises Gen0Error, changing nothing, for an
        unknown task. The clock runs on across episodes, as /clock must; ``clock_s`` restarts it there
        instead, for a world nobody else watches (sim/lockstep.py starts each episode at 0: the same
        seed then gives the same episode whatever ran before, where an offset clock rounds every time
        differently and a borderline grasp can go either way)."""
        with self._resets:
            if task and task != self.env.task_name:
                tasks = server_tasks(self.env.embodiment.name)
                if task not in tasks:
                    name = self.env.embodiment.name
                    raise Gen0Error(f"unknown task {task!r} for {name}; available tasks are {tasks}")
                # Compiling a world takes up to a second or two: the old one runs on meanwhile, so /clock
                # never stops for it (a stopped clock faulted a policy's run_task goal through its watchdog).
                world = self._build(task, seed)
                with self.lock:
                    self._install(world, seed, clock_s)
            else:
                with self.lock:
                    self._reset(seed, clock_s)
        return self.status()

    def status(self) -> EpisodeStatus:
        with self.lock:
            now, env = self.now(), self.env
            workspace = getattr(env, "workspace", None)  # our MuJoCo worlds: the joints' own limits
            lower, upper = workspace() if workspace is not None else ((), ())
            return EpisodeStatus(
                env.task_name, env.instruction, self._seed, self._episode, bool(env.success()), now - self._start, now,
                tuple(map(float, lower)), tuple(map(float, upper)),
            )  # fmt: skip

    def _build(self, task: str, seed: int) -> _World:
        """A new world for ``task``, its controllers and expert, touching nothing that runs."""
        c = self.config
        if _metaworld(c.embodiment):
            from gen0_policy.sim.metaworld_world import MetaWorldWorld

            if c.expert_teleop:
                raise ConfigError("expert_teleop drives our MuJoCo worlds' experts; Meta-World's are not wired to it")
            env = MetaWorldWorld(task, seed=seed, camera_size=c.camera_size)
        else:
            env = make_env(c.embodiment, task, seed=seed, camera_size=c.camera_size)
        controllers = ControllerSet(
            env.embodiment,
            allow_partial_joints_goal=bool(c.allow_partial_joints_goal),
            allow_nonzero_velocity_at_trajectory_end=bool(c.allow_nonzero_velocity_at_trajectory_end),
            allow_trajectory_replacement=bool(c.allow_trajectory_replacement),
        )
        return _World(env, controllers, ExpertTeleop(env) if c.expert_teleop else None)

    def _install(self, world: _World, seed: int, clock_s: float | None = None) -> None:
        """Replace the running world (physics lock held, or before the threads start)."""
        now = self.now() if clock_s is None else clock_s  # before the env is replaced: the clock continues
        self.env, self.controllers, self.teleop = world
        self._reset(seed, now)

    def _reset(self, seed: int, now: float | None = None) -> None:
        now = self.now() if now is None else now
        self.env.reset(seed=seed)
        self._offset = now - self.env.time
        self._seed, self._start = seed, now
        self._episode += 1
        self._commands.clear()  # sent for the episode before
        self.controllers.reset(self.env.joint_positions(), now)
        if self.teleop is not None:
            self.teleop.reset()

    # ------------------------------------------------------------ commands (any thread)
    def command_trajectory(self, controller: str, cmd: TrajectoryCommand) -> None:
        """Raises CommandError (nothing executed) for a command the controller refuses; else it runs from
        the next physics tick, as joint_trajectory_controller takes a new goal from its realtime buffer in
        its update loop. A caller never holds the physics: a closed-loop run once stalled 60 s with the
        physics thread waiting for the lock a command callback held (README, "Through ROS")."""
        now = self.now()
        if cmd.start_time - now > MAX_START_AHEAD:
            raise CommandError(
                f"start time {cmd.start_time:.3f} s is {cmd.start_time - now:.0f} s after the sim clock "
                f"({now:.3f} s); stamp with sim time (use_sim_time:=true) or send a zero stamp"
            )
        controllers = self.controllers  # read once: a task switch may replace them
        controllers.check_trajectory(controller, cmd, now)
        self._commands.append((controllers, controller, cmd))

    def command_positions(self, controller: str, positions: np.ndarray) -> None:
        controllers = self.controllers
        controllers.check_positions(controller, positions)
        self._commands.append((controllers, controller, np.asarray(positions, dtype=np.float64)))

    def _execute_commands(self) -> None:
        """Install the commands that arrived since the last tick, in order (physics lock held)."""
        while self._commands:
            controllers, name, cmd = self._commands.popleft()
            if controllers is not self.controllers:
                continue  # checked against the world a task switch replaced
            started, now = time.monotonic(), self.now()
            try:
                if isinstance(cmd, TrajectoryCommand):
                    controllers.command_trajectory(name, cmd, now)
                else:
                    controllers.command_positions(name, cmd, now)
            except CommandError as exc:  # e.g. it ended in the past by the tick after its arrival
                log.error("a command for %s was refused at execution: %s", name, exc)
                continue
            held_s = time.monotonic() - started
            if held_s > SLOW_COMMAND_S and isinstance(cmd, TrajectoryCommand):
                log.warning(
                    "a %d-point trajectory for %s (%.3g s long) took %.3f s to install",
                    len(cmd.times), name, float(cmd.times[-1]), held_s,  # checked: at least one point
                )  # fmt: skip

    # ------------------------------------------------------------ threads
    def start(self) -> None:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._guard(self._physics_loop, "physics"), daemon=True)]
        self._camera_thread = None
        if self.config.cameras and self.env.embodiment.cameras:
            self._camera_thread = threading.Thread(target=self._guard(self._camera_loop, "camera"), daemon=True)
            self._threads.append(self._camera_thread)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._frames:
            self._frames.notify_all()
        for thread in self._threads:
            thread.join(timeout=5.0)

    def _running(self) -> bool:
        return not self._stop.is_set() and self.alive()

    def _guard(self, loop: Callable[[], None], name: str) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except Exception as exc:  # a dead loop must not leave a silently frozen robot
                if self._running():  # else shutting down (Ctrl-C ends the context before spin returns)
                    log.critical("%s loop stopped: %s: %s", name, type(exc).__name__, exc)
                    raise

        return run

    def step(self, next_tick: float) -> tuple[float, list[ControllerCommand]]:
        """One physics tick: the whole physics steps that reach ``next_tick`` (at least one), then
        ``on_state``. Returns the sim time reached and the expert's commands due at the tick."""
        with self.lock:
            self._execute_commands()
            env = self.env
            commands = self.teleop.step() if self.teleop is not None else []
            env.set_targets(self.controllers.targets(self.now()))
            timestep = float(env.model.opt.timestep)
            env.step(duration=max(1, round((next_tick - self.now()) / timestep)) * timestep)
            now = self.now()
            self.on_state(now, env.joint_positions(), env.joint_velocities(), env.joint_efforts())
        return now, commands

    def _physics_loop(self) -> None:
        # Ticks land on multiples of 1 / update_rate: 200 Hz on a 2 ms timestep alternates 2 and 3 steps
        # (a fixed round(2.5) = 2 steps ran at 250 Hz).
        period, status_period = 1.0 / self.config.update_rate, 1.0 / self.config.status_rate
        next_tick, next_status = self.now() + period, 0.0
        pacer = RealTimePacer(self.config.real_time_factor, self.now(), time.monotonic())
        report_wall, report_sim, waited_s = time.monotonic(), self.now(), 0.0
        while self._running():
            now, commands = self.step(next_tick)
            timestep = float(self.env.model.opt.timestep)
            next_tick = max(next_tick + period, now + timestep / 2)  # a reset may move the clock on
            if commands:
                self.on_teleop(commands)
            if now >= next_status:
                next_status = max(next_status + status_period, now)
                self.on_status(self.status())
            self._signal_frames(now)
            time.sleep(pacer.delay(now, time.monotonic()))  # sleep(0) still lets command callbacks run
            waited_s += self._wait_for_frames()
            if (wall_s := time.monotonic() - report_wall) >= CLOCK_REPORT_S:
                self._report_clock((self.now() - report_sim) / wall_s, waited_s / wall_s)
                report_wall, report_sim, waited_s = time.monotonic(), self.now(), 0.0

    def _report_clock(self, rate: float, waiting: float) -> None:
        """Say so when /clock runs well below ``real_time_factor`` because physics waits for the renderer
        (Gazebo shows its real-time factor; a user here would otherwise only see a slow robot)."""
        target = self.config.real_time_factor
        if target > 0 and rate < 0.9 * target and waiting > 0.1:
            log.warning(
                "/clock runs at %.2fx real time (real_time_factor %.2f): physics waited for the camera renderer "
                "%.0f %% of the time. A lower camera_rate or camera size runs it faster; camera_lockstep:=false "
                "keeps the pace with fewer, later frames",
                rate, target, 100 * waiting,
            )  # fmt: skip

    def _frames_due(self, now: float) -> list[CameraSpec]:
        return self._snapshots.due(now, self._watched_cameras)  # under _frames

    def _signal_frames(self, now: float) -> None:
        """Wake the camera thread if a frame is due at ``now`` (physics thread, after a tick)."""
        if self._camera_thread is not None:
            with self._frames:
                if self._frames_due(now):
                    self._frames.notify_all()

    def _wait_for_frames(self) -> float:
        """With ``camera_lockstep``, before the next tick: every frame due now taken, and none still being
        rendered from before now. So physics runs at most one tick past a frame, as in gz-sim. Returns
        the wall seconds waited."""
        thread = self._camera_thread
        if not self.config.camera_lockstep or thread is None:
            return 0.0
        started = time.monotonic()
        with self._frames:
            while self._running() and thread.is_alive():
                now = self.now()  # the clock moves only on this thread (a reset keeps it where it is)
                busy = self._rendering_s is not None and self._rendering_s < now - 1e-9
                if not busy and not self._frames_due(now):
                    break
                self._frames.wait(timeout=0.1)
        return time.monotonic() - started

    def _camera_loop(self) -> None:
        snapshots, names_checked = self._snapshots, -float("inf")
        try:
            while self._running():
                if time.monotonic() - names_checked > 0.05:  # who subscribes, at most 20 times a second
                    names, names_checked = set(self.watched()), time.monotonic()
                    watched = [cam for cam in self.env.embodiment.cameras if cam.name in names]
                    with self._frames:
                        self._watched_cameras = watched
                with self._frames:
                    with self.lock:
                        now, env = self.now(), self.env
                        due = snapshots.due(now, self._watched_cameras)
                        if due:
                            snapshots.capture(env, now, due)
                            self._rendering_s = now
                            self._frames.notify_all()  # taken: physics may go one tick on
                    if not due:
                        self._frames.wait(timeout=0.05)
                        continue
                try:
                    self.on_images(now, snapshots.render(due))
                finally:
                    with self._frames:
                        self._rendering_s = None
                        self._frames.notify_all()
        finally:
            snapshots.close()
