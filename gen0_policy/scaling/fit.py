"""Power laws fitted to a study's results, with bootstrap intervals and an extrapolation check.

    L(x) = E + (x_c / x)^alpha      ("floor": an irreducible error E)
    L(x) = (x_c / x)^alpha          ("power": a straight line in log-log)

x is pretraining data (episodes), model size (parameters) or compute (FLOPs). Both are fitted by
least squares on log L, so every decade of error counts the same. Intervals: refit on resamples of
the runs (seeds are separate runs), 2.5th-97.5th percentiles. The extrapolation check refits
without the largest x and asks how far the curve's prediction there lands from what was measured.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gen0_policy.errors import ConfigError

FORMS = ("floor", "power")


def power_law(x: np.ndarray, E: float, x_c: float, alpha: float) -> np.ndarray:
    """E + (x_c / x)^alpha (E = 0 for the pure power law)."""
    return E + np.exp(alpha * (math.log(x_c) - np.log(x)))


def _fit_power(logx: np.ndarray, logy: np.ndarray) -> tuple[float, float, float]:
    """log L = alpha log x_c - alpha log x: a straight line."""
    slope, intercept = np.polyfit(logx, logy, 1)
    alpha = -float(slope)
    if abs(alpha) < 1e-12:  # flat: no scale to speak of
        alpha = 1e-12
    # An error that grows with x has alpha < 0; x_c is clamped only where it would overflow a float.
    return 0.0, math.exp(float(np.clip(intercept / alpha, -700, 700))), alpha


def _fit_floor(logx: np.ndarray, logy: np.ndarray, start: np.ndarray | None = None) -> tuple[float, float, float]:
    """Nonlinear least squares in (log E, log x_c, alpha), from ``start`` or the best of a few E's."""
    from scipy.optimize import least_squares

    def residual(p: np.ndarray) -> np.ndarray:
        logE, logxc, alpha = p
        return np.logaddexp(logE, alpha * (logxc - logx)) - logy

    def jacobian(p: np.ndarray) -> np.ndarray:
        logE, logxc, alpha = p
        power = alpha * (logxc - logx)
        share = 1.0 / (1.0 + np.exp(np.clip(logE - power, -50, 50)))  # d log L / d power
        return np.stack([1.0 - share, share * alpha, share * (logxc - logx)], axis=1)

    if start is None:
        y_min = float(np.exp(logy.min()))
        starts = []
        for share in (1e-3, 0.1, 0.5, 0.9):
            E0 = share * y_min
            _, xc0, a0 = _fit_power(logx, np.log(np.maximum(np.exp(logy) - E0, 1e-12)))
            xc0 = xc0 if np.isfinite(xc0) and xc0 > 0 else float(np.exp(logx.mean()))
            starts.append(np.array([math.log(E0), math.log(xc0), a0 if a0 > 0 else 0.5]))
    else:
        starts = [start]
    best = None
    for s in starts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sol = least_squares(residual, np.clip(s, LOWER, UPPER), jac=jacobian, bounds=(LOWER, UPPER))
        if best is None or sol.cost < best.cost:
            best = sol
    assert best is not None
    logE, logxc, alpha = best.x
    return math.exp(logE), math.exp(logxc), float(alpha)


LOWER, UPPER = [-50.0, -50.0, 1e-4], [10.0, 80.0, 10.0]


def _fit(form: str, x: np.ndarray, y: np.ndarray, start: tuple | None = None) -> tuple[float, float, float]:
    if form == "power":
        return _fit_power(np.log(x), np.log(y))
    begin = None if start is None else np.array([math.log(max(start[0], 1e-20)), math.log(start[1]), start[2]])
    return _fit_floor(np.log(x), np.log(y), begin)


def r_squared(y: np.ndarray, predicted: np.ndarray) -> float:
    """Of log L: the share of the variance in log error the curve explains."""
    ly, lp = np.log(y), np.log(predicted)
    total = float(((ly - ly.mean()) ** 2).sum())
    return 1.0 - float(((ly - lp) ** 2).sum()) / total if total > 0 else math.nan


