"""The executor with threads and a real clock: it acts while it thinks, and holds (saying why) on
stale data, bad chunks, uncertainty, a hung or dead worker and clock jumps; hot swaps keep acting."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from runtime_helpers import image, toy_embodiment

from conftest import wait_until
from gen0_policy.runtime import Command, GoalPolicy, ManualClock, Runtime, RuntimeConfig, RuntimeState
from gen0_policy.runtime.perception import COMMANDED
from gen0_policy.runtime.uncertainty import Calibration

EMB = toy_embodiment(dof=3, cameras=1)
GOAL = np.array([1.0, -1.0, 0.8])


class Feeder:
    """A robot that tracks every command perfectly and a camera, publishing at ``rate`` Hz."""

    def __init__(self, runtime: Runtime, rate: float = 100.0, lag: float = 0.0) -> None:
        self.runtime, self.period, self.lag = runtime, 1.0 / rate, lag  # lag: how old a measurement is on arrival
        self.position = np.zeros(3)
        self.paused = threading.Event()
        self.blind = threading.Event()  # the camera stops, joint states go on
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.paused.is_set():
                stamp = self.runtime.clock.now() - self.lag
                self.runtime.perception.put_joints(self.position, stamp)
                if not self.blind.is_set():
                    self.runtime.perception.put_image("cam0", image(3), stamp)
            time.sleep(self.period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Recorder(list):
    def __call__(self, command: Command) -> None:
        self.append(command)


def make(policy, **config) -> tuple[Runtime, Recorder]:
    commands = Recorder()
    runtime = Runtime(policy, EMB, RuntimeConfig(**{"mode": "harmonic", **config}), on_command=commands)
    return runtime, commands


@pytest.fixture
def started() -> Iterator[list]:
    """Runtimes and feeders to stop after the test."""
    things: list = []
    yield things
    for thing in things:
        thing.stop()


def start(started: list, runtime: Runtime, commands: Recorder, lag: float = 0.0) -> Feeder:
    feeder = Feeder(runtime, lag=lag)
    feeder.runtime.on_command = lambda c: (commands(c), setattr(feeder, "position", c.positions))
    runtime.start()
    started.extend([runtime, feeder])
    return feeder


def test_harmonic_runtime_acts_while_it_thinks_and_reaches_the_goal(started) -> None:
    policy = GoalPolicy(goal=GOAL, speed=0.8, chunk_size=16, step_dt=0.05, max_prefix=8, delay_s=0.12)
    runtime, commands = make(policy)
    start(started, runtime, commands)
    wait_until(lambda: np.allclose(commands[-1].positions, GOAL, atol=1e-3) if commands else False, 15, what="goal")
    status = runtime.status()
    assert status.state == RuntimeState.RUNNING and status.reason == ""
    assert status.chunk_count >= 5 and 0.1 < status.inference_latency < 1.0
    assert status.control_rate > 20  # 100 Hz nominal; a loaded 2-core CI machine was seen at 40 Hz
    periods = np.diff([c.t for c in commands])
    # Commands kept flowing while every inference took 120 ms. The worker infers back to back, so a
    # stream that paused to think would leave a > 100 ms gap after every few commands; exact timing is
    # the benchmark's job, and a loaded CI machine stretches ticks, hence the loose bounds.
    assert np.median(periods) < 0.03 and np.mean(periods > 0.1) < 0.05
    assert any(c.chunk_seq > 0 for c in commands) and all(EMB.within_limits(c.positions) for c in commands)


@pytest.mark.parametrize("mode", ["harmonic", "synchronous"])
def test_chunks_start_at_the_observation_in_harmonic_mode_and_at_inference_in_synchronous(started, mode) -> None:
    """Row 0 of a chunk is the action at the observation's time (as in training). Harmonic: the robot
    kept moving since that observation, so the chunk is placed there and conditioned on the commands
    sent since. Synchronous: the robot held still, so the chunk starts when inference starts."""
    policy = GoalPolicy(goal=GOAL, speed=0.8, chunk_size=16, step_dt=0.05, max_prefix=8, delay_s=0.05)
    runtime, commands = make(policy, mode=mode)
    chunks: list = []
    runtime.on_chunk = chunks.append
    start(started, runtime, commands, lag=0.06)  # every measurement is 60 ms old when it arrives
    wait_until(lambda: len(chunks) >= 4, 15, what="four chunks")
    for chunk in chunks[1:4]:
        offset = chunk.t0 - chunk.observation_stamp
        assert offset == 0.0 if mode == "harmonic" else offset >= 0.06
        if mode == "harmonic":  # the prefix covers the observation's age and the inference
            assert chunk.committed * policy.step_dt >= 0.06 + 0.05


class Told(GoalPolicy):
    """Keeps what each inference was given: the runtime's last command (COMMANDED) and the committed rows."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inputs: list[tuple[np.ndarray | None, np.ndarray | None]] = []

    def infer(self, observation, committed=None, num_samples=1):
        commanded = observation.get(COMMANDED)
        self.inputs.append((commanded, None if committed is None else np.array(committed)))
        return super().infer(observation, committed, num_samples)


