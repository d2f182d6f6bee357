"""Command horizons: the curve a trajectory controller executes from them stays inside every limit,
joins the previous horizon without a jump in position or velocity, follows the plan, ends at rest,
and is a brake when the runtime holds. The trajectory check is exact on hand-computed segments."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from runtime_helpers import toy_embodiment

from gen0_policy.runtime import Command, GoalPolicy, ManualClock, Runtime, RuntimeConfig
from gen0_policy.runtime.horizon import Horizon, HorizonPlanner, track_step
from gen0_policy.runtime.safety import SafetyFilter, SafetyLimits
from gen0_policy.runtime.trajectory import Chunk, Trajectory, hermite_sample

PERIOD = 0.01
LIMITS = SafetyLimits(
    lower=np.array([-2.0, -2.0, -0.5]),
    upper=np.array([2.0, 2.0, 1.0]),
    velocity=np.array([1.0, 1.0, 1.0]),
    acceleration=np.array([5.0, 5.0, 5.0]),
)


def command(t: float, p, v=(0.0, 0.0, 0.0), holding: bool = False, seq: int = 1) -> Command:
    return Command(t, np.array(p, float), np.array(v, float), holding, seq, t, False)


def chunk_trajectory(t0: float, p0, actions: np.ndarray, v0=(0.0, 0.0, 0.0), seq: int = 1) -> Trajectory:
    chunk = Chunk(actions=np.asarray(actions, float), t0=t0, step_dt=0.05, seq=seq)
    return Trajectory.from_chunk(chunk, t0, np.array(p0, float), np.array(v0, float))


def executed(h: Horizon, rate_hz: float = 2000.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What the controller executes, sampled finely: times, positions, velocities, accelerations."""
    t = np.arange(h.start, h.end + 1e-9, 1.0 / rate_hz)
    return (t, *h.sample(t))


def assert_within_limits(h: Horizon) -> None:
    _, p, v, a = executed(h)
    assert np.all(p >= LIMITS.lower - 1e-9) and np.all(p <= LIMITS.upper + 1e-9)
    assert np.all(np.abs(v) <= LIMITS.velocity * (1 + 1e-6))
    assert np.all(np.abs(a) <= LIMITS.acceleration * (1 + 1e-6))
    assert SafetyFilter(LIMITS).check_trajectory(h.start + h.times, h.positions, h.velocities) == (-1, "")


def bridged(full: Horizon, p0: np.ndarray, v0: np.ndarray) -> Horizon:
    """What a controller executes from a message (``full.select``) taking over at its stamp from the
    state (p0, v0): a Hermite bridge from there to the first point, then through the points."""
    sent = full.select(np.arange(3))
    assert sent.times[0] > 0
    times = np.concatenate([[0.0], sent.times])
    positions, velocities = np.vstack([p0, sent.positions]), np.vstack([v0, sent.velocities])
    return Horizon(full.start, times, positions, velocities, full.stopping, full.plan_end)


def assert_joined(a: Horizon, b: Horizon) -> None:
    """Message ``b`` takes over from ``a`` at b's stamp: the controller executes b's plan from a's state
    there, within the limits."""
    executing = bridged(a, a.positions[0], a.velocities[0])  # a's point 0 is where its predecessor was
    (p0,), (v0,), _ = executing.sample(b.start)
    after = bridged(b, p0, v0)
    steps = b.start + b.times  # within b.tolerance of the planned steps (between them the check is the limits')
    assert np.max(np.abs(after.sample(steps)[0] - b.sample(steps)[0])) <= b.tolerance + 1e-9
    t = np.arange(b.start, b.end, 0.002)
    # Between the steps the controller's curve may differ from the plan in velocity too; the worker's
    # timing decides the plans, and beside the ROS tests on 2 cores 0.052-0.067 rad/s were seen.
    assert np.max(np.abs(after.sample(t)[1] - b.sample(t)[1])) < 0.1
    assert_within_limits(after)


# ---------------------------------------------------------------- the check, on hand-computed segments
def test_trajectory_check_is_exact_between_points() -> None:
    one = SafetyLimits(np.array([-1.0]), np.array([1.0]), np.array([1.6]), np.array([6.1]))
    # 0 -> 1 in 1 s from and to rest: p = 3s^2 - 2s^3, peak speed 1.5 at s = 0.5, |a| = 6 at both ends.
    times, p, v = np.array([0.0, 1.0]), np.array([[0.0], [1.0]]), np.zeros((2, 1))
    assert SafetyFilter(one).check_trajectory(times, p, v) == (-1, "")
    slow = SafetyLimits(one.lower, one.upper, np.array([1.4]), one.acceleration)
    assert SafetyFilter(slow).check_trajectory(times, p, v)[0] == 0  # only the middle is too fast
    weak = SafetyLimits(one.lower, one.upper, one.velocity, np.array([5.9]))
    assert SafetyFilter(weak).check_trajectory(times, p, v)[0] == 0
    # Leaving 0 at 2 rad/s and back at rest at 0 after 1 s: p = 2s(1-s)^2 peaks at 8/27 (s = 1/3).
    fast = SafetyLimits(np.array([-1.0]), np.array([0.3]), np.array([2.0]), np.array([8.0]))
    out = (np.array([0.0, 1.0]), np.array([[0.0], [0.0]]), np.array([[2.0], [0.0]]))
    assert SafetyFilter(fast).check_trajectory(*out) == (-1, "")
    low = SafetyLimits(np.array([-1.0]), np.array([0.29]), np.array([2.0]), np.array([8.0]))
    assert SafetyFilter(low).check_trajectory(*out)[0] == 0  # both points are inside; the curve is not
    p_peak, v_peak, _ = hermite_sample(*out, np.array([1 / 3]))
    assert p_peak[0, 0] == pytest.approx(8 / 27) and v_peak[0, 0] == pytest.approx(0.0, abs=1e-12)


