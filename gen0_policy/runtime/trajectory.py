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

    def velocity(self, t: float) -> np.ndarray:
        if self._spline is None or not self.anchor_t <= t < self.end_t:
            return np.zeros_like(self.anchor_p)
        return np.asarray(self._velocity(t))
