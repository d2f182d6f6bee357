"""From a results file to the study's curves, fits, checks and predictions (plain JSON-able data).

Curves (each a list of runs as (x, error) points, seeds as separate points):
- data:       downstream and pretraining error against pretraining episodes, one per model size;
- model size: downstream error against parameters, and against pretraining FLOPs, at the largest
              data size, when the sweep has at least two model sizes;
- efficiency: downstream error against post-training demonstrations, from the base and from scratch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gen0_policy.errors import ConfigError, Gen0Error
from gen0_policy.scaling.fit import PowerLawFit, extrapolation_check, fit_power_law
from gen0_policy.scaling.predict import amount_for_error, demos_multiplier

# The aims, reported as measured whether met or not.
AIM_R2, AIM_DECADES, AIM_EXTRAPOLATION, AIM_MULTIPLIER = 0.95, 1.5, 0.10, 4.0


@dataclass
class Curve:
    name: str  # e.g. "downstream_error vs episodes, model m2M"
    group: str  # the line it is drawn in (model name, or "base"/"scratch")
    x_name: str
    y_name: str
    x: np.ndarray
    y: np.ndarray

    @property
    def decades(self) -> float:
        return float(np.log10(self.x.max() / self.x.min())) if len(self.x) else 0.0

    def fits(self, bootstrap: int) -> dict[str, PowerLawFit]:
        """Both forms where there are enough distinct x values."""
        out = {}
        distinct = len(np.unique(self.x))
        for form, needed in (("power", 2), ("floor", 4)):
            if distinct >= needed:
                out[form] = fit_power_law(self.x, self.y, form, self.x_name, bootstrap=bootstrap)
        return out


def _usable(records: Sequence[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [r for r in records if isinstance(r.get(key), int | float) and math.isfinite(r[key]) and r[key] > 0]


def curves(records: Sequence[dict[str, Any]]) -> list[Curve]:
    pre = [r for r in records if r.get("kind") == "pretrain"]
    out: list[Curve] = []
    models = sorted(
        {r["model"]["name"] for r in pre},
        key=lambda m: min(r["model"]["parameters"] for r in pre if r["model"]["name"] == m),
    )
    for y_name in ("downstream_error", "pretrain_error"):
        for m in models:
            rs = _usable([r for r in pre if r["model"]["name"] == m], y_name)
            if rs:
                x = np.array([r["data"]["episodes"] for r in rs], float)
                out.append(
                    Curve(
                        f"{y_name} vs episodes, model {m}", m, "episodes", y_name, x, np.array([r[y_name] for r in rs])
                    )
                )
    if len(models) >= 2 and pre:
        largest = max(r["data"]["episodes"] for r in pre)
        rs = _usable([r for r in pre if r["data"]["episodes"] == largest], "downstream_error")
        y = np.array([r["downstream_error"] for r in rs])
        out.append(
            Curve(
                f"downstream_error vs parameters at {largest} episodes",
                "all",
                "parameters",
                "downstream_error",
                np.array([r["model"]["parameters"] for r in rs], float),
                y,
            )
        )
        out.append(
            Curve(
                f"downstream_error vs pretraining FLOPs at {largest} episodes",
                "all",
                "flops",
                "downstream_error",
                np.array([r["compute_flops"]["pretrain"] for r in rs], float),
                y,
            )
        )
    eff = [r for r in records if r.get("kind") == "efficiency"]
    for arm in ("base", "scratch"):
        rs = _usable([r for r in eff if r["run"]["arm"] == arm], "downstream_error")
        if rs:
            x = np.array([r["data"]["episodes"] for r in rs], float)
            out.append(
                Curve(
                    f"downstream_error vs demos, {arm}",
                    arm,
                    "demos",
                    "downstream_error",
                    x,
                    np.array([r["downstream_error"] for r in rs]),
                )
            )
    return out


def analyze(records: Sequence[dict[str, Any]], bootstrap: int = 300, targets: Sequence[float] = ()) -> dict[str, Any]:
    """Fits (both forms), R^2, the leave-the-largest-out check, the aims, and predictions for ``targets``."""
    if not records:
        raise ConfigError("no results to analyze; run `gen0 scaling run STUDY.yaml --out DIR` first")
    summary: dict[str, Any] = {"runs": len(records), "curves": [], "aims": {}, "predictions": {}}
    fitted: dict[str, dict[str, PowerLawFit]] = {}
    for curve in curves(records):
        entry: dict[str, Any] = {"name": curve.name, "group": curve.group, "x": curve.x_name, "y": curve.y_name}
        entry["points"], entry["sizes"] = len(curve.x), len(np.unique(curve.x))
        entry["decades"] = round(curve.decades, 3)
        try:
            fits = curve.fits(bootstrap)
        except Gen0Error as exc:
            entry["note"] = str(exc)
            fits = {}
        fitted[curve.name] = fits
        entry["fits"] = {form: f.to_dict() for form, f in fits.items()}
        if entry["sizes"] >= 3:
            entry["extrapolation"] = extrapolation_check(
                curve.x, curve.y, "power", AIM_EXTRAPOLATION, bootstrap
            ).to_dict()
        summary["curves"].append(entry)
    summary["aims"] = _aims(summary["curves"])
    by_name = {c["name"]: c for c in summary["curves"]}
    data_curves = _judged_data_curves(summary["curves"])
    for target in targets:
        row: dict[str, Any] = {}
        if data_curves and "power" in fitted[data_curves[-1]["name"]]:
            row["pretraining_episodes"] = {
                "model": data_curves[-1]["group"],
                **amount_for_error(fitted[data_curves[-1]["name"]]["power"], target),
            }
        base, scratch = "downstream_error vs demos, base", "downstream_error vs demos, scratch"
        if base in by_name and scratch in by_name and "power" in fitted[base] and "power" in fitted[scratch]:
            row["posttraining_demos"] = demos_multiplier(fitted[base]["power"], fitted[scratch]["power"], target)
        summary["predictions"][str(target)] = row
    summary["fitted"] = fitted  # the objects, for plots; dropped from JSON
    multiplier = multiplier_at_measured(summary)
    if multiplier is not None:
        summary["aims"]["posttraining_multiplier"] = multiplier
    return summary


def _judged_data_curves(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Downstream-vs-data curves with at least three sizes, by model size: two sizes always fit exactly."""
    return [
        c
        for c in entries
        if c["x"] == "episodes" and c["y"] == "downstream_error" and "power" in c["fits"] and c["sizes"] >= 3
    ]


