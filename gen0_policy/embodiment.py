"""Embodiment descriptions: one YAML file per robot in ``config/embodiments/``, read by the
simulator, the model (padding and masks), the runtime (safety limits) and the ROS nodes alike.

The action vector of a robot is its ``action_joints`` (arm joints, then gripper/hand joints) as
absolute position targets; its state vector is the measured positions of the same joints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gen0_policy.errors import EmbodimentError
from gen0_policy.paths import config_dir

ACTION_SPACES = ("joint_position",)
CONTROLLER_TYPES = ("joint_trajectory_controller", "forward_position_controller")


@dataclass(frozen=True)
class JointSpec:
    """One actuated joint. Units: rad (revolute) or m (prismatic); velocity per s; effort N·m or N."""

    name: str
    lower: float
    upper: float
    velocity: float
    effort: float
    home: float
    acceleration: float = 10.0
    gripper: bool = False

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise EmbodimentError(f"joint {self.name}: lower {self.lower} must be < upper {self.upper}")
        if not self.lower <= self.home <= self.upper:
            raise EmbodimentError(f"joint {self.name}: home {self.home} outside [{self.lower}, {self.upper}]")
        for key in ("velocity", "effort", "acceleration"):
            value = getattr(self, key)
            if not (value > 0 and math.isfinite(value)):
                raise EmbodimentError(f"joint {self.name}: {key} must be positive and finite, got {value}")


@dataclass(frozen=True)
class CameraSpec:
    """A camera the robot carries or looks through. ``role``: scene, wrist or head."""

    name: str
    role: str
    width: int = 640
    height: int = 480
    fovy: float = 45.0
    rate_hz: float = 30.0

    def __post_init__(self) -> None:
        if self.role not in ("scene", "wrist", "head"):
            raise EmbodimentError(f"camera {self.name}: role must be scene, wrist or head, got {self.role!r}")
        if self.width <= 0 or self.height <= 0:
            raise EmbodimentError(f"camera {self.name}: size must be positive, got {self.width}x{self.height}")


@dataclass(frozen=True)
class ControllerSpec:
    """A ros2_control controller and the joints it commands."""

    name: str
    type: str
    joints: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.type not in CONTROLLER_TYPES:
            raise EmbodimentError(f"controller {self.name}: type must be one of {CONTROLLER_TYPES}, got {self.type!r}")

    @property
    def trajectory(self) -> bool:
        """Commanded with a JointTrajectory (joint_trajectory_controller), else a Float64MultiArray."""
        return self.type == "joint_trajectory_controller"

    @property
    def command_topic(self) -> str:
        """Its command topic by the ros2_control conventions, relative: ``<name>/joint_trajectory`` or
        ``<name>/commands``."""
        return command_topic(self.name, self.trajectory)


def command_topic(controller: str, trajectory: bool) -> str:
    return f"{controller}/{'joint_trajectory' if trajectory else 'commands'}"


@dataclass(frozen=True)
class Embodiment:
    """Everything the suite needs to know about one robot."""

    name: str
    description: str
    joints: tuple[JointSpec, ...]
    cameras: tuple[CameraSpec, ...]
    controllers: tuple[ControllerSpec, ...]
    action_space: str = "joint_position"
    control_rate_hz: float = 100.0
    sim: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        names = [j.name for j in self.joints]
        if not names:
            raise EmbodimentError(f"embodiment {self.name}: no joints")
        if len(set(names)) != len(names):
            raise EmbodimentError(f"embodiment {self.name}: duplicate joint names in {names}")
        if self.action_space not in ACTION_SPACES:
            raise EmbodimentError(f"embodiment {self.name}: action_space must be one of {ACTION_SPACES}")
        for controller in self.controllers:
            unknown = set(controller.joints) - set(names)
            if unknown:
                raise EmbodimentError(
                    f"embodiment {self.name}: controller {controller.name} names unknown joints "
                    f"{sorted(unknown)}; joints are {names}"
                )
        camera_names = [c.name for c in self.cameras]
        if len(set(camera_names)) != len(camera_names):
            raise EmbodimentError(f"embodiment {self.name}: duplicate camera names {camera_names}")

    # Derived views, used on every hot path, so computed once.
    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def dof(self) -> int:
        return len(self.joints)

    @property
    def lower(self) -> np.ndarray:
        return np.array([j.lower for j in self.joints], dtype=np.float64)

    @property
    def upper(self) -> np.ndarray:
        return np.array([j.upper for j in self.joints], dtype=np.float64)

    @property
    def velocity_limits(self) -> np.ndarray:
        return np.array([j.velocity for j in self.joints], dtype=np.float64)

    @property
    def acceleration_limits(self) -> np.ndarray:
        return np.array([j.acceleration for j in self.joints], dtype=np.float64)

    @property
    def home(self) -> np.ndarray:
        return np.array([j.home for j in self.joints], dtype=np.float64)

    @property
    def gripper_mask(self) -> np.ndarray:
        return np.array([j.gripper for j in self.joints], dtype=bool)

    def camera(self, name: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise EmbodimentError(
            f"embodiment {self.name} has no camera {name!r}; available cameras are {[c.name for c in self.cameras]}"
        )

    def controller(self, name: str) -> ControllerSpec:
        for controller in self.controllers:
            if controller.name == name:
                return controller
        raise EmbodimentError(
            f"embodiment {self.name} has no controller {name!r}; "
            f"available controllers are {[c.name for c in self.controllers]}"
        )

    def joint_indices(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """Indices of ``names`` in this robot's joint order; raises naming what is missing."""
        index = {n: i for i, n in enumerate(self.joint_names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise EmbodimentError(
                f"embodiment {self.name} has no joints {missing}; joints are {list(self.joint_names)}"
            )
        return np.array([index[n] for n in names], dtype=np.int64)

    def within_limits(self, positions: np.ndarray, tolerance: float = 1e-6) -> bool:
        positions = np.asarray(positions, dtype=np.float64)
        return bool(
            np.all(np.isfinite(positions))
            and np.all(positions >= self.lower - tolerance)
            and np.all(positions <= self.upper + tolerance)
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Embodiment:
        try:
            return cls(
                name=str(data["name"]),
                description=str(data.get("description", "")),
                joints=tuple(JointSpec(**j) for j in data["joints"]),
                cameras=tuple(CameraSpec(**c) for c in data.get("cameras", [])),
                controllers=tuple(
                    ControllerSpec(name=c["name"], type=c["type"], joints=tuple(c["joints"]))
                    for c in data.get("controllers", [])
                ),
                action_space=str(data.get("action_space", "joint_position")),
                control_rate_hz=float(data.get("control_rate_hz", 100.0)),
                sim=dict(data.get("sim", {})),
            )
        except (KeyError, TypeError) as exc:
            raise EmbodimentError(f"embodiment description {data.get('name', '?')!r} is malformed: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for checkpoints and ``gen0 sim info --json``."""
        return {
            "name": self.name,
            "description": self.description,
            "action_space": self.action_space,
            "control_rate_hz": self.control_rate_hz,
            "joints": [vars(j).copy() for j in self.joints],
            "cameras": [vars(c).copy() for c in self.cameras],
            "controllers": [{"name": c.name, "type": c.type, "joints": list(c.joints)} for c in self.controllers],
            "sim": dict(self.sim),
        }


def embodiments_dir() -> Path:
    return config_dir() / "embodiments"


def available_embodiments() -> list[str]:
    return sorted(p.stem for p in embodiments_dir().glob("*.yaml"))


@cache
def load_embodiment(name_or_path: str) -> Embodiment:
    """Load an embodiment by name (``config/embodiments/<name>.yaml``) or by YAML path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = embodiments_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise EmbodimentError(
            f"unknown embodiment {name_or_path!r}; available embodiments are {available_embodiments()}"
        )
    with path.open() as f:
        return Embodiment.from_dict(yaml.safe_load(f))