def test_each_inference_is_told_the_command_one_step_before_its_chunk(started) -> None:
    """An end-effector plan continues from what was commanded, not from the lagging measured hand
    (runtime/end_effector.py): every inference gets the stream's target one step before its chunk's
    row 0, and the committed rows go on from it by one step's motion, not from an older plan."""
    policy = Told(goal=GOAL, speed=0.8, chunk_size=16, step_dt=0.05, max_prefix=8, delay_s=0.05)
    runtime, commands = make(policy)
    start(started, runtime, commands, lag=0.06)
    wait_until(lambda: len(policy.inputs) >= 6, 15, what="six inferences")
    step_m = EMB.velocity_limits.max() * policy.step_dt  # the most the stream moves in one step
    for commanded, committed in policy.inputs[2:6]:
        assert commanded is not None and committed is not None and len(committed) > 0
        assert np.abs(committed[0] - commanded).max() <= step_m + 1e-9


def test_replan_period_spaces_inferences_while_the_stream_keeps_going(started) -> None:
    policy = GoalPolicy(goal=GOAL, speed=0.3, chunk_size=16, step_dt=0.05, max_prefix=8, delay_s=0.02)
    runtime, commands = make(policy, replan_period=0.3)
    chunks: list = []
    inference_starts: list[float] = []  # when each inference began: the clock at delivery less its latency
    runtime.on_chunk = lambda c: (chunks.append(c), inference_starts.append(runtime.clock.now() - c.inference_latency))
    start(started, runtime, commands)
    wait_until(lambda: len(chunks) >= 4, 15, what="four chunks")
    # Inference starts are what replan_period spaces (chunks start at their observations' stamps, which
    # jitter with the feeder and with a loaded CI machine: a mean of 0.27 s was seen there). Load can
    # only widen these gaps; the slack is the few ms between the end of inference and delivery.
    # Back to back they would be ~0.02 s.
    assert np.diff(inference_starts[:4]).min() > 0.25
    periods = np.diff([c.t for c in commands if chunks[0].t0 < c.t < chunks[3].t0])
    assert np.median(periods) < 0.03  # the stream never waited for the worker


def test_synchronous_runtime_pauses_the_stream_while_thinking(started) -> None:
    policy = GoalPolicy(goal=GOAL, speed=0.8, chunk_size=8, step_dt=0.05, max_prefix=4, delay_s=0.08)
    runtime, commands = make(policy, mode="synchronous")
    start(started, runtime, commands)
    wait_until(lambda: len({c.chunk_seq for c in commands}) >= 4, 15, what="four chunks")
    gaps = np.diff([c.t for c in commands])
    assert gaps.max() >= 0.08  # nothing is commanded during inference


