"""Every command that leaves the action stream is finite, inside the position limits and reachable
within the velocity and acceleration limits, whatever chunks the policy produces."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from runtime_helpers import toy_embodiment

from gen0_policy.errors import CommandError, ConfigError
from gen0_policy.runtime.action_stream import ActionStream
from gen0_policy.runtime.safety import SafeState, SafetyFilter, SafetyLimits
from gen0_policy.runtime.trajectory import Chunk

EMB = toy_embodiment(dof=3, velocity=1.0, acceleration=5.0)
LIMITS = SafetyLimits.from_embodiment(EMB)
PERIOD = 0.01

bad_values = st.one_of(
    st.floats(min_value=-50, max_value=50),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e9, -1e9, 2.0, -2.0, 1.0, -0.5]),
)
chunks = arrays(np.float64, st.tuples(st.integers(2, 12), st.just(3)), elements=bad_values)


def assert_within_limits(positions: np.ndarray, dt: np.ndarray) -> None:
    assert np.all(np.isfinite(positions))
    assert np.all(positions >= LIMITS.lower - 1e-12) and np.all(positions <= LIMITS.upper + 1e-12)
    velocity = np.diff(positions, axis=0) / dt[:, None]
    assert np.all(np.abs(velocity) <= LIMITS.velocity * (1 + 1e-9) + 1e-12)
    acceleration = np.diff(velocity, axis=0) / dt[1:, None]
    assert np.all(np.abs(acceleration) <= LIMITS.acceleration * (1 + 1e-6) + 1e-6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=arrays(np.float64, 3, elements=st.floats(-0.5, 1.0)),
    sequence=st.lists(st.tuples(chunks, st.integers(1, 15), st.booleans()), min_size=1, max_size=6),
    step_dt=st.sampled_from([0.02, 0.05, 0.1]),
)
def test_random_bad_chunks_never_yield_an_out_of_limit_command(start, sequence, step_dt) -> None:
    stream = ActionStream(SafetyFilter(LIMITS), PERIOD)
    stream.reset(0.0, start)
    t, times, positions = 0.0, [0.0], [stream.position()]
    for actions, ticks, hold in sequence:
        chunk = Chunk(actions=actions, t0=t, step_dt=step_dt)
        if np.all(np.isfinite(actions)):
            stream.submit(chunk)
        else:
            with pytest.raises(CommandError, match="non-finite"):
                stream.submit(chunk)
        for _ in range(ticks):
            t += PERIOD
            command = stream.tick(t, hold=hold)
            times.append(t)
            positions.append(command.positions)
    assert_within_limits(np.array(positions), np.diff(times))


def test_non_finite_chunks_are_braked_on_not_executed() -> None:
    state = SafeState(np.zeros(3), np.array([0.5, -0.5, 0.0]))
    new, modified = SafetyFilter(LIMITS).step(state, np.array([np.nan, 0.0, 0.0]), PERIOD)
    assert modified
    np.testing.assert_allclose(new.velocity, [0.45, -0.45, 0.0])  # decelerating at 5 rad/s^2


def test_braking_starts_early_enough_to_stop_at_the_limit() -> None:
    safety = SafetyFilter(LIMITS)
    state = safety.start(np.zeros(3))
    trace = []
    for _ in range(400):  # ask for far beyond the upper limit
        state, _ = safety.step(state, np.full(3, 100.0), PERIOD)
        trace.append(state.position)
    trace = np.array(trace)
    np.testing.assert_allclose(trace[-1], LIMITS.upper, atol=1e-9)
    assert_within_limits(trace, np.full(len(trace) - 1, PERIOD))


def test_a_start_outside_the_limits_is_clipped_and_bad_limits_are_refused() -> None:
    state = SafetyFilter(LIMITS).start(np.array([5.0, -5.0, 0.0]))
    np.testing.assert_allclose(state.position, [2.0, -2.0, 0.0])
    with pytest.raises(ConfigError, match="lower < upper"):
        SafetyLimits(np.zeros(2), np.zeros(2), np.ones(2), np.ones(2))
    with pytest.raises(ConfigError, match="start position"):
        SafetyFilter(LIMITS).start(np.array([np.nan, 0.0, 0.0]))
