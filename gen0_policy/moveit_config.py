"""The MoveIt configuration of each arm (config/moveit/<arm>/, written by tools/moveit_config.py)
and the ROS parameters MoveIt reads from it, assembled in one place for move_group
(launch/moveit.launch.py) and for MoveItPy (gen0_moveit_moves). The files are plain XML/YAML, so
this module needs no ROS; only a full ROS install with MoveIt can plan with them.

Parameters are built here rather than by moveit_configs_utils.MoveItConfigsBuilder because the
builder only finds ``*_planning.yaml`` in a package's top config/ folder and merges its Pilz
limits under the same key as the joint limits; an explicit dict says exactly what MoveIt gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gen0_policy.errors import ConfigError
from gen0_policy.paths import config_dir

ARMS = ("panda", "ur5e")  # G1: one controller for waist and both arms, no per-arm groups (README "MoveIt")
ARM_GROUP, GRIPPER_GROUP = "arm", "gripper"  # planning groups of every SRDF


def moveit_dir(name: str) -> Path:
    """config/moveit/<name>/ in the checkout or the installed share folder."""
    return config_dir() / "moveit" / name


def check_arm(name: str) -> None:
    if name not in ARMS:
        raise ConfigError(f"no MoveIt configuration for {name!r}; arms with one: {', '.join(ARMS)}")


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def moveit_parameters(name: str, moveit_py: bool = False) -> dict[str, Any]:
    """ROS parameters for move_group (``moveit_py=False``) or MoveItPy (``True``): the two read
    their planning pipelines from differently shaped ``planning_pipelines`` parameters."""
    check_arm(name)
    import xacro  # ROS's xacro on a full install, the PyPI package in the venv

    folder = moveit_dir(name)
    urdf = xacro.process_file(str(config_dir() / "urdf" / f"{name}.urdf.xacro")).toprettyxml()
    params: dict[str, Any] = {
        "robot_description": urdf,
        "robot_description_semantic": (folder / f"{name}.srdf").read_text(),
        "robot_description_kinematics": _yaml(folder / "kinematics.yaml"),
        "robot_description_planning": _yaml(folder / "joint_limits.yaml"),
        "ompl": _yaml(config_dir() / "moveit" / "ompl_planning.yaml"),
        "moveit_manage_controllers": False,  # the controllers are ros2_control's, already active
        **_yaml(folder / "moveit_controllers.yaml"),
        "publish_planning_scene": True,
        "publish_geometry_updates": True,
        "publish_state_updates": True,
        "publish_transforms_updates": True,
    }
    if moveit_py:
        params.update(_yaml(folder / "moveit_py.yaml"))
    else:
        params.update(planning_pipelines=["ompl"], default_planning_pipeline="ompl")
    return params
