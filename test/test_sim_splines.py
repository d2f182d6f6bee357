"""joint_trajectory_controller's splines: each segment meets its boundary conditions exactly, and the
reported velocity and acceleration are the derivatives of the position (finite differences)."""

from __future__ import annotations

import numpy as np
import pytest

from gen0_policy.sim.splines import PiecewisePolynomial, segment_coefficients

RNG = np.random.default_rng(0)
P0, V0, A0, P1, V1, A1 = (RNG.normal(size=3) for _ in range(6))
T = 0.7


@pytest.mark.parametrize("kind", ["linear", "cubic", "quintic"])
def test_segments_meet_their_boundary_conditions(kind: str) -> None:
    v1 = None if kind == "linear" else V1
    a1 = A1 if kind == "quintic" else None
    c = segment_coefficients(P0, V0, A0, P1, v1, a1, T)
    spline = PiecewisePolynomial(np.array([1.0, 1.0 + T]), c[None], P1.copy())
    start, end = spline.sample(1.0), spline.sample(1.0 + T - 1e-12)
    np.testing.assert_allclose(start.positions, P0, atol=1e-12)
    np.testing.assert_allclose(end.positions, P1, atol=1e-9)
    if kind != "linear":
        np.testing.assert_allclose(start.velocities, V0, atol=1e-12)
        np.testing.assert_allclose(end.velocities, V1, atol=1e-9)
    if kind == "quintic":
        np.testing.assert_allclose(start.accelerations, A0, atol=1e-12)
        np.testing.assert_allclose(end.accelerations, A1, atol=1e-8)
    # Velocity and acceleration are the derivatives of what is sampled.
    h = 1e-6
    for t in np.linspace(1.05, 1.0 + T - 0.05, 5):
        mid, before, after = spline.sample(t), spline.sample(t - h), spline.sample(t + h)
        np.testing.assert_allclose(mid.velocities, (after.positions - before.positions) / (2 * h), atol=1e-5)
        np.testing.assert_allclose(mid.accelerations, (after.velocities - before.velocities) / (2 * h), atol=1e-4)


def test_holds_before_the_first_knot_and_after_the_last() -> None:
    c = segment_coefficients(P0, V0, A0, P1, V1, None, T)
    spline = PiecewisePolynomial(np.array([2.0, 2.0 + T]), c[None], P1.copy())
    np.testing.assert_allclose(spline.sample(0.0).positions, P0)  # clamped to the first segment's start
    after = spline.sample(10.0)
    np.testing.assert_array_equal(after.positions, P1)
    assert not after.velocities.any() and not after.accelerations.any() and spline.end_time == 2.0 + T
    held = PiecewisePolynomial.hold(P0, 5.0)
    np.testing.assert_array_equal(held.sample(0.0).positions, P0)
    np.testing.assert_array_equal(held.sample(9.0).positions, P0)
