"""Embodiment descriptions: one YAML file per robot in ``config/embodiments/``, read by the
simulator, the model (padding and masks), the runtime (safety limits) and the ROS nodes alike.

Two kinds of action space (``action_space``), so the model, the data and the runtime know what a
robot's action vector means:

- ``joint_position``: the action is absolute position targets of the robot's ``joints`` (arm joints,
  then gripper/hand joints); the state is the measured positions of the same joints.
- ``end_effector_delta``: the state is the end effector's position (and gripper opening), listed as
  ``joints``; the action is described by ``action`` (:class:`ActionSpec`): per control step, a
  bounded displacement of the end effector plus a gripper command (Meta-World's Sawyer). Paths that
  only make sense in joint space (the safety filter, the planned horizon, joint teleoperation, our
  MuJoCo robots) refuse such a robot by :meth:`Embodiment.require_joint_space`.
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

ACTION_SPACES = ("joint_position", "end_effector_delta")
# cartesian_motion_controller: the FZI cartesian_controllers package's (ros2 branch), which follows a
# geometry_msgs/PoseStamped on ~/target_frame; here it takes an end-effector robot's x, y, z.
CONTROLLER_TYPES = ("joint_trajectory_controller", "forward_position_controller", "cartesian_motion_controller")


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
        if not self.rate_hz > 0:  # the simulator renders each camera at its own rate
            raise EmbodimentError(f"camera {self.name}: rate_hz must be positive, got {self.rate_hz}")


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
    def cartesian(self) -> bool:
        """Commanded with a PoseStamped target (cartesian_motion_controller)."""
        return self.type == "cartesian_motion_controller"

    @property
    def command_topic(self) -> str:
        """Its command topic by the ros2_control conventions, relative: ``<name>/joint_trajectory``,
        ``<name>/commands``, or the Cartesian controller's ``<name>/target_frame``."""
        return f"{self.name}/target_frame" if self.cartesian else command_topic(self.name, self.trajectory)


def command_topic(controller: str, trajectory: bool) -> str:
    return f"{controller}/{'joint_trajectory' if trajectory else 'commands'}"