def test_a_synchronous_chunk_runs_to_its_end_without_fresh_frames_then_waits_for_one(started) -> None:
    """A synchronous chunk is open loop, as in rollouts: a camera that falls silent mid-chunk (a late
    frame on a busy CPU) no longer cuts it short; the next inference still waits for a fresh frame."""
    policy = GoalPolicy(goal=GOAL, speed=0.6, delay_s=0.01, chunk_size=40)  # 2 s chunks
    runtime, commands = make(policy, mode="synchronous", max_observation_age=0.2)
    feeder = start(started, runtime, commands)
    wait_until(lambda: runtime.meters.chunks >= 1 and runtime.stream.executing, 10, what="a chunk executing")
    feeder.blind.set()
    chunks = runtime.meters.chunks
    time.sleep(0.6)  # frames 0.6 s old, joint states fresh
    assert runtime.status().state == RuntimeState.RUNNING and runtime.meters.chunks == chunks
    assert not commands[-1].holding
    wait_until(lambda: runtime.status().state == RuntimeState.HOLDING, 5, what="holding after the chunk")
    assert "stale observation: cam0" in runtime.status().reason and runtime.meters.chunks == chunks
    feeder.blind.clear()
    wait_until(lambda: runtime.meters.chunks > chunks, 10, what="a chunk from a fresh frame")


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_a_synchronous_chunk_cut_short_stops_where_it_is_cut(started, fraction) -> None:
    """``sync_execute_fraction`` < 1 plays that much of each chunk, then brakes at the limits where the
    arm is and looks again. Its braking loop used to follow the spline, so the rest of the chunk was
    played anyway and the parameter had no effect. And the chunk starts when the 0.3 s inference ends
    (the arm stood still meanwhile): placed at its start, its first 0.3 s were skipped."""
    policy = GoalPolicy(goal=GOAL, speed=0.6, chunk_size=21, step_dt=0.05, delay_s=0.3)  # 1 s chunks
    runtime, commands = make(policy, mode="synchronous", sync_execute_fraction=fraction)
    chunks: list = []
    runtime.on_chunk = chunks.append
    start(started, runtime, commands)
    wait_until(lambda: len(chunks) >= 2, 15, what="two chunks")
    planned = chunks[0].actions[-1, 0] - chunks[0].actions[0, 0]
    # Where the arm rested when the second chunk was inferred; a synchronous chunk starts there.
    moved = chunks[1].actions[0, 0] - chunks[0].actions[0, 0]
    if fraction == 1.0:
        assert moved == pytest.approx(planned, abs=0.02)
    else:  # half the chunk and a stop from 0.37 rad/s at 5 rad/s^2 (0.014 rad); late ticks on a loaded
        # machine add a little. Either bug played on to about the whole chunk (0.35-0.39 rad).
        assert planned / 2 <= moved < 0.8 * planned


def test_stale_observations_hold_and_say_why_then_recover(started) -> None:
    policy = GoalPolicy(goal=GOAL, speed=0.3, delay_s=0.02)
    runtime, commands = make(policy, max_observation_age=0.2)
    feeder = start(started, runtime, commands)
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="running")
    feeder.paused.set()
    status = wait_until(lambda: (s := runtime.status()).state == RuntimeState.HOLDING and s, 5, what="hold")
    assert "stale observation" in status.reason and "max_observation_age 0.2" in status.reason
    wait_until(lambda: commands[-1].holding and np.allclose(commands[-1].velocities, 0), 5, what="standstill")
    feeder.paused.clear()
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="running again")


def test_non_finite_chunks_are_refused_and_reported(started) -> None:
    bad = {"on": False}
    policy = GoalPolicy(goal=lambda obs: np.full(3, np.nan) if bad["on"] else GOAL, speed=0.5, delay_s=0.02)
    runtime, commands = make(policy)
    start(started, runtime, commands)
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="running")
    bad["on"] = True
    status = wait_until(lambda: (s := runtime.status()).state == RuntimeState.HOLDING and s, 5, what="hold")
    assert "non-finite actions" in status.reason
    assert all(np.all(np.isfinite(c.positions)) and EMB.within_limits(c.positions) for c in commands)


def test_uncertain_model_holds_and_reports_uncertain(started) -> None:
    spread = {"value": 0.0}
    policy = GoalPolicy(goal=GOAL, speed=0.5, delay_s=0.02, uncertainty=lambda obs: spread["value"])
    runtime, commands = make(policy, num_samples=4, uncertainty_threshold=0.1)
    start(started, runtime, commands)
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="running")
    spread["value"] = 0.3
    status = wait_until(lambda: (s := runtime.status()).state == RuntimeState.UNCERTAIN and s, 5, what="uncertain")
    assert status.uncertainty == pytest.approx(0.3) and "above threshold 0.100" in status.reason
    wait_until(lambda: commands[-1].holding, 5, what="holding")
    spread["value"] = 0.0
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="confident again")


def test_the_threshold_and_signal_of_a_calibration_file_are_used(started, tmp_path) -> None:
    spread = {"value": 0.05}
    policy = GoalPolicy(goal=GOAL, speed=0.5, delay_s=0.02, uncertainty=lambda obs: spread["value"])
    path = Calibration("sample_spread", 0.1, num_samples=4, checkpoint_id="goal-policy").save(tmp_path / "cal.json")
    config = Calibration.load(path).apply(RuntimeConfig())  # as the policy node's uncertainty_calibration does
    assert config.num_samples == 4  # raised: the spread needs samples
    commands = Recorder()
    runtime = Runtime(policy, EMB, config, on_command=commands)
    start(started, runtime, commands)
    status = wait_until(lambda: (s := runtime.status()).state == RuntimeState.RUNNING and s, 10, what="running")
    assert status.uncertainty_threshold == 0.1 and status.uncertainty_signal == "sample_spread"
    spread["value"] = 0.3  # above the calibrated 0.1, below the default (never hold)
    status = wait_until(lambda: (s := runtime.status()).state == RuntimeState.UNCERTAIN and s, 5, what="uncertain")
    assert "(sample_spread) 0.300 above threshold 0.100" in status.reason