def test_tracker_steps_keep_every_limit_from_any_state_that_can_still_stop() -> None:
    rng = np.random.default_rng(0)
    n, dt = 20000, PERIOD
    limits = SafetyLimits(np.full(n, -1.0), np.full(n, 1.0), np.full(n, 2.0), np.full(n, 8.0))
    p = rng.uniform(-1.0, 1.0, n)
    v = rng.uniform(-2.0, 2.0, n)
    room = np.where(v > 0, 1.0 - p, p + 1.0)
    v = np.sign(v) * np.minimum(np.abs(v), np.sqrt(2 * 8.0 * room))  # can stop before the limit ahead
    for desired in (rng.uniform(-5, 5, n), np.zeros(n), np.full(n, 5.0), np.full(n, -5.0)):
        q, w = track_step(limits, p, v, desired, dt)
        acc = (w - v) / dt
        assert np.all(np.abs(acc) <= 8.0 * (1 + 1e-9)) and np.all(np.abs(w) <= 2.0 * (1 + 1e-9))
        # constant acceleration over the step: the turning point, if inside it, is inside the limits
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(acc != 0, -v / acc, -1.0)
        turn = np.where((s > 0) & (s < dt), p + v * s + acc * s**2 / 2, q)
        assert np.all(np.abs(q) <= 1.0 + 1e-9) and np.all(np.abs(turn) <= 1.0 + 1e-9)
        ahead = np.where(w > 0, 1.0 - q, q + 1.0)
        assert np.all(w**2 / (2 * 8.0) <= ahead + 1e-9)  # and it can still stop


# ---------------------------------------------------------------- horizons from the planner
def test_horizon_follows_the_plan_at_the_chunk_step_and_ends_at_rest() -> None:
    t0 = 10.0
    times = t0 + 0.05 * np.arange(16)
    actions = np.stack([0.3 * np.sin(times - t0), -0.2 * (times - t0), 0.1 * np.ones_like(times)], axis=1)
    traj = chunk_trajectory(t0, [0.0, 0.0, 0.1], actions, v0=traj_v0(actions))
    planner = HorizonPlanner(SafetyFilter(LIMITS), PERIOD, horizon=0.5)
    now = t0 + 0.1
    full = planner.update(command(now, traj.position(now), traj.velocity(now)), traj)
    assert full is not None and not full.stopping
    h = full.select(np.arange(3))
    assert h.start == pytest.approx(now + 0.02)  # a little ahead: still in the future on arrival
    assert h.plan_end == pytest.approx(h.start + 0.5)
    assert np.allclose(np.diff(h.times[h.times <= 0.5 + 1e-9]), 0.05)  # one point per chunk step
    assert np.all(h.velocities[-1] == 0.0)  # a controller that hears nothing more stops here
    assert_within_limits(h)
    assert h.times[0] == pytest.approx(0.05)  # point 0 is where the controller is: it bridges from there
    t = np.arange(h.start, h.plan_end, 0.002)
    assert np.max(np.abs(full.sample(t)[0] - traj.position(t))) < 1e-3  # it is the plan
    assert np.max(np.abs(full.sample(t)[1] - traj.velocity(t))) < 0.02
    assert planner.update(command(now + 0.01, traj.position(now + 0.01)), traj) is None  # not due yet


def traj_v0(actions: np.ndarray) -> np.ndarray:
    return (actions[1] - actions[0]) / 0.05


