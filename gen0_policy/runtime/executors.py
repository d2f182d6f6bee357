"""How a :class:`~gen0_policy.runtime.runtime.Runtime` alternates thinking and acting, one class per
``RuntimeConfig.mode``. Each runs on the runtime's worker thread and says whether it also produces the
commands itself, so the runtime (not its caller) decides where ticks come from.

- harmonic: the worker thinks on fresh observations while a fixed-rate action stream (a wall-clock
  thread, or the caller's timer under sim time) acts: the robot never freezes while the model thinks;
- synchronous: look at the robot standing still, infer (the commands pause), act the chunk, brake to
  rest, repeat; this loop is the only tick source in every clock, so ticks never read it out of order."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from gen0_policy.errors import CommandError, Gen0Error
from gen0_policy.runtime.clock import ClockJump
from gen0_policy.runtime.perception import COMMANDED, JOINTS, WORKSPACE, Observation
from gen0_policy.runtime.policy import ChunkPolicy, validate_output
from gen0_policy.runtime.rate import set_nice, set_realtime
from gen0_policy.runtime.status import RuntimeState
from gen0_policy.runtime.trajectory import Chunk

if TYPE_CHECKING:
    from gen0_policy.runtime.action_stream import Command
    from gen0_policy.runtime.runtime import Runtime


class Wall(Protocol):
    """What paces a loop that ticks itself: the ``time`` module, or a simulated world's time."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float, /) -> None: ...


def _committed_steps(rt: Runtime, policy: ChunkPolicy) -> int:
    """Steps of ``step_dt`` that execute between a chunk's row 0 and its takeover (the estimate of
    that delay: the observation's age plus the inference, in harmonic mode; plus a margin)."""
    expected = rt.meters.latency_estimate * (1 + rt.config.latency_margin)
    steps = math.ceil(expected / policy.step_dt) + 1 if expected > 0 else 0
    return min(steps, int(policy.max_prefix), int(policy.chunk_size) - 1)


def infer(rt: Runtime, observation: Observation, harmonic: bool) -> Chunk | None:
    """One inference on ``observation`` with the runtime's policy (a pending hot swap takes effect here);
    returns the validated chunk, or None with the reason recorded in ``rt.health`` (or a clock jump)."""
    policy = rt.take_policy()
    epoch = rt.epoch
    if rt.measured_before_restart(observation):
        return None  # taken before a re-anchor, looked at after it: the next observation shows the robot
    started_at = rt.clock.now()
    # Row 0 of a chunk is the action at the observation's time, as in training. Harmonic: the stream
    # kept moving since then, so the chunk is placed at the joint state's stamp (with synchronize_joints,
    # when its images were taken) and conditioned on what was (and will be) commanded from then on;
    # rows already past are skipped when it takes over. Synchronous: the robot holds still from the
    # observation until the chunk takes over, so the chunk starts when the inference ends (below).
    t0 = min(observation.stamps.get(JOINTS, observation.stamp), started_at) if harmonic else started_at
    prefix = _committed_steps(rt, policy) if harmonic else 0
    # One plan: where the stream stands one step before row 0, then the committed rows. The first is the
    # point a chunk of displacements continues from (end_effector.py), so an end-effector robot's plan
    # neither drops the lead its target holds over a lagging hand nor reads that lag as a commanded move.
    planned = rt.stream.plan(t0 + np.arange(-1, prefix) * policy.step_dt)
    committed = planned[1:] if planned is not None and prefix > 0 else None
    policy_input = observation.to_policy_input(rt.embodiment.name, rt.instruction)
    if planned is not None:
        policy_input[COMMANDED] = planned[0]
    limits = rt.limits  # read once: a task's new box swaps the whole object
    policy_input[WORKSPACE] = (limits.lower, limits.upper)
    started = time.monotonic()
    try:
        with rt.health.inferring():
            out = policy.infer(
                policy_input,
                None if committed is None else committed.astype(np.float32),
                rt.config.num_samples,
            )
    except Gen0Error as exc:  # the policy refused this input (wrong embodiment, bad image): hold, say why
        rt.health.chunk_error = f"policy refused the observation: {exc}"
        return None
    wall_latency = time.monotonic() - started
    latency = max(rt.clock.now() - t0, 0.0)
    rt.meters.inference(latency, wall_latency, started_at - observation.stamp, rt.config.latency_ema)
    if epoch != rt.epoch:
        return None  # the clock jumped while thinking: this chunk's times mean nothing
    if not harmonic:
        # Placed at the inference's start, the first rows (the latency's worth, 0.1-0.3 s through ROS)
        # were skipped and the arm caught up at its limits. A clock that went back keeps t0 (the
        # executor sees the jump).
        t0 = max(rt.clock.now(), t0)
    try:
        result = validate_output(out, rt.embodiment.dof)
    except CommandError as exc:
        rt.health.chunk_error = str(exc)
        return None
    n_committed = 0 if committed is None else len(committed)
    checked = {**out, "actions": result.actions, "uncertainty": result.uncertainty}
    signals = rt.judge(checked, t0, float(policy.step_dt), n_committed, epoch)
    uncertainty = signals[rt.config.uncertainty_signal]
    novelty = signals["image_novelty"]
    rt.meters.chunks += 1
    chunk = Chunk(
        actions=result.actions,
        t0=t0,
        step_dt=float(policy.step_dt),
        observation_stamp=observation.stamp,
        uncertainty=uncertainty,
        inference_latency=wall_latency,
        committed=n_committed,
        checkpoint_id=str(getattr(policy, "checkpoint_id", "")),
        seq=rt.meters.chunks,
    )
    rt.meters.uncertainty, rt.meters.novelty = uncertainty, novelty
    # NaN (not measured) never holds
    uncertain = uncertainty > rt.config.uncertainty_threshold or novelty > rt.config.novelty_threshold
    rt.health.chunk(uncertain)
    if rt.on_chunk is not None:
        rt.on_chunk(chunk)
    if uncertain:
        rt.chunk_held()
        return None
    rt.swap.first_chunk(policy)  # the new model's first chunk is ready
    return chunk


