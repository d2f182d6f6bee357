"""Chunk swaps in the action stream, measured numerically: with a committed prefix and an anchored
spline the next chunk continues with the same position and velocity; upsampling each chunk from
rest (what a synchronous executor does) decelerates at every boundary."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_helpers import toy_embodiment

from gen0_policy.runtime.action_stream import ActionStream
from gen0_policy.runtime.goal_policy import GoalPolicy
from gen0_policy.runtime.safety import SafetyFilter, SafetyLimits
from gen0_policy.runtime.trajectory import Chunk

PERIOD = 0.01
SETTLED = 50  # ticks: the start from rest is a transient, not a splice
EMB = toy_embodiment(dof=3, velocity=2.0, acceleration=50.0)  # generous: measure the splice, not the filter


def run(policy: GoalPolicy, latency_ticks: int, ticks: int, rest_boundaries: bool = False):
    """Tick a stream at 100 Hz; every inference starts when the previous one is delivered and takes
    ``latency_ticks``; returns command times, positions and the tick indices of the swaps."""
    stream = ActionStream(SafetyFilter(SafetyLimits.from_embodiment(EMB)), PERIOD)
    stream.reset(0.0, np.zeros(3))
    times, positions, swaps = [0.0], [stream.position()], []
    request, in_flight = 0, None
    for k in range(1, ticks + 1):
        t = k * PERIOD
        if in_flight is None and k >= request:
            t0 = (k - 1) * PERIOD
            prefix = 0 if rest_boundaries else latency_ticks // round(policy.step_dt / PERIOD) + 2
            committed = stream.plan(t0 + np.arange(prefix) * policy.step_dt) if prefix else None
            out = policy.infer({"joint_positions": positions[-1]}, committed)
            in_flight = (k + latency_ticks, Chunk(actions=out["actions"], t0=t0, step_dt=policy.step_dt))
        if in_flight is not None and k >= in_flight[0]:
            if rest_boundaries:
                stream.rebase((k - 1) * PERIOD)
            stream.submit(in_flight[1])
            swaps.append(k)
            request = k + (round(in_flight[1].t_end / PERIOD) - in_flight[0] if rest_boundaries else 0)
            in_flight = None
        times.append(t)
        positions.append(stream.tick(t).positions)
    return np.array(times), np.array(positions), swaps


def jumps(positions: np.ndarray, swaps: list[int]) -> tuple[float, float]:
    """Largest change of step size (velocity jump, rad/s) at swap ticks vs. everywhere else."""
    velocity = np.diff(positions, axis=0) / PERIOD  # velocity[k-1] is the step into tick k
    dv = np.linalg.norm(np.diff(velocity, axis=0), axis=1)  # dv[k-2]: change at tick k
    at_swaps = max(dv[k - 2] for k in swaps if k >= SETTLED)
    return at_swaps, float(np.linalg.norm(velocity, axis=1)[SETTLED:].min())


def test_swaps_keep_velocity_continuous_on_a_straight_path() -> None:
    policy = GoalPolicy(goal=np.array([1.5, -1.5, 0.9]), speed=0.6, chunk_size=16, step_dt=0.05, max_prefix=8)
    _, positions, swaps = run(policy, latency_ticks=7, ticks=200)
    assert len(swaps) > 20
    velocity_jump, slowest = jumps(positions[:180], [s for s in swaps if s < 170])
    assert velocity_jump < 1e-3  # rad/s: the splice is invisible
    assert slowest > 0.59  # never slows down at a boundary (speed 0.6 rad/s)
    position_steps = np.linalg.norm(np.diff(positions[SETTLED:170], axis=0), axis=1)
    assert position_steps.max() < 0.6 * PERIOD * 1.01  # no position jump either


def test_swaps_keep_velocity_continuous_when_the_goal_moves() -> None:
    """A new goal every chunk: the direction changes, so acceleration may jump, but velocity may not."""
    goals = iter(np.random.default_rng(1).uniform(-1.5, 0.9, size=(100, 3)))
    policy = GoalPolicy(goal=lambda obs: next(goals), speed=0.8, chunk_size=16, step_dt=0.05, max_prefix=8)
    _, positions, swaps = run(policy, latency_ticks=6, ticks=300)
    velocity = np.diff(positions, axis=0) / PERIOD
    dv = np.linalg.norm(np.diff(velocity, axis=0), axis=1)
    at_swaps = np.array([dv[k - 2] for k in swaps if k > 2])
    between = np.delete(dv, [k - 2 for k in swaps if k > 2])
    # A velocity jump would show up as a spike at the swaps; they look like any other tick.
    assert at_swaps.max() <= between.max() * 1.5
    assert at_swaps.max() < 0.5  # rad/s per tick (acceleration < 50 rad/s^2, the generous limit)


def test_rest_boundaries_decelerate_at_every_chunk() -> None:
    policy = GoalPolicy(goal=np.array([1.5, -1.5, 0.9]), speed=0.6, chunk_size=16, step_dt=0.05, max_prefix=8)
    _, positions, swaps = run(policy, latency_ticks=7, ticks=300, rest_boundaries=True)
    _, slowest = jumps(positions, swaps)
    assert len(swaps) >= 3
    assert slowest < 0.1  # comes (nearly) to a stop between chunks


def test_plan_returns_the_committed_future_and_late_ticks_repeat() -> None:
    stream = ActionStream(SafetyFilter(SafetyLimits.from_embodiment(EMB)), PERIOD)
    assert stream.tick(0.0) is None  # not started: nothing to command
    stream.reset(0.0, np.zeros(3))
    actions = np.linspace(0, 0.5, 11)[:, None] * np.ones(3)
    stream.submit(Chunk(actions=actions, t0=0.0, step_dt=0.05))
    first = stream.tick(0.01)
    np.testing.assert_allclose(stream.plan(np.array([0.25, 0.5])), actions[[5, 10]], atol=1e-9)
    again = stream.tick(0.01)  # simulated time stood still
    np.testing.assert_array_equal(first.positions, again.positions)
    assert not first.holding and first.chunk_seq == 0


def test_plan_of_past_times_returns_what_was_commanded() -> None:
    """A chunk computed from an observation taken before now is conditioned on the commands sent since
    then, including those of a chunk that has been replaced: the stream remembers them."""
    stream = ActionStream(SafetyFilter(SafetyLimits.from_embodiment(EMB)), PERIOD)
    stream.reset(0.0, np.zeros(3))
    stream.submit(Chunk(actions=np.linspace(0, 0.4, 9)[:, None] * np.ones(3), t0=0.0, step_dt=0.05))
    sent = {0: np.zeros(3)}
    for k in range(1, 31):
        sent[k] = stream.tick(k * PERIOD).positions
        if k == 20:  # a new chunk heading the other way takes over
            stream.submit(Chunk(actions=-np.linspace(0, 0.4, 9)[:, None] * np.ones(3), t0=0.2, step_dt=0.05))
    past = np.array([0.05, 0.15, 0.25, 0.3])
    np.testing.assert_allclose(stream.plan(past), [sent[5], sent[15], sent[25], sent[30]], atol=1e-12)
    between = stream.plan(np.array([0.155]))[0]
    np.testing.assert_allclose(between, (sent[15] + sent[16]) / 2, atol=1e-12)
    future = stream.plan(np.array([0.35]))[0]
    np.testing.assert_allclose(future, stream.trajectory.position(0.35), atol=1e-12)
    stream.restart(1.0, np.ones(3))  # a restart plans the way to the measured position, not the past
    np.testing.assert_allclose(stream.plan(np.array([0.05])), [sent[5]], atol=1e-12)
    np.testing.assert_allclose(stream.plan(np.array([1.5])), np.ones((1, 3)))


def test_plan_is_what_a_chunk_handed_over_but_not_yet_taken_over_will_command() -> None:
    """The worker plans its next inference right after submitting a chunk, usually before the tick that
    takes it over: the plan must be that chunk's, not the replaced one's (planned from the replaced one,
    chunks alternated between two paths and the hand shuttled between them)."""
    stream = ActionStream(SafetyFilter(SafetyLimits.from_embodiment(EMB)), PERIOD)
    stream.reset(0.0, np.zeros(3))
    stream.submit(Chunk(actions=np.linspace(0, 0.4, 9)[:, None] * np.ones(3), t0=0.0, step_dt=0.05))
    sent = {k: stream.tick(k * PERIOD).positions for k in range(1, 11)}
    future = np.array([0.15, 0.2, 0.3])
    replaced = stream.plan(future)
    stream.submit(Chunk(actions=-np.linspace(0, 0.4, 9)[:, None] * np.ones(3), t0=0.1, step_dt=0.05))
    planned = stream.plan(future)
    np.testing.assert_allclose(stream.plan(np.array([0.05])), [sent[5]], atol=1e-12)  # the past stays what was sent
    stream.tick(11 * PERIOD)
    np.testing.assert_allclose(planned, stream.trajectory.position(future), atol=1e-12)
    assert np.all(planned[:, 0] < replaced[:, 0] - 0.05)  # the new chunk heads the other way


def test_a_restart_reaches_the_measured_position_within_the_limits() -> None:
    """A re-anchor (a robot reset, a teleporting joint state) used to jump the command to the measured
    position in one tick; now it gets there through the safety filter and then rests."""
    limits = SafetyLimits.from_embodiment(EMB)
    stream = ActionStream(SafetyFilter(limits), PERIOD)
    stream.reset(0.0, np.zeros(3))
    stream.submit(Chunk(actions=np.linspace(0, 0.4, 9)[:, None] * np.ones(3), t0=0.0, step_dt=0.05))
    positions = [stream.tick(k * PERIOD).positions for k in range(1, 11)]
    target = np.clip(np.array([0.8, -0.5, 0.3]), limits.lower, limits.upper)
    stream.restart(10 * PERIOD, target)
    assert stream.settling
    for k in range(11, 400):
        positions.append(stream.tick(k * PERIOD, hold=k % 2 == 0).positions)
    steps = np.abs(np.diff(np.array(positions), axis=0))
    assert np.all(steps <= limits.velocity * PERIOD * (1 + 1e-9))
    np.testing.assert_allclose(positions[-1], target, atol=1e-9)
    assert not stream.settling and stream.at_rest


def test_a_late_tick_moves_no_more_than_one_period_allows() -> None:
    """The controller is told to reach each command one period after it is sent, so a tick that comes
    late (here three periods) may still move only one period's worth (it used to move two)."""
    limits = SafetyLimits.from_embodiment(EMB)
    stream = ActionStream(SafetyFilter(limits), PERIOD)
    stream.reset(0.0, np.zeros(3))
    stream.submit(Chunk(actions=np.linspace(0, 3.0, 9)[:, None] * np.ones(3), t0=0.0, step_dt=0.05))
    t, last = 0.0, np.zeros(3)
    for k in range(200):
        t += PERIOD * (3 if k % 7 == 0 else 1)
        command = stream.tick(t)
        assert np.all(np.abs(command.positions - last) <= limits.velocity * PERIOD * (1 + 1e-9))
        last = command.positions


