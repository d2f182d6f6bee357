"""The spline a chunk is executed along: anchored with position and velocity, through the waypoints."""

from __future__ import annotations

import numpy as np

from gen0_policy.runtime.trajectory import Chunk, Trajectory


def test_anchor_position_and_velocity_are_matched_exactly() -> None:
    rng = np.random.default_rng(0)
    chunk = Chunk(actions=rng.normal(size=(10, 4)), t0=1.0, step_dt=0.1)
    p0, v0 = rng.normal(size=4), rng.normal(size=4)
    traj = Trajectory.from_chunk(chunk, 1.02, p0, v0)
    np.testing.assert_allclose(traj.position(1.02), p0, atol=1e-12)
    np.testing.assert_allclose(traj.velocity(1.02), v0, atol=1e-9)
    # Finite-difference slope just after the anchor agrees with the requested velocity.
    np.testing.assert_allclose((traj.position(1.02 + 1e-7) - p0) / 1e-7, v0, atol=1e-4)


def test_passes_through_future_waypoints_and_skips_those_too_close() -> None:
    actions = np.arange(20, dtype=float).reshape(10, 2)
    chunk = Chunk(actions=actions, t0=0.0, step_dt=0.1)
    traj = Trajectory.from_chunk(chunk, 0.17, np.zeros(2), np.zeros(2), min_gap_fraction=0.5)
    # Row 2 (t=0.2) is only 0.03 s after the anchor (< 0.05): skipped; rows 3.. are hit exactly.
    np.testing.assert_allclose(traj.position(chunk.times[3:]), actions[3:], atol=1e-9)
    assert not np.allclose(traj.position(0.2), actions[2])


def test_holds_the_last_waypoint_at_rest_after_the_end() -> None:
    chunk = Chunk(actions=np.linspace(0, 1, 5)[:, None], t0=0.0, step_dt=0.1)
    traj = Trajectory.from_chunk(chunk, 0.0, np.zeros(1), np.ones(1))
    np.testing.assert_allclose(traj.position(5.0), [1.0])
    np.testing.assert_allclose(traj.velocity(0.4 - 1e-9), [0.0], atol=1e-6)
    np.testing.assert_allclose(traj.velocity(7.0), [0.0])


def test_a_chunk_entirely_in_the_past_becomes_a_hold() -> None:
    chunk = Chunk(actions=np.ones((4, 2)), t0=0.0, step_dt=0.1)
    traj = Trajectory.from_chunk(chunk, 5.0, np.zeros(2), np.ones(2))
    assert traj.is_hold
    np.testing.assert_allclose(traj.position(6.0), np.zeros(2))