class HarmonicExecutor:
    """Infer whenever a fresh observation arrives; the action stream is ticked from elsewhere."""

    ticks_itself = False
    acting_open_loop = False  # each chunk is replaced as soon as a newer one is ready: it needs fresh eyes
    waits_for_fresh_chunks = True  # a stream with no chunk to execute holds until one from fresh eyes arrives

    @staticmethod
    def supervise(rt: Runtime, worker: threading.Thread | None) -> tuple[RuntimeState, str] | None:
        """The worker is not the tick source here, so the stream runs on when it dies or hangs: say so."""
        if worker is not None and not worker.is_alive() and not rt.stopping:
            return RuntimeState.FAULT, "inference worker died"
        busy = rt.health.hung_for()
        if busy > rt.config.worker_timeout:
            return RuntimeState.HOLDING, (
                f"inference worker hung: no chunk for {busy:.1f} s (worker_timeout {rt.config.worker_timeout} s)"
            )
        return None

    def run(self, rt: Runtime) -> None:
        config = rt.config
        set_nice(config.worker_nice)
        set_realtime(config.worker_realtime_priority)
        seq = -1
        while not rt.stopping:
            observation, seq = rt.perception.wait_fresh(seq, config.max_observation_age)
            if observation is None or not rt.stream.started or rt.hold_reason:
                time.sleep(0.002)
                continue
            started, started_at = time.monotonic(), rt.clock.now()
            chunk = infer(rt, observation, harmonic=True)
            if chunk is not None:
                rt.stream.submit(chunk)
            if config.worker_duty_cycle < 1:
                time.sleep((time.monotonic() - started) * (1 / config.worker_duty_cycle - 1))
            if chunk is not None and config.replan_period > 0:
                self._wait_until(rt, started_at + config.replan_period)

    @staticmethod
    def _wait_until(rt: Runtime, t: float) -> None:
        """Sleep until the runtime clock reads ``t`` (sim time may run slower or faster than the wall),
        a stop, or a clock jump backwards."""
        while not rt.stopping and not rt.hold_reason:
            now = rt.clock.now()
            if now >= t or t - now > 2 * rt.config.replan_period + 1.0:
                return
            time.sleep(min(0.005, t - now))