def test_chunk_disagreement_needs_one_sample_and_is_the_reported_uncertainty(started) -> None:
    """A policy that changes its mind every chunk (heading to one goal, then the opposite) is
    uncertain by chunk_disagreement; one that keeps its plan is not. The status reports that signal."""
    flip = {"on": False}

    def goal(obs):
        return -GOAL if flip["on"] and policy.calls % 2 else GOAL

    policy = GoalPolicy(goal=goal, speed=1.0, delay_s=0.02)
    runtime, commands = make(policy, uncertainty_signal="chunk_disagreement", uncertainty_threshold=0.02)
    start(started, runtime, commands)
    running = RuntimeState.RUNNING
    status = wait_until(lambda: (s := runtime.status()).state == running and s.chunk_count >= 3 and s, 10, what="run")
    assert status.uncertainty_signal == "chunk_disagreement" and status.uncertainty < 0.02  # (NaN for chunk 1)
    assert runtime.config.num_samples == 1
    flip["on"] = True
    status = wait_until(lambda: (s := runtime.status()).state == RuntimeState.UNCERTAIN and s, 5, what="uncertain")
    assert status.uncertainty > 0.02 and "(chunk_disagreement)" in status.reason
    wait_until(lambda: commands[-1].holding, 5, what="holding")
    assert status.to_dict()["uncertainty_signal"] == "chunk_disagreement"


class Seeing(GoalPolicy):
    """Reports ``novel["value"]`` as its image_novelty, as a checkpoint with novelty.json does."""

    def __init__(self, novel: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.novel = novel

    def infer(self, *args, **kwargs):
        return {**super().infer(*args, **kwargs), "image_novelty": self.novel["value"]}


@pytest.mark.parametrize("how", ["guard", "signal"])
def test_image_novelty_holds_as_a_guard_beside_the_signal_or_as_the_signal(started, how) -> None:
    """A camera unlike the training frames holds the robot: through novelty_threshold whatever
    uncertainty_signal is (the guard), or as the chosen signal itself; the status says which."""
    novel = {"value": 1.0}
    policy = Seeing(novel, goal=GOAL, speed=0.5, delay_s=0.02)
    if how == "guard":
        settings = {"uncertainty_signal": "chunk_disagreement", "uncertainty_threshold": 0.5, "novelty_threshold": 4.0}
    else:
        settings = {"uncertainty_signal": "image_novelty", "uncertainty_threshold": 4.0, "novelty_threshold": math.inf}
    runtime, commands = make(policy, **settings)
    start(started, runtime, commands)
    status = wait_until(lambda: (s := runtime.status()).state == RuntimeState.RUNNING and s, 10, what="running")
    assert status.uncertainty_signal == settings["uncertainty_signal"]
    novel["value"] = 10.0  # the lens cap goes on
    status = wait_until(lambda: (s := runtime.status()).state == RuntimeState.UNCERTAIN and s, 5, what="uncertain")
    expected = "10.00 above novelty_threshold 4.00" if how == "guard" else "10.000 above threshold 4.000"
    assert f"(image_novelty) {expected}" in status.reason
    wait_until(lambda: commands[-1].holding, 5, what="holding")
    novel["value"] = 1.0
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="seeing again")


def test_hung_and_dead_workers_hold_and_fault(started) -> None:
    policy = GoalPolicy(goal=GOAL, speed=0.5, delay_s=0.02)
    runtime, commands = make(policy, worker_timeout=0.3)
    start(started, runtime, commands)
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="running")
    policy.delay_s = 1.0  # the next inference hangs
    status = wait_until(lambda: (s := runtime.status()).state == RuntimeState.HOLDING and s, 5, what="hung")
    assert "inference worker hung" in status.reason
    count = len(commands)
    time.sleep(0.2)
    assert len(commands) > count + 5  # the stream keeps commanding (a hold) meanwhile

    def explode(observation, committed=None, num_samples=1):
        raise RuntimeError("CUDA fell off")

    policy.infer = explode
    status = wait_until(lambda: (s := runtime.status()).state == RuntimeState.FAULT and s, 5, what="fault")
    assert "inference worker died: RuntimeError: CUDA fell off" in status.reason


