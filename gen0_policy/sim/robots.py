"""Robot models as MuJoCo specs, built from the wheels' MJCF files and an embodiment's ``sim:`` block.

Every robot ends up with the same control surface: one position servo per action joint (the model's
own actuators are replaced, so a torque-driven UR5e and a servo-driven Panda behave alike), gravity
compensation on its links (joints then track their targets closely, as on a real arm's controller),
a ``tcp`` site per hand for IK, and its cameras. Names in the compiled model are the joint names of
the embodiment YAML, so nodes, URDFs and datasets all share one vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import EmbodimentError
from gen0_policy.sim.assets import model_file


@dataclass(frozen=True)
class ServoSpec:
    """Position servo for one action joint: force = kp * (scale * target - length) - kv * velocity.

    ``tendon`` drives a coupled gripper through its tendon; ``scale`` maps the joint target to the
    tendon length (sum of the tendon's joint coefficients)."""

    joint: str
    kp: float
    kv: float
    force: float
    tendon: str = ""
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kp <= 0 or self.kv < 0 or self.force <= 0 or self.scale <= 0:
            raise EmbodimentError(f"servo {self.joint}: kp, force and scale must be > 0 and kv >= 0")


def look_at(pos: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """Quaternion (w, x, y, z) of a MuJoCo camera at ``pos`` looking at ``target`` (cameras look along -z)."""
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, float)
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-6:  # looking straight along ``up``
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    mat = np.stack([right, cam_up, -forward], axis=1)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.reshape(-1))
    return quat


def _load(source: dict[str, Any]) -> mujoco.MjSpec:
    return mujoco.MjSpec.from_file(str(model_file(source["package"], source["file"])))


def _servos(embodiment: Embodiment) -> list[ServoSpec]:
    table = embodiment.sim.get("servos", {})
    missing = [n for n in embodiment.joint_names if n not in table]
    if missing:
        raise EmbodimentError(f"embodiment {embodiment.name}: sim.servos lacks joints {missing}")
    return [
        ServoSpec(joint=name, force=next(j.effort for j in embodiment.joints if j.name == name), **table[name])
        for name in embodiment.joint_names
    ]


def _remove_subtrees(spec: mujoco.MjSpec, body_names: list[str]) -> None:
    """Delete bodies (with their children) and everything that refers to their joints."""
    for name in body_names:
        body = spec.body(name)
        if body is None:
            raise EmbodimentError(f"sim.remove_bodies names {name!r}, which the model does not have")
        spec.detach_body(body)


def build_robot(embodiment: Embodiment) -> mujoco.MjSpec:
    """The robot alone (no table, no task), mounted at ``sim.base_pos``."""
    sim = embodiment.sim
    spec = _load(sim["model"])
    # Keyframes index every joint; deleting joints under them leaves stale keys, so drop them first.
    for element in [*spec.keys, *spec.actuators, *spec.sensors, *spec.lights]:
        element.delete()
    base = spec.body(sim["base_body"])
    for joint in list(base.joints):  # a floating base becomes a fixed one
        joint.delete()
    _remove_subtrees(spec, list(sim.get("remove_bodies", [])))
    base.pos = np.asarray(sim.get("base_pos", [0, 0, 0]), float)
    base.quat = np.asarray(sim.get("base_quat", [1, 0, 0, 0]), float)

    for part in sim.get("attach", []):
        child = _load(part)
        for actuator in list(child.actuators):  # replaced by our servos too
            actuator.delete()
        frame = spec.body(part["parent"]).add_frame(
            pos=np.asarray(part.get("pos", [0, 0, 0]), float), quat=np.asarray(part.get("quat", [1, 0, 0, 0]), float)
        )
        frame.attach_body(child.body(part["body"]), part.get("prefix", ""), "")

    hidden = tuple(sim.get("hidden_geom_suffixes", []))  # collision twins of visual meshes
    for geom in spec.geoms:
        if hidden and geom.name.endswith(hidden):
            geom.group = 3
    for body in spec.bodies:  # gravity compensation: targets are tracked without sag
        if body.name != "world":
            body.gravcomp = 1.0

    for name, site in sim.get("sites", {}).items():
        parent = spec.body(site["body"])
        if parent is None:
            raise EmbodimentError(f"sim.sites.{name}: no body {site['body']!r} in the model")
        parent.add_site(name=name, pos=np.asarray(site["pos"], float), size=[0.005, 0, 0], rgba=[1, 0, 0, 0], group=5)

    for cam in embodiment.cameras:
        mount = sim.get("cameras", {}).get(cam.name)
        if mount is None or mount.get("body", "world") == "world":
            continue  # world cameras belong to the scene
        parent = spec.body(mount["body"])
        pos = np.asarray(mount["pos"], float)
        up = np.asarray(mount.get("up", [0, 0, 1]), float)
        parent.add_camera(
            name=cam.name, pos=pos, quat=look_at(pos, np.asarray(mount["target"], float), up), fovy=cam.fovy
        )

    for servo in _servos(embodiment):
        actuator = spec.add_actuator(name=f"{servo.joint}_servo")
        if servo.tendon:
            actuator.trntype = mujoco.mjtTrn.mjTRN_TENDON
            actuator.target = servo.tendon
        else:
            actuator.trntype = mujoco.mjtTrn.mjTRN_JOINT
            actuator.target = servo.joint
        actuator.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        actuator.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        actuator.gainprm[0] = servo.kp
        actuator.biasprm[0:3] = [0.0, -servo.kp, -servo.kv]
        actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        actuator.forcerange = [-servo.force, servo.force]
        actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
    return spec


def servo_scales(embodiment: Embodiment) -> np.ndarray:
    """Per action joint, the factor from a joint target to its servo's control value."""
    return np.array([s.scale for s in _servos(embodiment)], dtype=np.float64)