class SynchronousExecutor:
    """Infer (the command stream pauses), then act the chunk at the control rate, then repeat."""

    ticks_itself = True
    waits_for_fresh_chunks = False  # between chunks it looks, thinks and acts itself

    @staticmethod
    def supervise(rt: Runtime, worker: threading.Thread | None) -> tuple[RuntimeState, str] | None:
        """Nothing beyond the runtime's own checks: a worker that died is a fault through ``health`` in
        any mode, and this loop thinks only with the robot at rest, so a long inference is a pause."""
        return None

    def __init__(self) -> None:
        # True while a chunk runs to its end (and brakes) on the frame it was computed from, as in rollouts
        self.acting_open_loop = False
        self.wall: Wall = time  # what paces the loop (Runtime.run_here may give a simulated world's time)
        self.after_tick: Callable[[], None] | None = None  # Runtime.run_here: the world advances a period

    def _tick(self, rt: Runtime, brake: bool = False) -> Command | None:
        command = rt.tick(brake=brake)
        if self.after_tick is not None:
            self.after_tick()
        return command

    def run(self, rt: Runtime) -> None:
        period = rt.config.period
        set_realtime(rt.config.realtime_priority)  # this thread is the control path here
        seq = -1
        # Runtime clock time the robot last came to rest. Each inference looks at the robot standing
        # still, as in training: a frame taken while the last chunk still moved the arm (cameras lag
        # joint states by 100-200 ms through ROS on a loaded CPU) showed a scene the arm had left.
        rested_at = -math.inf
        while not rt.stopping:
            if not rt.stream.started or rt.hold_reason:
                self._tick(rt)
                self.wall.sleep(period)
                continue
            observation, seq = rt.perception.wait_fresh(seq, rt.config.max_observation_age)
            if observation is None or observation.stamp < rested_at <= rt.clock.now():  # (after a jump back: any)
                self._tick(rt)  # hold (stale or missing input, or from before the robot stopped)
                self.wall.sleep(period)
                continue
            chunk = infer(rt, observation, harmonic=False)
            if chunk is None:
                self._tick(rt)
                continue
            now = rt.clock.now()
            if now < chunk.t0 - 1e-6:  # the clock went backwards while the model thought (a sim reset)
                rt.on_clock_jump(now, ClockJump(chunk.t0, now).describe())
                continue
            rt.stream.rebase(now - period)  # the controller held still while we thought
            rt.stream.submit(chunk)
            rt.watch_clock_from(now)  # the next tick compares with now: a jump right after is still caught
            rt.meters.last_tick = None
            fraction = rt.config.sync_execute_fraction  # of the chunk's steps: 0.75 of 16 is 12, as rollouts
            rested_at = self._act(rt, now + chunk.horizon * chunk.step_dt * fraction, cut_short=fraction < 1)

    def _act(self, rt: Runtime, end: float, cut_short: bool = False) -> float:
        """Tick at the control rate until the runtime clock reads ``end`` (or the stream holds), then
        come to rest for at most a second: on the chunk's last waypoint when it ran to its end, or at the
        limits from wherever the arm is when ``cut_short`` (the rest of the chunk is not played).

        Returns the runtime time from which an observation shows the arm after its last command. A
        stream that stops within the acceleration limit by holding its last command (Meta-World's hand)
        sends no braking tick: the controller holds while the model thinks, as the benchmark's paused
        env does, where a braking tick stood the hand still one step more per chunk."""
        period = rt.config.period
        self.acting_open_loop = True
        last: Command | None = None
        try:
            deadline = self.wall.monotonic()
            while not rt.stopping:
                last = self._tick(rt)
                if last is None or last.holding or rt.clock.now() >= end:
                    break
                deadline += period
                delay = deadline - self.wall.monotonic()
                if delay > 0:
                    self.wall.sleep(delay)
            if last is not None and not last.holding and rt.stream.stops_on_hold:
                return last.t + period  # its effect shows from the next physics step on
            braking_until = self.wall.monotonic() + 1.0
            while not rt.stopping and not rt.stream.at_rest and self.wall.monotonic() < braking_until:
                self._tick(rt, brake=cut_short)
                self.wall.sleep(period)
        finally:
            self.acting_open_loop = False
        return rt.clock.now()


EXECUTORS = {"harmonic": HarmonicExecutor, "synchronous": SynchronousExecutor}
