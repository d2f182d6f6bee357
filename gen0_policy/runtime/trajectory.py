"""Chunks and the smooth curve the action stream samples from them.

A chunk is a sequence of waypoints ``step_dt`` apart. The action stream runs faster (100-500 Hz), so it
samples a cubic spline through the waypoints. The spline of a new chunk is *anchored* at the state the
robot is being commanded to right now: it starts at the current commanded position **and velocity**,
so a chunk swap has neither a position jump nor a velocity jump. (Upsampling each chunk with rest
boundary conditions, as a synchronous executor does, makes the arm slow to a stop at every chunk.)
Past the last waypoint the curve holds it, arriving with zero velocity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline


def sample_history(history: Sequence[tuple[float, np.ndarray]], times: np.ndarray) -> np.ndarray:
    """Stamped vectors ``[(t, (D,)), ...]`` (time-ordered) linearly interpolated at ``times`` (N,) ->
    (N, D); times outside the history take its first or last vector."""
    stamps = np.array([t for t, _ in history])
    values = np.stack([v for _, v in history])
    return np.stack([np.interp(times, stamps, values[:, j]) for j in range(values.shape[1])], axis=-1)


@dataclass(frozen=True)
class Chunk:
    """One inference result, placed in time: row ``k`` is due at ``t0 + k * step_dt``."""

    actions: np.ndarray  # (H, D) absolute joint targets
    t0: float
    step_dt: float
    observation_stamp: float = float("nan")
    uncertainty: float = 0.0
    inference_latency: float = 0.0
    committed: int = 0  # leading rows that were committed before inference (executed as given)
    checkpoint_id: str = ""
    seq: int = 0  # chunk number since start

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])

    @property
    def times(self) -> np.ndarray:
        return self.t0 + np.arange(self.horizon) * self.step_dt

    @property
    def t_end(self) -> float:
        return self.t0 + (self.horizon - 1) * self.step_dt


class Trajectory:
    """A C1 curve from an anchor state through a chunk's future waypoints, holding the last one after.

    ``min_gap`` drops waypoints too close after the anchor (they would only add curvature: the anchor
    already sits on the previous curve, which passed near them)."""

    def __init__(
        self,
        anchor_t: float,
        anchor_p: np.ndarray,
        anchor_v: np.ndarray,
        times: np.ndarray | None = None,
        waypoints: np.ndarray | None = None,
        min_gap: float = 0.0,
        source: Chunk | None = None,
    ) -> None:
        self.anchor_t = float(anchor_t)
        self.anchor_p = np.asarray(anchor_p, dtype=np.float64).copy()
        self.source = source
        self._spline: CubicSpline | None = None
        self.end_t = self.anchor_t
        self.end_p = self.anchor_p
        if times is None or waypoints is None:
            return
        times = np.asarray(times, dtype=np.float64)
        keep = times > self.anchor_t + min_gap
        if not np.any(keep):
            return
        knots = np.concatenate([[self.anchor_t], times[keep]])
        points = np.vstack([self.anchor_p[None], np.asarray(waypoints, dtype=np.float64)[keep]])
        v0 = np.asarray(anchor_v, dtype=np.float64)
        self._spline = CubicSpline(knots, points, axis=0, bc_type=((1, v0), (1, np.zeros_like(v0))))
        self._velocity = self._spline.derivative()
        self.end_t = float(knots[-1])
        self.end_p = points[-1]

    @classmethod
    def hold(cls, t: float, position: np.ndarray) -> Trajectory:
        return cls(t, position, np.zeros_like(position))

    @classmethod
    def from_chunk(
        cls, chunk: Chunk, anchor_t: float, anchor_p: np.ndarray, anchor_v: np.ndarray, min_gap_fraction: float = 0.5
    ) -> Trajectory:
        return cls(
            anchor_t, anchor_p, anchor_v, chunk.times, chunk.actions, min_gap_fraction * chunk.step_dt, source=chunk
        )

    @property
    def is_hold(self) -> bool:
        return self._spline is None

    def position(self, t: float | np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        if self._spline is None:
            return np.broadcast_to(self.anchor_p, (*t.shape, self.anchor_p.shape[0])).copy()
        out = self._spline(np.clip(t, self.anchor_t, self.end_t))
        return np.asarray(out)

    def velocity(self, t: float | np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        out = np.zeros((*t.shape, self.anchor_p.shape[0]))
        if self._spline is not None:
            inside = (t >= self.anchor_t) & (t < self.end_t)
            out[inside] = self._velocity(t[inside])
        return out


def hermite_coefficients(times: np.ndarray, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """(N-1, 4, D) coefficients of the cubic Hermite segments through points (N,), (N, D), (N, D):
    ``p(t) = c0 + c1 s + c2 s^2 + c3 s^3`` with ``s = t - times[k]`` on segment k. This is the curve a
    trajectory controller executes between points that carry positions and velocities."""
    times, p, v = (np.asarray(a, dtype=np.float64) for a in (times, positions, velocities))
    span = np.diff(times)[:, None]  # (N-1, 1)
    slope = np.diff(p, axis=0) / span
    c2 = (3 * slope - 2 * v[:-1] - v[1:]) / span
    c3 = (v[:-1] + v[1:] - 2 * slope) / span**2
    return np.stack([p[:-1], v[:-1], c2, c3], axis=1)


def hermite_sample(
    times: np.ndarray, positions: np.ndarray, velocities: np.ndarray, t: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Position, velocity and acceleration of the cubic Hermite curve through the points at ``t``;
    before the first point it is the first point, after the last the last point, at rest."""
    times = np.asarray(times, dtype=np.float64)
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    positions, velocities = np.asarray(positions, dtype=np.float64), np.asarray(velocities, dtype=np.float64)
    dof = positions.shape[1]
    if len(times) < 2:
        p = np.broadcast_to(positions[0], (len(t), dof)).copy()
        return p, np.zeros_like(p), np.zeros_like(p)
    c = hermite_coefficients(times, positions, velocities)
    k = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    s = np.clip(t - times[k], 0.0, np.diff(times)[k])[:, None]
    c0, c1, c2, c3 = (c[k, i] for i in range(4))
    p = c0 + s * (c1 + s * (c2 + s * c3))
    v = c1 + s * (2 * c2 + 3 * s * c3)
    a = 2 * c2 + 6 * s * c3
    before, after = t < times[0], t >= times[-1]
    p[after], v[after | before], a[after | before] = positions[-1], 0.0, 0.0
    p[before] = positions[0]
    return p, v, a