@dataclass(frozen=True)
class ActionSpec:
    """The action vector of an ``end_effector_delta`` robot, one entry per state entry.

    ``scale[i] > 0``: entry i is a displacement, target = state + clip(action, lower, upper) * scale
    (state units per action unit per control step, e.g. m). ``scale[i] == 0``: entry i is an absolute
    command passed through as is (a gripper effort), its target is the action itself.
    """

    names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    scale: tuple[float, ...]

    def __post_init__(self) -> None:
        for key in ("names", "lower", "upper", "scale"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        n = len(self.names)
        if n == 0 or {len(self.lower), len(self.upper), len(self.scale)} != {n}:
            raise EmbodimentError(
                f"action needs names, lower, upper and scale of one equal, non-zero length, got "
                f"{n}, {len(self.lower)}, {len(self.upper)}, {len(self.scale)}"
            )
        if not all(lo < hi for lo, hi in zip(self.lower, self.upper, strict=True)):
            raise EmbodimentError(f"action lower {list(self.lower)} must be < upper {list(self.upper)}")
        if not all(s >= 0 and math.isfinite(s) for s in self.scale):
            raise EmbodimentError(f"action scale must be >= 0 and finite, got {list(self.scale)}")

    @property
    def delta_mask(self) -> np.ndarray:
        return np.array([s > 0 for s in self.scale], dtype=bool)

    def to_targets(self, state: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Where an action sends the robot from ``state`` (before the robot's own workspace clip)."""
        action = np.clip(np.asarray(action, np.float64), self.lower, self.upper)
        return np.where(self.delta_mask, np.asarray(state, np.float64) + action * np.asarray(self.scale), action)

    def from_targets(self, state: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The action that moves ``state`` to ``targets`` in one step (clipped to the action bounds):
        how a demonstration given as poses, or a Cartesian controller's goal, becomes an action."""
        scale = np.where(self.delta_mask, self.scale, 1.0)
        delta = (np.asarray(targets, np.float64) - np.where(self.delta_mask, state, 0.0)) / scale
        return np.clip(delta, self.lower, self.upper)


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
    # Synchronous execution: the share of each chunk played before the robot stops and the model looks
    # again, where this robot's policies were validated (0.75 of 16 rows for the arms, 0.5 for the Sawyer,
    # as Meta-World's benchmark protocol plays them). One value for the benchmark, rollouts and the node.
    sync_execute_fraction: float = 0.75
    action: ActionSpec | None = None  # end_effector_delta only: what the action vector means
    sim: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        names = [j.name for j in self.joints]
        if not names:
            raise EmbodimentError(f"embodiment {self.name}: no joints")
        if len(set(names)) != len(names):
            raise EmbodimentError(f"embodiment {self.name}: duplicate joint names in {names}")
        if not 0 < self.sync_execute_fraction <= 1:
            raise EmbodimentError(
                f"embodiment {self.name}: sync_execute_fraction must be in (0, 1], got {self.sync_execute_fraction}"
            )
        if self.action_space not in ACTION_SPACES:
            raise EmbodimentError(f"embodiment {self.name}: action_space must be one of {ACTION_SPACES}")
        if self.action_space == "end_effector_delta":
            if self.action is None:
                raise EmbodimentError(
                    f"embodiment {self.name}: an end_effector_delta robot needs an 'action' section "
                    "(names, lower, upper, scale), one entry per state entry in 'joints'"
                )
            if len(self.action.names) != len(names):
                raise EmbodimentError(
                    f"embodiment {self.name}: action has {len(self.action.names)} entries but the state "
                    f"has {len(names)} ({names}); the model pads both to the same width"
                )
        elif self.action is not None:
            raise EmbodimentError(
                f"embodiment {self.name}: 'action' describes end_effector_delta actions; a joint_position "
                "robot's actions are its joints' targets, so remove it or set action_space: end_effector_delta"
            )
        for controller in self.controllers:
            if controller.cartesian and (self.joint_space or len(controller.joints) != 3):
                raise EmbodimentError(
                    f"embodiment {self.name}: cartesian controller {controller.name} takes the x, y, z of an "
                    f"end_effector_delta robot's hand, got {list(controller.joints)} on a {self.action_space} robot"
                )
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

    @property
    def joint_space(self) -> bool:
        return self.action_space == "joint_position"

    @property
    def action_names(self) -> tuple[str, ...]:
        return self.action.names if self.action is not None else self.joint_names

    @property
    def action_lower(self) -> np.ndarray:
        return np.array(self.action.lower if self.action is not None else self.lower, dtype=np.float64)

    @property
    def action_upper(self) -> np.ndarray:
        return np.array(self.action.upper if self.action is not None else self.upper, dtype=np.float64)

    def require_joint_space(self, purpose: str, hint: str = "") -> None:
        """Refuse, naming the robot and the purpose, where only joint-position actions make sense."""
        if not self.joint_space:
            raise EmbodimentError(
                f"{purpose} works on joint-position robots only; embodiment {self.name} takes "
                f"{self.action_space} actions ({list(self.action_names)})" + (f"; {hint}" if hint else "")
            )

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

    def sync_execute_steps(self, chunk_size: int) -> int:
        """Rows of a ``chunk_size`` chunk a synchronous loop plays before it looks again (at least one)."""
        return max(1, round(self.sync_execute_fraction * chunk_size))

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
                sync_execute_fraction=float(data.get("sync_execute_fraction", 0.75)),
                action=ActionSpec(**data["action"]) if data.get("action") is not None else None,
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
            "sync_execute_fraction": self.sync_execute_fraction,
            "joints": [vars(j).copy() for j in self.joints],
            "cameras": [vars(c).copy() for c in self.cameras],
            "controllers": [{"name": c.name, "type": c.type, "joints": list(c.joints)} for c in self.controllers],
            "sim": dict(self.sim),
        } | ({"action": {k: list(v) for k, v in vars(self.action).items()}} if self.action is not None else {})


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
