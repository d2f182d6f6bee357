"""Where the suite finds its own files (config/, launch/) in a source checkout, an editable
install, a venv prefix, or a colcon install space."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "gen0_policy"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _share_candidates() -> list[Path]:
    candidates = [SOURCE_ROOT]
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    candidates += [Path(p) / "share" / PACKAGE for p in prefixes]
    return candidates


def share_dir(subdir: str) -> Path:
    """Return the first existing ``<root>/<subdir>`` of the checkout or an install's share dir."""
    for root in _share_candidates():
        path = root / subdir
        if path.is_dir():
            return path
    searched = ", ".join(str(c / subdir) for c in _share_candidates())
    raise FileNotFoundError(f"gen0_policy's {subdir}/ folder not found; searched {searched}")


def config_dir() -> Path:
    return share_dir("config")


def launch_dir() -> Path:
    return share_dir("launch")


SHIPPED_CHECKPOINT = "multitask_cpu"  # UR5e, Panda, G1 (20 Hz)
# Meta-World's 80 Hz steps need a checkpoint of their own: the MT50 network, which knows all 50 tasks.
SHIPPED_BY_EMBODIMENT = {"sawyer": "metaworld_mt50"}


def shipped_checkpoint(embodiment: str = "") -> Path:
    """The checkpoint this repository ships for ``embodiment``, the default of every command that takes one."""
    return share_dir("checkpoints") / SHIPPED_BY_EMBODIMENT.get(embodiment, SHIPPED_CHECKPOINT)