@dataclass
class PowerLawFit:
    form: str
    x_name: str
    E: float
    x_c: float
    alpha: float
    r2: float
    points: int
    x_range: tuple[float, float]
    # Bootstrap refits (E, x_c, alpha), one row each; the intervals and predictions come from these.
    samples: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 3)))

    def __call__(self, x: Any) -> np.ndarray:
        return power_law(np.asarray(x, dtype=float), self.E, self.x_c, self.alpha)

    def band(self, x: Any, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise interval of the curve at x over the bootstrap refits."""
        x = np.asarray(x, dtype=float)
        curves = np.stack([power_law(x, *s) for s in self.samples]) if len(self.samples) else self(x)[None]
        q = (1 - level) / 2
        return np.quantile(curves, q, axis=0), np.quantile(curves, 1 - q, axis=0)

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        column = {"E": 0, "x_c": 1, "alpha": 2}[name]
        values = self.samples[:, column] if len(self.samples) else np.array([getattr(self, name)])
        q = (1 - level) / 2
        return float(np.quantile(values, q)), float(np.quantile(values, 1 - q))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"form": self.form, "x": self.x_name, "points": self.points, "r2": self.r2}
        out["x_range"] = list(self.x_range)
        for name in ("E", "x_c", "alpha") if self.form == "floor" else ("x_c", "alpha"):
            out[name] = getattr(self, name)
            out[f"{name}_ci95"] = list(self.interval(name))
        return out


def fit_power_law(
    x: Sequence[float], y: Sequence[float], form: str = "power", x_name: str = "x", bootstrap: int = 300, seed: int = 0
) -> PowerLawFit:
    """Fit one form to the points (x_i, L_i); each point is one run (seeds are separate points)."""
    if form not in FORMS:
        raise ConfigError(f"form must be one of {FORMS}, got {form!r}")
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x_arr.shape != y_arr.shape or x_arr.ndim != 1:
        raise ConfigError(f"x and y must be equally long lists, got {x_arr.shape} and {y_arr.shape}")
    if np.any(~np.isfinite(x_arr)) or np.any(~np.isfinite(y_arr)) or np.any(x_arr <= 0) or np.any(y_arr <= 0):
        raise ConfigError("a power law needs positive, finite x and errors")
    distinct = len(np.unique(x_arr))
    needed = 4 if form == "floor" else 2
    if distinct < needed:
        raise ConfigError(f"a {form} fit needs at least {needed} distinct {x_name} values, got {distinct}")
    E, x_c, alpha = _fit(form, x_arr, y_arr)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap * 3):
        if len(samples) == bootstrap:
            break
        pick = rng.integers(0, len(x_arr), len(x_arr))
        if len(np.unique(x_arr[pick])) < needed:
            continue
        samples.append(_fit(form, x_arr[pick], y_arr[pick], start=(E, x_c, alpha)))
    return PowerLawFit(
        form,
        x_name,
        E,
        x_c,
        alpha,
        r_squared(y_arr, power_law(x_arr, E, x_c, alpha)),
        len(x_arr),
        (float(x_arr.min()), float(x_arr.max())),
        np.array(samples, dtype=float).reshape(-1, 3),
    )


@dataclass
class ExtrapolationCheck:
    """The curve fitted without the largest x, against what was measured there."""

    x: float
    measured: float
    predicted: float
    interval: tuple[float, float]
    relative_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.relative_error <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "x": self.x,
            "measured": self.measured,
            "predicted": self.predicted,
            "predicted_ci95": list(self.interval),
            "relative_error": self.relative_error,
            "tolerance": self.tolerance,
            "ok": self.ok,
        }


def extrapolation_check(
    x: Sequence[float], y: Sequence[float], form: str = "power", tolerance: float = 0.10, bootstrap: int = 200
) -> ExtrapolationCheck:
    """Leave the largest x out, fit, predict it: a curve that bends shows as a large relative error."""
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    largest = float(x_arr.max())
    keep = x_arr < largest
    fit = fit_power_law(x_arr[keep], y_arr[keep], form, bootstrap=bootstrap)
    measured = float(np.exp(np.log(y_arr[~keep]).mean()))  # geometric mean over the seeds there
    predicted = float(fit(largest))
    lo, hi = fit.band([largest])
    return ExtrapolationCheck(
        largest, measured, predicted, (float(lo[0]), float(hi[0])), abs(predicted - measured) / measured, tolerance
    )
