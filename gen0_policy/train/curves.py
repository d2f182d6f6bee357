"""Training curves as a PNG in the run folder, where people look (TensorBoard has the same numbers)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def write_curves(path: Path, train: Sequence[tuple[int, float]], validation: Sequence[tuple[int, float]]) -> Path:
    """Training loss and held-out next-action error against step, log scale; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="training loss (flow matching)", color="tab:blue", alpha=0.8)
    if validation:
        ax.plot(*zip(*validation, strict=True), "o-", label="held-out next-action error", color="tab:orange")
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    if train or validation:
        ax.legend()
    ax.set_title(Path(path).parent.name)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