def test_clock_jump_backwards_holds_until_fresh_data(started) -> None:
    clock = ManualClock(100.0)
    policy = GoalPolicy(goal=GOAL, speed=0.5)
    runtime = Runtime(policy, EMB, RuntimeConfig(mode="harmonic"), clock=clock)
    runtime.start(drive=False)  # the caller ticks, as a ROS timer on sim time would
    started.append(runtime)

    def step(n: int = 1, feed: bool = True) -> None:
        for _ in range(n):
            if feed:
                runtime.perception.put_joints(runtime.stream.position() if runtime.stream.started else np.zeros(3))
                runtime.perception.put_image("cam0", image())
            time.sleep(0.003)
            clock.advance(0.01)
            runtime.tick()

    step(5)
    wait_until(lambda: (step(), runtime.status().state == RuntimeState.RUNNING)[1], 10, what="running")
    clock.set(50.0)  # the simulation was reset
    runtime.tick()
    status = runtime.status()
    assert status.state == RuntimeState.HOLDING and "clock jumped backwards by" in status.reason
    wait_until(lambda: (step(), runtime.status().state == RuntimeState.RUNNING)[1], 10, what="recovered")
    # A status publisher that looked only now, after the hold ended, still reports it once (a node's
    # status tick is 20 ms; fresh data and a chunk can end this hold within one 10 ms control tick).
    reported = runtime.report()
    assert reported.state == RuntimeState.HOLDING and "clock jumped backwards by" in reported.reason
    assert runtime.report().state == RuntimeState.RUNNING


def test_hot_swap_keeps_acting_until_the_new_model_has_a_chunk(started) -> None:
    old = GoalPolicy(goal=GOAL, speed=0.5, delay_s=0.03, checkpoint_id="old")
    runtime, commands = make(old)
    start(started, runtime, commands)
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="running")

    def slow_load() -> GoalPolicy:
        time.sleep(0.3)
        return GoalPolicy(goal=-GOAL / 2, speed=0.5, delay_s=0.03, checkpoint_id="new")

    future = runtime.load_policy(slow_load, name="new")
    status = wait_until(lambda: (s := runtime.status()).state == RuntimeState.LOADING and s, 5, what="loading")
    assert "loading new" in status.reason
    assert future.result(timeout=5).checkpoint_id == "new"
    wait_until(lambda: runtime.status().checkpoint_id == "new", 5, what="swapped")
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 5, what="running new")
    periods = np.diff([c.t for c in commands])
    assert np.median(periods) < 0.02 and np.mean(periods > 0.05) < 0.05  # never paused (see the first test)
    failed = runtime.load_policy(lambda: (_ for _ in ()).throw(FileNotFoundError("no such checkpoint")), "bad")
    with pytest.raises(FileNotFoundError):
        failed.result(timeout=5)
    status = wait_until(lambda: (s := runtime.status()).reason and s, 5, what="load error")
    assert status.state == RuntimeState.RUNNING and "no such checkpoint" in status.reason
    assert runtime.checkpoint_id == "new"


def test_a_robot_moved_elsewhere_restarts_the_stream_from_where_it_is_within_the_limits(started, caplog) -> None:
    policy = GoalPolicy(goal=GOAL, speed=0.3, delay_s=0.03)
    runtime, commands = make(policy)
    feeder = start(started, runtime, commands)
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="running")
    elsewhere = np.array([-1.0, 1.0, -0.4])
    caplog.set_level("WARNING", logger="gen0_policy.runtime")
    runtime.on_command = commands  # the robot stops following: it was reset somewhere else
    feeder.position = elsewhere
    # The hold lasts only until the next chunk (tens of ms), too short to catch by polling status on a
    # loaded machine; the runtime logs every re-anchoring, so wait for that.
    messages = wait_until(
        lambda: [r.getMessage() for r in caplog.records if r.getMessage().startswith("re-anchored")], 5, what="resync"
    )
    assert "joint 0 jumped" in messages[0]
    time.sleep(0.3)
    # The re-anchor goes through the safety filter like every command: it used to jump there in one tick.
    steps = np.abs(np.diff([c.positions for c in list(commands)], axis=0))
    assert np.all(steps <= EMB.velocity_limits * runtime.config.period * (1 + 1e-9))
    feeder.runtime.on_command = lambda c: (commands(c), setattr(feeder, "position", c.positions))
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="running again")


