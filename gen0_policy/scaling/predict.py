"""The users' questions, answered from fitted curves with intervals:

- how much pretraining data for a target error?  x = x_c / (L - E)^(1/alpha)
- how many post-training demonstrations for a target error, from this base vs from scratch, and
  how many times more does scratch need (the multiplier)?

Intervals come from the same bootstrap refits as the curves' (2.5th-97.5th percentiles); a target at
or below a refit's floor E is unreachable for that refit, and the share of such refits is reported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gen0_policy.errors import ConfigError
from gen0_policy.scaling.fit import PowerLawFit


def _inverse(target: float, E: np.ndarray, x_c: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """x at which E + (x_c/x)^alpha = target; inf where no x reaches it (target at or below the
    floor, or an error that does not fall with x)."""
    E, x_c, alpha = np.broadcast_arrays(np.asarray(E, float), np.asarray(x_c, float), np.asarray(alpha, float))
    gap = target - E
    ok = (gap > 0) & (alpha > 0)
    log_x = np.log(x_c) - np.log(np.where(ok, gap, 1.0)) / np.where(ok, alpha, 1.0)
    return np.where(ok, np.exp(np.clip(log_x, -700, 700)), np.inf)


def _quantile(values: np.ndarray, q: float) -> float:
    """Without interpolating (inf - inf would be NaN where some refits never reach the target)."""
    return float(np.quantile(values, q, method="inverted_cdf"))


def amount_for_error(fit: PowerLawFit, target: float, level: float = 0.95) -> dict[str, Any]:
    """How much x (episodes, demos, parameters, FLOPs) the curve says reaches ``target`` error."""
    if not target > 0:
        raise ConfigError(f"target error must be positive, got {target}")
    point = float(_inverse(target, np.array(fit.E), np.array(fit.x_c), np.array(fit.alpha)))
    samples = fit.samples if len(fit.samples) else np.array([[fit.E, fit.x_c, fit.alpha]])
    values = _inverse(target, samples[:, 0], samples[:, 1], samples[:, 2])
    q = (1 - level) / 2
    out: dict[str, Any] = {
        "target_error": target,
        fit.x_name: point if math.isfinite(point) else None,
        "ci95": [_quantile(values, q), _quantile(values, 1 - q)],
        "unreachable_share": float(np.mean(~np.isfinite(values))),
        "extrapolated": bool(math.isfinite(point) and not fit.x_range[0] <= point <= fit.x_range[1]),
    }
    out["ci95"] = [v if math.isfinite(v) else None for v in out["ci95"]]
    if fit.alpha <= 0:
        out["note"] = f"the fitted error does not fall with {fit.x_name} (alpha = {fit.alpha:.3g})"
    elif not math.isfinite(point):
        out["note"] = f"the target is at or below the fitted floor E = {fit.E:.4g}: more {fit.x_name} will not reach it"
    return out


def demos_multiplier(base: PowerLawFit, scratch: PowerLawFit, target: float, level: float = 0.95) -> dict[str, Any]:
    """Demonstrations for ``target`` from the base and from scratch, and scratch / base."""
    from_base, from_scratch = amount_for_error(base, target, level), amount_for_error(scratch, target, level)
    n = min(len(base.samples), len(scratch.samples))
    out: dict[str, Any] = {"target_error": target, "base": from_base, "scratch": from_scratch, "multiplier": None}
    b, s = from_base[base.x_name], from_scratch[scratch.x_name]
    if b is not None and s is not None:
        out["multiplier"] = s / b
    if n:
        nb = _inverse(target, *base.samples[:n].T)
        ns = _inverse(target, *scratch.samples[:n].T)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(np.isfinite(nb) & np.isfinite(ns), ns / nb, np.inf)
        q = (1 - level) / 2
        lo, hi = _quantile(ratio, q), _quantile(ratio, 1 - q)
        out["multiplier_ci95"] = [v if math.isfinite(v) else None for v in (lo, hi)]
    return out