def _aims(entries: list[dict[str, Any]]) -> dict[str, Any]:
    aims: dict[str, Any] = {}
    data = _judged_data_curves(entries)
    if data:
        largest = data[-1]  # curves are ordered by model size
        fit = largest["fits"]["power"]
        aims["power_law_r2"] = {
            "model": largest["group"],
            "r2": fit["r2"],
            "decades": largest["decades"],
            "met": bool(fit["r2"] >= AIM_R2 and largest["decades"] >= AIM_DECADES),
            "aim": f"R^2 >= {AIM_R2} over >= {AIM_DECADES} decades",
        }
        if "extrapolation" in largest:
            ex = largest["extrapolation"]
            aims["extrapolation"] = {"model": largest["group"], "relative_error": ex["relative_error"], "met": ex["ok"]}
            aims["extrapolation"]["aim"] = (
                f"the fit without the largest size predicts it within {AIM_EXTRAPOLATION:.0%}"
            )
        aims["alpha_by_model"] = {c["group"]: c["fits"]["power"]["alpha"] for c in data}
    return aims


def multiplier_at_measured(summary: dict[str, Any]) -> dict[str, Any] | None:
    """Demos the base needs for the error scratch reached with its most demos, and the ratio."""
    by_name = {c["name"]: c for c in summary["curves"]}
    fitted = summary["fitted"]
    base, scratch = "downstream_error vs demos, base", "downstream_error vs demos, scratch"
    if base not in by_name or scratch not in by_name or "power" not in fitted[base] or "power" not in fitted[scratch]:
        return None
    s = fitted[scratch]["power"]
    target = float(s(s.x_range[1]))
    out = demos_multiplier(fitted[base]["power"], s, target)
    m = out["multiplier"]
    out["aim"] = f"scratch needs >= {AIM_MULTIPLIER:g}x the base's demonstrations for the same error"
    out["met"] = bool(m is not None and m >= AIM_MULTIPLIER)
    if min(by_name[base]["sizes"], by_name[scratch]["sizes"]) < 3:
        out["met"] = None  # two sizes always fit exactly: not judged
    return out


def to_json(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "fitted"}