def test_with_horizons_a_stream_ticked_late_keeps_up_with_the_controller() -> None:
    """Through ROS the ticks came at 65 Hz. Held to one period per tick, the stream moved at 65 % of
    the velocity limit while the controller executed horizons at the full limit: after a wrist turn
    the runtime's command was 1 rad from the measured joint and it re-anchored mid-reach (61 times
    in 120 Panda episodes). With ``max_step_s`` the stream advances by the time that passed, as the
    controller did, and never faster than the limits allow over that time."""
    limits = SafetyLimits.from_embodiment(EMB)
    chunk = Chunk(actions=np.linspace(0, 3.0, 9)[:, None] * np.ones(3), t0=0.0, step_dt=0.05)
    ends = {}
    for max_step_s in (None, 0.5):
        stream = ActionStream(SafetyFilter(limits), PERIOD)
        stream.reset(0.0, np.zeros(3))
        stream.submit(chunk)
        t, last = 0.0, np.zeros(3)
        while t < 0.4:
            dt = 0.015  # 65 Hz
            t += dt
            command = stream.tick(t, max_step_s=max_step_s)
            assert np.all(np.abs(command.positions - last) <= limits.velocity * dt * (1 + 1e-9))
            last = command.positions
        ends[max_step_s] = last[0]
    on_time = ActionStream(SafetyFilter(limits), PERIOD)
    on_time.reset(0.0, np.zeros(3))
    on_time.submit(chunk)
    for k in range(1, 41):
        expected = on_time.tick(k * PERIOD).positions[0]
    assert ends[0.5] == pytest.approx(expected, abs=0.02)  # where a controller that followed the plan is
    assert ends[None] < 0.8 * expected  # one period per tick: behind it