def test_an_observation_measured_before_a_re_anchor_plans_nothing_after_it() -> None:
    """The worker can take an observation, the control path then re-anchor at a teleported robot, and
    the inference begin in the new epoch: its chunk started where the robot had been (the filter then
    drove it back) and ended the hold. Found reading the fuzz benchmark's slowest recovery (a 1.4 rad
    teleport). Nothing is started here, so every step is the test's."""
    from gen0_policy.runtime.executors import infer

    clock = ManualClock(10.0)
    runtime = Runtime(GoalPolicy(goal=GOAL), EMB, RuntimeConfig(mode="harmonic"), clock=clock)
    runtime.perception.put_image("cam0", image(3), 10.0)
    runtime.perception.put_joints(np.zeros(3), 10.0)
    runtime.tick()  # the stream starts at the measured position
    before = runtime.perception.latest()
    assert infer(runtime, before, harmonic=True) is not None  # fine until the robot moves
    clock.advance(0.01)
    elsewhere = np.array([-1.0, 1.0, -0.4])
    runtime.perception.put_joints(elsewhere, 10.01)  # a teleport: faster than any joint moves
    runtime.tick()
    assert "re-anchored" in runtime.health.restart_reason
    chunks = runtime.meters.chunks
    assert infer(runtime, before, harmonic=True) is None  # measured before it: no plan, no end of the hold
    assert runtime.meters.chunks == chunks and "re-anchored" in runtime.health.restart_reason
    after = runtime.perception.latest()
    chunk = infer(runtime, after, harmonic=True)
    assert chunk is not None and not runtime.health.restart_reason
    np.testing.assert_allclose(chunk.actions[0], elsewhere, atol=0.05)  # planned from where the robot is


@pytest.mark.parametrize(
    ("mode", "drive", "needs_ticks"),
    [("harmonic", False, True), ("harmonic", True, False), ("synchronous", False, False), ("synchronous", True, False)],
)
def test_the_runtime_says_whether_its_caller_must_tick_it(started, mode, drive, needs_ticks) -> None:
    """The node used to decide by mode whether to add a sim-time timer; a synchronous runtime ticked by
    both read the clock out of order. The runtime says, and acts on its own whenever it says no."""
    runtime, commands = make(GoalPolicy(goal=GOAL, speed=0.3, delay_s=0.03), mode=mode)
    assert not runtime.needs_ticks  # not started
    feeder = Feeder(runtime)
    runtime.on_command = lambda c: (commands(c), setattr(feeder, "position", c.positions))
    runtime.start(drive=drive)
    started.extend([runtime, feeder])
    assert runtime.needs_ticks is needs_ticks
    if not needs_ticks:
        wait_until(lambda: len(commands) > 20, 10, what="commands with no outside tick")
    else:
        time.sleep(0.3)
        assert not commands


def test_deactivated_it_brakes_then_sends_nothing_until_resumed(started) -> None:
    """Deactivation used to keep commands flowing (a hold at 84 Hz); now the stream brakes to rest and
    goes quiet, and resuming is neither a clock jump nor a restart from elsewhere."""
    runtime, commands = make(GoalPolicy(goal=GOAL, speed=0.3, delay_s=0.03))
    start(started, runtime, commands)
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="running")
    runtime.hold("deactivated")
    wait_until(lambda: runtime.quiescent, 5, what="at rest")
    time.sleep(0.05)  # a tick that reached rest may still be handing over its (last) command
    count = len(commands)
    time.sleep(0.3)
    assert len(commands) == count and runtime.status().state == RuntimeState.IDLE
    runtime.resume()
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="running again")
    wait_until(lambda: len(commands) > count + 5, 5, what="commands again")
    steps = np.abs(np.diff([c.positions for c in list(commands)], axis=0))
    assert np.all(steps <= EMB.velocity_limits * runtime.config.period * (1 + 1e-9))


