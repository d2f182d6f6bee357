"""Pictures of training: curves as a PNG in the run folder, where people look (TensorBoard has the same
numbers), and predicted against demonstrated chunks for TensorBoard's image tab."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


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


def chunk_figure(chunks: Mapping[str, np.ndarray], joints_shown: int = 4) -> Any:
    """One row per validation window: the ``joints_shown`` joints that move most in the demonstration,
    demonstrated (solid) against predicted (dashed) over the chunk's steps, committed steps shaded.
    Returns a matplotlib figure (the caller logs and closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(chunks["predicted"])
    fig, axes = plt.subplots(rows, 1, figsize=(7, 2.2 * rows), dpi=80, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        steps = int(chunks["steps"][i])
        demo, pred = chunks["demonstrated"][i, :steps], chunks["predicted"][i, :steps]
        motion = np.where(chunks["joints"][i], np.ptp(demo, axis=0) if steps else 0.0, -1.0)
        for k, j in enumerate(np.argsort(-motion)[: min(joints_shown, int(chunks["joints"][i].sum()))]):
            color = f"C{k}"
            ax.plot(demo[:, j], color=color, label=f"joint {j}")
            ax.plot(pred[:, j], color=color, linestyle="--")
        committed = int(chunks["committed"][i].sum())
        if committed:
            ax.axvspan(-0.5, committed - 0.5, color="0.85", zorder=0)
        ax.set_ylabel("normalized")
        ax.legend(loc="upper right", fontsize=7, ncol=4, title="solid: demonstrated, dashed: predicted",
                  title_fontsize=7)  # fmt: skip
    axes[-1, 0].set_xlabel("chunk step (shaded: committed prefix)")
    fig.tight_layout()
    return fig