@pytest.mark.parametrize("hold", [True, False])
def test_holding_brakes_to_a_standstill(hold: bool) -> None:
    stream = ActionStream(SafetyFilter(SafetyLimits.from_embodiment(EMB)), PERIOD)
    stream.reset(0.0, np.zeros(3))
    stream.submit(Chunk(actions=np.linspace(0, 0.8, 17)[:, None] * np.ones(3), t0=0.0, step_dt=0.05))
    for k in range(1, 30):
        stream.tick(k * PERIOD)
    for k in range(30, 60):
        command = stream.tick(k * PERIOD, hold=hold)
    assert command.holding == hold
    if hold:
        np.testing.assert_allclose(command.velocities, 0.0, atol=1e-12)


def test_a_chunk_that_ends_at_speed_stops_on_its_last_waypoint_without_swinging() -> None:
    """The spline stops at a chunk's last waypoint faster than the acceleration limit allows. Tracked
    greedily, the command overshot it and swung back and forth at the limit (on a Panda-like joint
    0.05 rad either way for 0.6 s after every synchronous chunk); now it brakes along the stopping
    curve: one overshoot, then back to the waypoint ringing at under a third of it, at rest soon."""
    emb = toy_embodiment(dof=3, velocity=2.0, acceleration=12.5)
    limits = SafetyLimits.from_embodiment(emb)
    stream = ActionStream(SafetyFilter(limits), PERIOD)
    stream.reset(0.0, np.zeros(3))
    actions = np.linspace(0, 0.8, 16)[:, None] * np.array([1.0, -1.0, 0.5])  # about 1 rad/s until the end
    chunk = Chunk(actions=actions, t0=0.0, step_dt=0.05)
    stream.submit(chunk)
    k, errors, velocities = 0, [], []
    while not (k * PERIOD > chunk.t_end and stream.at_rest) and k < 300:
        k += 1
        command = stream.tick(k * PERIOD)
        if k * PERIOD > chunk.t_end:
            errors.append(command.positions - actions[-1])
            velocities.append(command.velocities)
    assert k * PERIOD - chunk.t_end < 0.35  # at rest (after 0.64 s of swinging before)
    np.testing.assert_allclose(command.positions, actions[-1], atol=1e-9)
    errors_arr = np.abs(np.array(errors))
    first = np.argmax(errors_arr, axis=0)  # the overshoot
    for j in range(3):
        back = errors_arr[first[j] :, j]
        crossed = np.argmax(np.diff(np.sign(np.array(errors)[first[j] :, j])) != 0) + 1
        assert np.max(back[crossed:]) <= 0.3 * errors_arr[first[j], j]  # it swung 100 % back before
    accelerations = np.abs(np.diff(np.array(velocities), axis=0)) / PERIOD
    assert np.all(accelerations <= limits.acceleration * (1 + 1e-9))
