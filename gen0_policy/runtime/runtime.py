"""The runtime: a policy, an embodiment's sensors and its command stream, and a supervisor that decides
at every tick whether acting is safe (fresh observations, a live worker, a confident model, a sane
clock) and otherwise holds the last safe position and says why. How thinking and acting alternate
(synchronous, or harmonic: the robot never freezes while the model thinks) is in executors.py."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future

import numpy as np

from gen0_policy.embodiment import Embodiment
from gen0_policy.runtime.action_stream import ActionStream, Command
from gen0_policy.runtime.clock import Clock, JumpDetector, MonotonicClock
from gen0_policy.runtime.config import RuntimeConfig
from gen0_policy.runtime.executors import EXECUTORS, Wall
from gen0_policy.runtime.health import Health, Meters
from gen0_policy.runtime.horizon import Horizon, HorizonPlanner
from gen0_policy.runtime.perception import JOINTS, Observation, PerceptionStream
from gen0_policy.runtime.policy import ChunkPolicy
from gen0_policy.runtime.rate import RateLoop, configure_threads
from gen0_policy.runtime.safety import SafetyFilter, SafetyLimits
from gen0_policy.runtime.status import RuntimeState, RuntimeStatus
from gen0_policy.runtime.swap import HotSwap
from gen0_policy.runtime.task import check_instruction
from gen0_policy.runtime.trajectory import Chunk
from gen0_policy.runtime.uncertainty import SignalMonitor

HOLD_STATES = (RuntimeState.HOLDING, RuntimeState.UNCERTAIN, RuntimeState.FAULT)

log = logging.getLogger(__name__)
RESUME_TOLERANCE = 0.01  # rad or m an arm joint may have moved while deactivated and the stream still continue


class Runtime:
    """Runs a :class:`ChunkPolicy` on an :class:`Embodiment`.

    Feed sensors through ``runtime.perception`` (``put_joints``, ``put_image``); receive commands through
    ``on_command``. ``start()`` drives the action stream itself; under another clock (``use_sim_time``) pass
    ``drive=False`` and, while :attr:`needs_ticks`, call :meth:`tick` from a timer on that clock."""

    def __init__(
        self,
        policy: ChunkPolicy,
        embodiment: Embodiment,
        config: RuntimeConfig | None = None,
        clock: Clock | None = None,
        cameras: Mapping[str, tuple[int, int] | None] | None = None,
        on_command: Callable[[Command], None] | None = None,
        on_chunk: Callable[[Chunk], None] | None = None,
        on_horizon: Callable[[Horizon], None] | None = None,
    ) -> None:
        # An end-effector robot runs in its state coordinates: load_chunk_policy wraps its policy in
        # runtime/end_effector.py, and validate_output refuses raw displacements.
        self.config = config or RuntimeConfig()
        self.embodiment = embodiment
        self.clock = clock or MonotonicClock()
        if cameras is None:
            cameras = {c.name: (c.height, c.width) for c in embodiment.cameras}
        speeds = np.where(embodiment.gripper_mask, np.inf, embodiment.velocity_limits)
        self.perception = PerceptionStream(
            embodiment.dof,
            cameras,
            self.clock,
            joint_speed_limits=speeds,
            joint_bounds=(embodiment.lower, embodiment.upper),
            synchronize_joints=self.config.synchronize_joints,
        )
        self._joint_jumps = 0
        self.limits = SafetyLimits.from_embodiment(embodiment, self.config.limit_scale)
        self._workspace: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # a task's box (set_workspace)
        self.stream = ActionStream(SafetyFilter(self.limits), self.config.period, self.config.swap_min_gap)
        self.on_command = on_command
        self.on_chunk = on_chunk
        self.on_horizon = on_horizon  # the planned future for trajectory controllers (runtime/horizon.py)
        self.horizons = HorizonPlanner(
            SafetyFilter(self.limits),
            self.config.period,
            self.config.command_horizon,
            self.config.horizon_refresh,
            lead=self.config.horizon_lead,
        )
        self.instruction = ""
        self._policy = policy
        self.swap = HotSwap()
        self.health = Health()  # read by the supervisor; written by the worker and the control path
        self.meters = Meters()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._rate: RateLoop | None = None
        self._executor = EXECUTORS[self.config.mode]()
        self._jumps = JumpDetector(forward_limit=self.config.clock_jump_forward)
        self._arm = ~embodiment.gripper_mask
        self._epoch = 0  # bumped by a clock jump: chunks from an older epoch are discarded
        # Stamp of the joint state a re-anchor started from: an observation measured before it shows
        # the robot where it no longer is, even when its inference begins after the re-anchor.
        self._reanchored_at = -math.inf
        self._running = False
        self._operator_hold = ""
        self._task_hold = ""  # a task ended (end_task): at rest until the next begin_task or resume
        self._check_resume = False  # after resume: did the arm move while deactivated?
        self._fresh_start = False  # after begin_task: plan from the measured position, nothing carried over
        self._signals = SignalMonitor(embodiment.upper - embodiment.lower)  # compares each chunk with the last
        self._signals_epoch = 0
        self._clock_seen = (math.nan, time.monotonic())  # (runtime clock, wall time it last moved)
        # The last hold a tick met since the last report(): one shorter than the report period (after a
        # clock jump a chunk from fresh eyes can end it within one 10 ms tick) is still reported once.
        self._unreported_hold: tuple[RuntimeState, str] | None = None
        self._report_lock = threading.Lock()

    # ----------------------------------------------------------------- control
    @property
    def policy(self) -> ChunkPolicy:
        return self._policy

    @property
    def checkpoint_id(self) -> str:
        return str(getattr(self._policy, "checkpoint_id", ""))

    def set_instruction(self, instruction: str) -> None:
        """Raises CommandError for an instruction too long to be one (the old one stays)."""
        self.instruction = check_instruction(instruction)

    def set_workspace(self, lower: Sequence[float] | None = None, upper: Sequence[float] | None = None) -> None:
        """Hold the targets inside ``[lower, upper]`` (state coordinates) as well as the embodiment's
        limits: the box a task's controller clamps its target to (Meta-World's per-task mocap box, from
        /task_status). End-effector plans stop their running sums there too (runtime/end_effector.py).
        None or empty: the embodiment's limits alone. Raises ConfigError (nothing changes) for bad bounds."""
        box = None if lower is None or upper is None or len(lower) == len(upper) == 0 else (tuple(lower), tuple(upper))
        if box == self._workspace:  # the node hears the same box on every task status
            return
        base = SafetyLimits.from_embodiment(self.embodiment, self.config.limit_scale)
        limits = base if box is None else base.within(*box)
        self._workspace, self.limits = box, limits
        self.stream.safety.limits = limits  # read whole by each tick: a swap of one reference
        self.horizons.safety.limits = limits

    def start(self, drive: bool = True) -> None:
        """Start thinking and acting. A synchronous runtime ticks from its own loop in any clock; a
        harmonic one ticks at ``control_rate_hz`` on a wall-clock thread with ``drive``, otherwise from
        the caller (:attr:`needs_ticks`)."""
        if self._running:
            return
        configure_threads(self.config.gil_switch_interval, self.config.inference_threads)
        self._threads = []  # the last run's (dead) worker must not be judged while the new one starts
        self._stop.clear()
        self._running = True
        target = self.health.watch(lambda: self._executor.run(self))
        thread = threading.Thread(target=target, name=f"gen0-{self.config.mode}", daemon=True)
        thread.start()
        self._threads = [thread]  # only once alive: a status read meanwhile must not see a "dead" worker
        if drive and not self._executor.ticks_itself:
            self._rate = RateLoop(
                self.config.period,
                self.tick,
                name="gen0-action-stream",
                realtime_priority=self.config.realtime_priority,
            )
            self._rate.start()

    def run_here(self, after_tick: Callable[[], None], wall: Wall = time) -> None:
        """Think and act on the calling thread until :meth:`stop` (called from ``after_tick``): the
        synchronous loop, ``after_tick`` called after each of its ticks, for a caller that advances a
        simulated world one control period per tick (benchmarks/lockstep_loop.py). ``wall`` paces the
        loop: a world's own time, so nothing waits on how fast this machine renders."""
        executor = self._executor
        if not executor.ticks_itself:
            raise RuntimeError(f"a {self.config.mode} runtime is ticked from outside: start(drive=False), then tick()")
        if self._running:
            raise RuntimeError("the runtime is already running")
        self._stop.clear()
        self._running = True
        executor.after_tick, executor.wall = after_tick, wall
        try:
            executor.run(self)
        finally:
            executor.after_tick, executor.wall = None, time
            self._running = False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop thinking and acting; may be called from a tick (the calling thread is not waited for)."""
        self._stop.set()
        if self._rate is not None:
            self._rate.stop()
            self._rate = None
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        self._running = False

    @property
    def needs_ticks(self) -> bool:
        """Started without ``drive`` and nothing inside ticks: the caller's timer must call :meth:`tick`
        (a second tick source would read the clock out of order, seen as a jump backwards)."""
        return self._running and self._rate is None and not self._executor.ticks_itself

    def hold(self, reason: str = "held by operator") -> None:
        """Brake to rest, then send nothing until :meth:`resume` (lifecycle deactivate)."""
        self._operator_hold = reason

    @property
    def quiescent(self) -> bool:
        """Held by the operator and at rest: ticking produces no command (a tick source may stop)."""
        return bool(self._operator_hold) and self._standing_still

    def resume(self) -> None:
        """Act again (lifecycle activate): the time between is no clock jump and no frozen clock."""
        self._jumps.reset()
        self.meters.last_tick = None
        self._clock_seen = (math.nan, time.monotonic())
        self._operator_hold = self._task_hold = ""
        self._check_resume = True

    def begin_task(self, instruction: str) -> None:
        """Start a task as an episode starts: act on ``instruction`` from observations taken from now on,
        planned from where the robot is. Nothing of before carries over, neither the chunks in flight nor
        the images: carried over, the last task's plan and a frame from before a scene reset started the
        new task (same loop without DDS, press_button 0/6 episodes against 6/6 from a clean start). Raises
        CommandError for a bad instruction, changing nothing. A lifecycle hold (deactivate) stays."""
        self.set_instruction(instruction)
        self._epoch += 1  # chunks in flight were planned for what came before
        self.perception.clear(not_before=self.clock.now())
        self._fresh_start = True
        self._task_hold = ""
        self._jumps.reset()
        self.meters.last_tick = None

    def end_task(self, reason: str) -> None:
        """The task is over (success, timeout, cancel): brake to rest and send nothing until the next
        :meth:`begin_task`, as the robot of a finished episode stands still."""
        self._task_hold = reason

    @property
    def awaiting_goal(self) -> bool:
        """Between tasks and standing still (braked to rest, or never moved): the next begin_task starts
        it at once, and the scene may be reset. While it still brakes from the last task, a reset that
        teleports the arm puts it under commands that pull it back toward where the brake was going."""
        return self._running and not self._operator_hold and bool(self._task_hold) and self._standing_still

    @property
    def _standing_still(self) -> bool:
        """The stream never moved, or has braked to rest."""
        return not self.stream.started or self.stream.at_rest

    @property
    def hold_reason(self) -> str:
        """Why the runtime sends nothing after braking ('' while it may act): deactivated, or a task ended."""
        return self._operator_hold or self._task_hold

    # ------------------------------------------------- what the executors (executors.py) use
    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def epoch(self) -> int:
        """Bumped by every restart (a clock jump, a re-anchor, a new task): a chunk planned in an older
        epoch means nothing now."""
        return self._epoch

    def measured_before_restart(self, observation: Observation) -> bool:
        """``observation``'s joints were measured before the last re-anchor: a chunk planned from it
        starts where the robot was, not where it is (read after :attr:`epoch`)."""
        return observation.stamps.get(JOINTS, observation.stamp) < self._reanchored_at

    def take_policy(self) -> ChunkPolicy:
        """The policy for the next inference: a pending hot swap takes effect here."""
        self._policy = self.swap.take(self._policy)
        return self._policy

    def judge(self, out: Mapping, t0: float, step_dt: float, skip: int, epoch: int) -> dict[str, float]:
        """Every uncertainty signal for a chunk of ``epoch``, compared with the last chunk of the same epoch."""
        if self._signals_epoch != epoch:  # a chunk from before a restart or clock jump is not compared with
            self._signals.reset()
            self._signals_epoch = epoch
        return self._signals.update(out, t0, step_dt, skip)

    def chunk_held(self) -> None:
        """The last judged chunk was not executed (uncertain): the next is compared with it as a plan."""
        self._signals.held()

    def watch_clock_from(self, now: float) -> None:
        """The clock is watched for jumps from ``now`` on (a synchronous chunk starts: the pause before was
        thinking, not a jump)."""
        self._jumps.reset()
        self._jumps.check(now)

    def swap_policy(self, policy: ChunkPolicy) -> None:
        """Hot swap: the executing chunk continues until the new policy's first chunk is ready."""
        self.swap.offer(policy)

    def load_policy(self, loader: Callable[[], ChunkPolicy], name: str = "checkpoint") -> Future:
        """Load on a background thread (acting continues), then swap (see :class:`HotSwap`)."""
        return self.swap.load(loader, name)

    # ------------------------------------------------------------ the control path
    def tick(self, now: float | None = None, brake: bool = False) -> Command | None:
        """Produce the command for ``now`` (default: the runtime clock). Never blocks on inference.
        ``brake`` stops the arm at the limits wherever it is instead of following the chunk (a synchronous
        chunk cut short)."""
        now = self.clock.now() if now is None else now
        if self.hold_reason and self._standing_still:
            self._jumps.reset()  # deactivated (or between tasks) and at rest: no commands at all, and no clock to watch
            self.meters.last_tick = None
            return None
        jump = self._jumps.check(now)
        if jump is not None:
            self.on_clock_jump(now, jump.describe())
        joints = self.perception.latest_joints()
        if self._check_resume and joints is not None:
            self._check_resume = False
            self._start_anew_if_moved(now, joints)
        if self._fresh_start and joints is None and self.stream.started and self.stream.at_rest:
            return None  # a task began and nothing is measured since: never command where the arm rested before
        if self._fresh_start and joints is not None and not self.hold_reason:
            self._fresh_start = False
            self._joint_jumps = self.perception.joint_jumps  # a reset between tasks is no teleport mid-task
            self._start_anew(now)  # the scene may have been reset
        if not self.stream.started:
            if joints is None:
                return None
            self.stream.reset(now, joints)  # start from the measured position
        elif joints is not None:
            self._check_tracking(now, joints)
        self.meters.tick(now)
        state, reason = self._supervise(now)
        if state in HOLD_STATES:
            with self._report_lock:
                self._unreported_hold = (state, reason)
        holding = brake or state not in (RuntimeState.RUNNING, RuntimeState.LOADING)
        # With horizons the controller moves on through a late tick: the stream keeps up with it.
        catch_up = self.config.command_horizon if self.on_horizon is not None else None
        command = self.stream.tick(now, hold=holding, max_step_s=catch_up)
        if command is not None and self.on_command is not None:
            self.on_command(command)
        if command is not None and self.on_horizon is not None:
            horizon = self.horizons.update(command, self.stream.trajectory, self._epoch)
            if horizon is not None:
                self.on_horizon(horizon)
        return command

    def _start_anew(self, now: float) -> None:
        """Plan from the measured position, as a new activation does: at rest, forget the stream (the
        next tick starts where the arm is); still moving, brake first. Re-anchoring instead would first
        command the arm back towards where the stream stopped."""
        self._epoch += 1  # chunks in flight were planned from where the arm may no longer be
        if self.stream.started and self.stream.at_rest:
            self.stream.clear()
        elif self.stream.started:
            self.stream.restart(now, self.stream.position())

    def _start_anew_if_moved(self, now: float, measured: np.ndarray) -> None:
        """After resume: start anew if the arm was moved while the stream rested (MoveIt moves between
        episodes, a hand); still braking, or never started, it continues."""
        if not (self.stream.started and self.stream.at_rest):
            return
        error = np.where(self._arm, np.abs(measured - self.stream.position()), 0.0)
        worst = int(np.argmax(error))
        if error[worst] > RESUME_TOLERANCE:
            log.warning(
                "starting from the measured position: %s moved %.3f while deactivated",
                self.embodiment.joint_names[worst],
                error[worst],
            )
            self._start_anew(now)

    def _check_tracking(self, now: float, measured: np.ndarray) -> None:
        """Restart from the measured position if the robot teleported (a joint state jumped faster than
        any joint can move) or is far from where it was commanded (moved by hand, a long stall)."""
        why = ""
        if self.perception.joint_jumps != self._joint_jumps:
            self._joint_jumps = self.perception.joint_jumps
            why = f"the measured {self.perception.joint_jump_reason} (robot reset?)"
        elif self.config.resync_tolerance > 0 and not self.stream.settling:
            commanded = self.stream.position()
            error = np.where(self._arm, np.abs(measured - commanded), 0.0)
            worst = int(np.argmax(error))
            if error[worst] > self.config.resync_tolerance:
                stamp = self.perception.joints_stamp()
                age = "" if stamp is None else f", measured {now - stamp:.3f} s ago"
                why = (
                    f"{self.embodiment.joint_names[worst]} was {error[worst]:.3f} from its command "
                    f"(measured {measured[worst]:.3f}, commanded {commanded[worst]:.3f}{age}; "
                    f"> resync_tolerance {self.config.resync_tolerance}; moved by hand?)"
                )
        if why:
            stamp = self.perception.joints_stamp()
            self._reanchored_at = now if stamp is None else stamp  # before the epoch: infer reads them the other way
            self._epoch += 1  # chunks in flight were planned from where the robot no longer is
            self.health.restart_reason = f"re-anchored at the measured position: {why}"
            log.warning(self.health.restart_reason)
            self.stream.restart(now, measured)

    def on_clock_jump(self, now: float, reason: str) -> None:
        log.warning("%s: holding until fresh observations arrive", reason)
        self._reanchored_at = -math.inf  # stamps from before a jump mean nothing (perception is cleared)
        self._epoch += 1
        self.health.restart_reason = reason
        self.perception.clear()
        if self.stream.started:
            self.stream.reset(now, self.stream.position())
        self.meters.last_tick = None

    def _supervise(self, now: float) -> tuple[RuntimeState, str]:
        """The state the runtime is in right now and why: the first reason to not act wins."""
        if not self._running:
            return RuntimeState.IDLE, "not started"
        if self.hold_reason:
            return RuntimeState.IDLE, self.hold_reason
        wall = time.monotonic()
        if now != self._clock_seen[0]:
            self._clock_seen = (now, wall)
        elif wall - self._clock_seen[1] > self.config.clock_stall_timeout:
            return RuntimeState.FAULT, (
                f"the runtime clock has not advanced for {wall - self._clock_seen[1]:.1f} s "
                "(is /clock still published? is the simulator paused?)"
            )
        health = self.health
        if health.worker_error:
            return RuntimeState.FAULT, health.worker_error
        if self._rate is not None and not self._rate.alive and self._rate.error is not None:
            return RuntimeState.FAULT, f"action stream died: {self._rate.error!r}"
        problem = self._executor.supervise(self, self._threads[0] if self._threads else None)
        if problem is not None:
            return problem
        missing = self.perception.missing()
        if missing:
            why = health.restart_reason or self.perception.why(missing)
            return RuntimeState.HOLDING, f"waiting for {', '.join(missing)}" + (f" ({why})" if why else "")
        observation = self.perception.latest()
        if observation is not None and self._executor.acting_open_loop:
            # An open-loop chunk does not look at the cameras until it ends: only the joint states (the
            # tracking check's input) must stay fresh. Holding on a late frame cut chunks short through ROS
            # on a busy CPU (pick_place: 15 % of the time held, frames 0.5-0.7 s late), as no rollout does.
            observation = observation.only(JOINTS)
        if observation is not None:
            age = observation.age(now)
            if age > self.config.max_observation_age:
                stale = [s for s, t in observation.stamps.items() if now - t > self.config.max_observation_age]
                why = self.perception.why(stale)
                error = f"; rejected input: {why}" if why else ""
                return RuntimeState.HOLDING, (
                    f"stale observation: {observation.stalest()} is {age:.2f} s old "
                    f"(max_observation_age {self.config.max_observation_age} s){error}"
                )
        if health.chunk_error:
            return RuntimeState.HOLDING, health.chunk_error
        if health.uncertain and self.meters.novelty > self.config.novelty_threshold:
            return RuntimeState.UNCERTAIN, (
                f"uncertainty (image_novelty) {self.meters.novelty:.2f} above novelty_threshold "
                f"{self.config.novelty_threshold:.2f}: a camera shows what the training data never did "
                f"(covered, blocked, another scene)"
            )
        if health.uncertain:
            return RuntimeState.UNCERTAIN, (
                f"uncertainty ({self.config.uncertainty_signal}) {self.meters.uncertainty:.3f} "
                f"above threshold {self.config.uncertainty_threshold:.3f}"
            )
        if health.restart_reason:
            return RuntimeState.HOLDING, f"{health.restart_reason}; waiting for a chunk computed after it"
        if not self.stream.executing and self._executor.waits_for_fresh_chunks:
            return RuntimeState.HOLDING, "waiting for a chunk computed from fresh observations"
        if self.swap.loading:
            return RuntimeState.LOADING, f"loading {self.swap.loading}; executing the previous chunk meanwhile"
        return RuntimeState.RUNNING, self.swap.error

    # ------------------------------------------------------------------- status
    def report(self) -> RuntimeStatus:
        """:meth:`status`, for a status publisher: if the runtime is acting again but a tick met a hold
        since the last report, that hold (its state and reason) is reported once, so a subscriber sees
        every hold however short, a moment late, and then the state that followed."""
        with self._report_lock:
            hold, self._unreported_hold = self._unreported_hold, None
        status = self.status()
        if hold is not None and status.state in (RuntimeState.RUNNING, RuntimeState.LOADING):
            status = dataclasses.replace(status, state=hold[0], reason=hold[1])
        return status

    def status(self) -> RuntimeStatus:
        now = self.clock.now()
        state, reason = self._supervise(now)
        if state == RuntimeState.RUNNING and self.swap.loading:
            state = RuntimeState.LOADING
        return RuntimeStatus(
            state=state,
            reason=reason,
            uncertainty=self.meters.uncertainty,
            uncertainty_threshold=self.config.uncertainty_threshold,
            uncertainty_signal=self.config.uncertainty_signal,
            inference_latency=self.meters.inference_latency,
            observation_age=self.meters.observation_age,
            control_rate=self.meters.control_rate,
            chunk_count=self.meters.chunks,
            checkpoint_id=self.checkpoint_id,
            embodiment=self.embodiment.name,
            instruction=self.instruction,
            stamp=now,
            warnings=tuple(getattr(self.policy, "warnings", {}).values()),
            awaiting_goal=self.awaiting_goal,
        )