def test_moved_while_deactivated_it_resumes_from_where_the_robot_is(started, caplog) -> None:
    """MoveIt moves (or a hand) may move the arm while the policy is inactive, less than
    resync_tolerance: resuming must start from there, never drive the arm back to where it stopped."""
    runtime, commands = make(GoalPolicy(goal=GOAL, speed=0.3, delay_s=0.03))
    feeder = start(started, runtime, commands)
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="running")
    runtime.hold("deactivated")
    wait_until(lambda: runtime.quiescent, 5, what="at rest")
    caplog.set_level("WARNING", logger="gen0_policy.runtime")
    # Absolute positions from where the stream rests: the tick that brought it to rest may still be
    # handing its last command to the feeder when quiescent turns true (CI saw 0.196 of 0.200 moved).
    rest = runtime.stream.position().copy()
    for i in range(1, 51):  # 0.2 rad in 0.5 s: a smooth move, no teleport
        feeder.position = rest + np.array([0.004 * i, 0.0, 0.0])
        time.sleep(0.01)
    moved, count = feeder.position.copy(), len(commands)
    wait_until(lambda: np.array_equal(runtime.perception.latest_joints(), moved), 5, what="the last move measured")
    runtime.resume()
    wait_until(lambda: len(commands) > count + 20, 5, what="commands again")
    assert "starting from the measured position: j0 moved 0.200 while deactivated" in caplog.messages
    assert not [m for m in caplog.messages if m.startswith("re-anchored")]  # no detour back, no teleport
    after = np.array([c.positions for c in list(commands)[count:]])
    assert np.allclose(after[0], moved, atol=1e-9)
    steps = np.abs(np.diff(after, axis=0))
    assert np.all(steps <= EMB.velocity_limits * runtime.config.period * (1 + 1e-9))


def test_a_task_ends_at_rest_and_the_next_starts_from_the_robot_and_fresh_observations(started, caplog) -> None:
    """Through ROS the last task's plan and frames from before a scene reset started the next task
    (press_button 1/6 against 6/6 from a clean start): a new task starts as an episode does."""
    runtime, commands = make(GoalPolicy(goal=GOAL, speed=0.3, delay_s=0.03))
    chunks: list = []
    runtime.on_chunk = chunks.append
    feeder = start(started, runtime, commands)
    runtime.begin_task("reach the goal")
    wait_until(lambda: runtime.status().state == RuntimeState.RUNNING, 10, what="running")
    wait_until(lambda: commands and np.any(commands[-1].velocities), 5, what="moving")
    runtime.end_task("task succeeded")
    # Still braking: not ready for a scene reset (a teleport now is pulled back toward the brake's end)
    assert not runtime.status().awaiting_goal
    wait_until(lambda: runtime.stream.at_rest, 5, what="at rest")
    count = len(commands)
    time.sleep(0.3)
    status = runtime.status()
    assert len(commands) == count and status.state == RuntimeState.IDLE and status.reason == "task succeeded"
    assert status.awaiting_goal  # at rest, and a goal would start it: clients read this, not the reason's words
    assert not runtime.quiescent  # the lifecycle's tick source keeps running: the next goal needs it
    reset = np.array([-1.0, 1.0, -0.4])  # the scene was reset between the tasks: a teleport
    feeder.position = reset
    time.sleep(0.05)
    caplog.set_level("WARNING", logger="gen0_policy.runtime")
    begun, first_chunk = runtime.clock.now(), len(chunks)
    runtime.begin_task("press the button")
    wait_until(lambda: len(commands) > count + 20, 5, what="commands again")
    assert runtime.instruction == "press the button"
    after = np.array([c.positions for c in list(commands)[count:]])
    assert np.allclose(after[0], reset, atol=1e-9)  # from where the robot is, not back to where it stopped
    assert not [m for m in caplog.messages if m.startswith("re-anchored")]
    assert all(c.t0 >= begun - 1e-9 for c in chunks[first_chunk:])  # only observations taken after the start
    runtime.hold("deactivated")
    runtime.begin_task("again")  # a goal never overrides the lifecycle
    wait_until(lambda: runtime.status().reason == "deactivated", 5, what="held by the lifecycle")
    assert not runtime.status().awaiting_goal  # deactivated: a goal would not start it


def test_a_frozen_clock_is_reported_as_a_fault_not_silence(started) -> None:
    clock = ManualClock(5.0)
    runtime = Runtime(GoalPolicy(goal=GOAL), EMB, RuntimeConfig(mode="harmonic", clock_stall_timeout=0.3), clock)
    runtime.start(drive=False)
    started.append(runtime)
    runtime.status()
    time.sleep(0.4)
    status = runtime.status()
    assert status.state == RuntimeState.FAULT and "clock has not advanced for" in status.reason
    clock.advance(0.01)
    assert runtime.status().state != RuntimeState.FAULT


def test_a_task_drops_frames_taken_before_it_began() -> None:
    """A frame of the scene before a sim reset may arrive after the goal (70-280 ms through ROS here):
    it must not be the first thing the new task looks at."""
    clock = ManualClock(10.0)
    runtime = Runtime(GoalPolicy(goal=GOAL), EMB, RuntimeConfig(mode="synchronous"), clock=clock)
    runtime.begin_task("reach the goal")
    runtime.perception.put_image("cam0", image(3), 9.9)
    runtime.perception.put_joints(np.zeros(3), 9.95)
    assert runtime.perception.before_start == 2 and runtime.perception.latest() is None
    runtime.perception.put_image("cam0", image(3), 10.0)
    runtime.perception.put_joints(np.zeros(3), 10.0)
    assert runtime.perception.latest() is not None


