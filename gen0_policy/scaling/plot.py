"""Log-log PNGs of a study: points (geometric mean over seeds, bars from the lowest to the highest
seed), the fitted power law and its 95 % band, one line per model size (or per arm)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gen0_policy.scaling.analysis import Curve, curves

LABELS = {
    "episodes": "pretraining episodes",
    "demos": "post-training demonstrations",
    "parameters": "parameters",
    "flops": "pretraining compute (FLOPs)",
    "downstream_error": "downstream next-action error",
    "pretrain_error": "pretraining validation error",
}
FIGURES = {  # file -> (x, y) of the curves drawn in it
    "scaling_data.png": ("episodes", "downstream_error"),
    "scaling_pretrain.png": ("episodes", "pretrain_error"),
    "scaling_model_size.png": ("parameters", "downstream_error"),
    "scaling_compute.png": ("flops", "downstream_error"),
    "scaling_efficiency.png": ("demos", "downstream_error"),
}


def _draw(ax: Any, curve: Curve, fit: Any, color: Any) -> None:
    xs = np.unique(curve.x)
    per_x = [curve.y[curve.x == x] for x in xs]
    mid = np.array([np.exp(np.log(v).mean()) for v in per_x])
    lo = np.maximum(mid - np.array([v.min() for v in per_x]), 0)
    hi = np.maximum(np.array([v.max() for v in per_x]) - mid, 0)
    label = curve.group if curve.group != "all" else "runs"
    if fit is not None:
        label += f": alpha={fit.alpha:.3f}, R^2={fit.r2:.3f}"
        grid = np.geomspace(xs.min() / 1.5, xs.max() * 1.5, 100)
        band = fit.band(grid)
        ax.fill_between(grid, band[0], band[1], color=color, alpha=0.15, linewidth=0)
        ax.plot(grid, fit(grid), color=color, linewidth=1.5)
    ax.errorbar(xs, mid, yerr=[lo, hi], fmt="o", color=color, capsize=3, label=label)


def write_plots(records: list[dict[str, Any]], summary: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """One PNG per kind of curve the results have; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fitted = summary["fitted"]
    written = []
    all_curves = curves(records)
    for filename, (x_name, y_name) in FIGURES.items():
        chosen = [c for c in all_curves if c.x_name == x_name and c.y_name == y_name]
        if not chosen:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, len(chosen)))
        for curve, color in zip(chosen, colors, strict=True):
            _draw(ax, curve, fitted.get(curve.name, {}).get("power"), color)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(LABELS[x_name])
        ax.set_ylabel(LABELS[y_name])
        ax.set_title(f"{LABELS[y_name]} vs {LABELS[x_name]}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.subplots_adjust(left=0.15, bottom=0.12, right=0.97, top=0.92)  # tight_layout costs seconds
        path = out / filename
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