def test_next_horizon_joins_the_executing_one_in_position_and_velocity() -> None:
    t0 = 5.0
    ramp = 0.6 * np.linspace(0, 0.75, 16)[:, None] * np.array([1.0, -1.0, 0.5])
    first = chunk_trajectory(t0, [0, 0, 0], ramp)
    planner = HorizonPlanner(SafetyFilter(LIMITS), PERIOD, horizon=0.5)
    h1 = planner.update(command(t0, [0, 0, 0], seq=1), first)
    # a new chunk that wants to turn back, anchored where the stream was 0.13 s later
    now = t0 + 0.13
    p, v = first.position(now), first.velocity(now)
    turn = p + np.linspace(0, -0.4, 16)[:, None] * np.array([1.0, -1.0, 0.5])
    second = Trajectory.from_chunk(Chunk(turn, now - 0.02, 0.05, seq=2), now, p, v)
    h2 = planner.update(command(now, p, v, seq=2), second)
    assert h2 is not None and h2.start > now
    p1, v1, _ = h1.executed().sample(h2.start)  # where the controller executing h1's message is
    assert np.allclose(h2.positions[0], p1[0], atol=1e-12) and np.allclose(h2.velocities[0], v1[0], atol=1e-12)
    # as a controller executes the pair (the first until h2 starts, then h2): no jump anywhere
    t = np.arange(t0 + 0.02, h2.end, 0.001)
    p_exec = np.where((t < h2.start)[:, None], h1.sample(t)[0], h2.sample(t)[0])
    v_exec = np.where((t < h2.start)[:, None], h1.sample(t)[1], h2.sample(t)[1])
    assert np.max(np.abs(np.diff(p_exec, axis=0))) <= 1.0 * 0.001 + 1e-9
    assert np.max(np.abs(np.diff(v_exec, axis=0))) <= 5.0 * 0.001 * (1 + 1e-6)
    assert_within_limits(h1)
    assert_within_limits(h2)
    assert_joined(h1, h2)


def test_horizon_never_exceeds_limits_even_when_the_plan_does() -> None:
    t0 = 1.0
    wild = np.array([[0.0, 0.0, 0.0], [1.5, -1.5, 0.99], [-1.9, 1.9, -0.49]] + [[1.9, 1.9, 0.99]] * 13)
    traj = chunk_trajectory(t0, [0, 0, 0], wild)
    planner = HorizonPlanner(SafetyFilter(LIMITS), PERIOD, horizon=0.5)
    h = planner.update(command(t0, [0, 0, 0]), traj).select(np.arange(3))
    assert len(h.times) > 11  # the steps where the plan is out of reach are sent one by one
    assert_within_limits(h)
    v_plan = np.max(np.abs(traj.velocity(np.arange(t0, t0 + 0.5, 0.001))))
    assert v_plan > 2 * LIMITS.velocity[0]  # the plan alone would have broken them


@pytest.mark.parametrize("v", [(0.8, -0.6, 0.0), (0.0, 0.0, 0.0)])
def test_holding_sends_a_brake_to_rest_at_the_acceleration_limit(v) -> None:
    planner = HorizonPlanner(SafetyFilter(LIMITS), PERIOD, horizon=0.5)
    traj = Trajectory.hold(2.0, np.zeros(3))
    h = planner.update(command(2.0, [0.1, 0.2, 0.3], v, holding=True), traj)
    assert h.stopping and h.plan_end == h.start
    assert np.all(h.velocities[-1] == 0.0)
    assert_within_limits(h)
    stop_time = max(np.abs(v)) / 5.0
    moving = np.flatnonzero(np.any(h.velocities != 0, axis=1))
    at_rest = h.start + (h.times[moving[-1] + 1] if len(moving) else 0.0)
    assert at_rest - 2.0 == pytest.approx(stop_time + 0.02, abs=0.011)  # no longer than braking takes
    assert h.end == pytest.approx(h.start + 0.5)  # and says so for the whole horizon: late is not too late
    _, _, vel, _ = executed(h)
    assert np.all(np.abs(vel[1:]) <= np.abs(vel[:-1]) + 1e-9)  # only ever slowing down


def test_a_runtime_publishes_joined_horizons_through_late_ticks_and_brakes_when_held() -> None:
    clock = ManualClock(0.0)
    emb = toy_embodiment(dof=3)
    horizons: list[Horizon] = []
    policy = GoalPolicy(goal=np.array([1.0, -1.0, 0.8]), speed=0.5, delay_s=0.0)
    runtime = Runtime(
        policy, emb, RuntimeConfig(mode="harmonic", synchronize_joints=False), clock, on_horizon=horizons.append
    )
    runtime.start(drive=False)
    try:
        position = np.zeros(3)
        for k in range(200):
            runtime.perception.put_joints(position, clock.now())
            command = runtime.tick()
            if command is not None:
                position = command.positions
            clock.advance(PERIOD if k % 7 else 0.06)  # every 7th tick is 50 ms late (a busy computer)
            if sum(not h.stopping for h in horizons) > 12:
                break
            time.sleep(0.005)  # let the worker think
        moving = [h for h in horizons if not h.stopping]
        assert len(moving) > 12, "too few planned horizons while the runtime acted"
        runtime.hold("operator")
        for _ in range(3):
            runtime.perception.put_joints(position, clock.now())
            runtime.tick()
            clock.advance(PERIOD)
        assert horizons[-1].stopping and np.all(horizons[-1].velocities[-1] == 0.0)
        # Every horizon starts exactly where the controller executing the one before it is, late ticks or
        # not (on the curve through the message's points, not on the plan between them: that handed over
        # with up to 3x the acceleration limit when a chunk arrived between two points).
        for a, b in itertools.pairwise(horizons):
            p, v, _ = a.executed().sample(b.start)
            assert np.allclose(b.positions[0], p[0], atol=1e-12) and np.allclose(b.velocities[0], v[0], atol=1e-12)
            assert_joined(a, b)  # and as a controller executes the messages
    finally:
        runtime.stop()