def test_run_here_steps_a_simulated_world_on_the_calling_thread_in_its_own_time() -> None:
    """A caller that advances a world one control period per tick (benchmarks/lockstep_loop.py): the
    synchronous loop runs on its thread, paced by the world's clock, and stops from a tick."""
    clock = ManualClock(0.0)
    policy = GoalPolicy(GOAL, speed=1.0)
    runtime = Runtime(policy, EMB, RuntimeConfig(mode="synchronous"), clock=clock)
    position = np.zeros(3)
    wall = type("SimWall", (), {"monotonic": staticmethod(clock.now), "sleep": staticmethod(lambda _s: None)})
    ticks: list[float] = []

    def world() -> None:  # one control period: the arm tracks the command, the sensors report
        nonlocal position
        ticks.append(clock.advance(runtime.config.period))
        runtime.perception.put_joints(position, clock.now())
        runtime.perception.put_image("cam0", image(3), clock.now())
        if np.allclose(position, GOAL, atol=1e-6) or clock.now() > 20.0:
            runtime.stop()

    runtime.on_command = lambda c: position.__setitem__(slice(None), c.positions)
    runtime.begin_task("reach the goal")
    world()
    began = time.monotonic()
    runtime.run_here(world, wall)
    np.testing.assert_allclose(position, GOAL, atol=1e-6)
    assert clock.now() < 20.0 and policy.calls >= 2
    assert time.monotonic() - began < clock.now()  # nothing waited on the wall clock
    assert runtime.status().state == RuntimeState.IDLE  # stopped from the tick: not running any more
    assert np.allclose(np.diff(ticks), runtime.config.period)  # one period per tick, in the world's time

    harmonic = Runtime(policy, EMB, RuntimeConfig(mode="harmonic"), clock=clock)
    with pytest.raises(RuntimeError, match="ticked from outside"):
        harmonic.run_here(world, wall)


@pytest.mark.parametrize("acceleration", [5.0, 1000.0])
def test_a_synchronous_stream_that_stops_on_hold_goes_straight_to_the_next_look(acceleration) -> None:
    """Between chunks a synchronous loop stops the arm, looks and thinks. A joint arm at 5 rad/s^2
    needs braking ticks to stop from 0.6 rad/s; a hand that stops within the acceleration limit by
    holding its last command (Meta-World's) needs none: the controller holds while the model thinks.
    Its braking tick was one more step of standing still per chunk than the benchmark's paused env
    has. The next look sees the world after the last command, in both cases."""
    clock = ManualClock(0.0)
    policy = GoalPolicy(GOAL, speed=0.6, chunk_size=16, step_dt=0.01)
    emb = toy_embodiment(dof=3, cameras=1, acceleration=acceleration)
    runtime = Runtime(policy, emb, RuntimeConfig(mode="synchronous"), clock=clock)
    position = np.zeros(3)
    wall = type("SimWall", (), {"monotonic": staticmethod(clock.now), "sleep": staticmethod(lambda _s: None)})
    commands: list[Command] = []
    chunks: list = []

    def world() -> None:
        clock.advance(runtime.config.period)
        runtime.perception.put_joints(position, clock.now())
        runtime.perception.put_image("cam0", image(3), clock.now())
        if len(chunks) >= 4 or clock.now() > 5.0:
            runtime.stop()

    def on_command(c: Command) -> None:
        commands.append(c)
        position[:] = c.positions

    runtime.on_command, runtime.on_chunk = on_command, chunks.append
    runtime.begin_task("reach the goal")
    world()
    runtime.run_here(world, wall)
    assert len(chunks) >= 4
    for before, after in itertools.pairwise(chunks[1:4]):
        played = [i for i, c in enumerate(commands) if c.chunk_seq == before.seq]
        first_after = next(i for i, c in enumerate(commands) if c.chunk_seq == after.seq)
        braking = commands[played[-1] + 1 : first_after]
        assert len(played) == 12 and all(not commands[i].holding for i in played)  # 0.75 of 16 rows
        assert all(c.holding for c in braking) and bool(braking) == (acceleration == 5.0)
        last = commands[first_after - 1]
        assert after.observation_stamp == pytest.approx(last.t + runtime.config.period)
        assert commands[first_after].t == pytest.approx(last.t + runtime.config.period)  # thinking takes no time here
