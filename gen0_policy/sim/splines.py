"""The splines joint_trajectory_controller interpolates with, as piecewise polynomials: linear
between positions, cubic (Hermite) with velocities, quintic with velocities and accelerations.
Plain numpy, used by the simulated controllers (:mod:`gen0_policy.sim.controllers`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class TrajectorySample(NamedTuple):
    """Desired state at one instant, in the controller's joint order."""

    positions: np.ndarray  # (J,)
    velocities: np.ndarray  # (J,)
    accelerations: np.ndarray  # (J,)


@dataclass
class PiecewisePolynomial:
    """Segments k = 0..K-2 on [knots[k], knots[k+1]]: q(t) = sum_i coeffs[k, i] * (t - knots[k])**i.
    Before the first knot it holds the first knot's state; after the last it holds the last position."""

    knots: np.ndarray  # (K,)
    coeffs: np.ndarray  # (K-1, 6, J)
    final: np.ndarray  # (J,) position held after the last knot
    final_velocity: np.ndarray | None = None  # (J,) the last point's velocity, reported after the end (JTC)
    final_acceleration: np.ndarray | None = None  # (J,) likewise

    @classmethod
    def hold(cls, positions: np.ndarray, time: float) -> PiecewisePolynomial:
        return cls(knots=np.array([time]), coeffs=np.zeros((0, 6, len(positions))), final=positions.copy())

    @property
    def end_time(self) -> float:
        return float(self.knots[-1])

    def sample(self, t: float) -> TrajectorySample:
        j = self.final.shape[0]
        if len(self.coeffs) == 0 or t >= self.knots[-1]:
            v = np.zeros(j) if self.final_velocity is None else self.final_velocity.copy()
            a = np.zeros(j) if self.final_acceleration is None else self.final_acceleration.copy()
            return TrajectorySample(self.final.copy(), v, a)
        k = int(np.clip(np.searchsorted(self.knots, t, side="right") - 1, 0, len(self.coeffs) - 1))
        tau = max(0.0, t - self.knots[k])
        c = self.coeffs[k]  # (6, J)
        p = ((((c[5] * tau + c[4]) * tau + c[3]) * tau + c[2]) * tau + c[1]) * tau + c[0]
        v = (((5 * c[5] * tau + 4 * c[4]) * tau + 3 * c[3]) * tau + 2 * c[2]) * tau + c[1]
        a = ((20 * c[5] * tau + 12 * c[4]) * tau + 6 * c[3]) * tau + 2 * c[2]
        return TrajectorySample(p, v, a)


def segment_coefficients(
    p0: np.ndarray,
    v0: np.ndarray,
    a0: np.ndarray,
    p1: np.ndarray,
    v1: np.ndarray | None,
    a1: np.ndarray | None,
    duration: float,
) -> np.ndarray:
    """(6, J) polynomial coefficients from boundary conditions: linear when the end gives only a
    position, cubic with a velocity, quintic with velocity and acceleration (as JTC's splines)."""
    c = np.zeros((6, p0.shape[0]))
    c[0] = p0
    T = duration
    if v1 is None:  # linear
        c[1] = (p1 - p0) / T
    elif a1 is None:  # cubic (Hermite)
        c[1] = v0
        c[2] = (3 * (p1 - p0) / T - 2 * v0 - v1) / T
        c[3] = (2 * (p0 - p1) / T + v0 + v1) / T**2
    else:  # quintic
        c[1] = v0
        c[2] = a0 / 2
        c[3] = (20 * (p1 - p0) - (8 * v1 + 12 * v0) * T - (3 * a0 - a1) * T**2) / (2 * T**3)
        c[4] = (30 * (p0 - p1) + (14 * v1 + 16 * v0) * T + (3 * a0 - 2 * a1) * T**2) / (2 * T**4)
        c[5] = (12 * (p1 - p0) - 6 * (v1 + v0) * T - (a0 - a1) * T**2) / (2 * T**5)
    return c
