"""MuJoCo worlds: embodiments, scenes, tasks, success checks and scripted experts.

``make_env(embodiment, task, seed)`` builds a world; ``make_expert(env)`` a scripted demonstrator
for it; ``available_tasks()`` lists the tasks. Nothing here imports ROS, and importing the package
loads no MuJoCo: the names below resolve on first use, so a module such as ``sim.controllers``
(plain numpy) is usable without the simulator.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# MuJoCo picks its GL backend when first imported, and every simulator module comes through here.
# Without a display (a container, a robot's PC over ssh, `ros2 launch` there) GLFW cannot render:
# offscreen EGL then, unless the user chose a backend.
if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("MUJOCO_GL", "egl")

if TYPE_CHECKING:
    from gen0_policy.sim.env import SimEnv, make_env
    from gen0_policy.sim.experts import make_expert
    from gen0_policy.sim.tasks import available_tasks

_EXPORTS = {
    "SimEnv": "gen0_policy.sim.env",
    "make_env": "gen0_policy.sim.env",
    "make_expert": "gen0_policy.sim.experts",
    "available_tasks": "gen0_policy.sim.tasks",
}

__all__ = ["SimEnv", "available_tasks", "make_env", "make_expert"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gen0_policy.sim' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
