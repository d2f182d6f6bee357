"""Shared builders for the runtime tests: a small embodiment and a driver that steps a runtime."""

from __future__ import annotations

import numpy as np

from gen0_policy.embodiment import CameraSpec, Embodiment, JointSpec


def toy_embodiment(dof: int = 3, cameras: int = 0, velocity: float = 1.0, acceleration: float = 5.0) -> Embodiment:
    """``dof`` joints in [-2, 2] rad (the last one narrower, [-0.5, 1.0]) with the given limits."""
    joints = [JointSpec(f"j{i}", -2.0, 2.0, velocity, 10.0, 0.0, acceleration) for i in range(dof - 1)]
    joints.append(JointSpec(f"j{dof - 1}", -0.5, 1.0, velocity, 10.0, 0.0, acceleration))
    cams = tuple(CameraSpec(f"cam{i}", "scene", width=8, height=6) for i in range(cameras))
    return Embodiment(name="toy", description="test arm", joints=tuple(joints), cameras=cams, controllers=())


def image(value: int = 0, height: int = 6, width: int = 8) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)
