"""The ros2_control descriptions for full ROS installs (Gazebo/hardware) match the MuJoCo robots:
xacro (PyPI) expands each file, yourdfpy loads it, joint names and limits equal the embodiment
YAML and lie within the MuJoCo ranges, forward kinematics equals MuJoCo's at random poses, and the
<ros2_control> tag and controllers YAML name exactly the embodiment's joints and controllers.
Launch files are checked in test_launch_files.py."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from functools import cache

import mujoco
import numpy as np
import pytest
import xacro
import yaml
import yourdfpy

from gen0_policy.embodiment import load_embodiment
from gen0_policy.paths import config_dir
from gen0_policy.sim.scene import build_spec

EMBODIMENTS = ["ur5e", "panda", "g1"]
CONTROLLER_TYPES = {
    "joint_trajectory_controller": "joint_trajectory_controller/JointTrajectoryController",
    "forward_position_controller": "forward_command_controller/ForwardCommandController",
}


@cache
def expand(name: str, **args: str) -> str:
    return xacro.process_file(str(config_dir() / "urdf" / f"{name}.urdf.xacro"), mappings=args).toprettyxml()


@cache
def mujoco_robot(name: str) -> mujoco.MjModel:
    return build_spec(load_embodiment(name)).compile()  # the robot in its world, with the scene cameras


def load(xml: str) -> yourdfpy.URDF:
    return yourdfpy.URDF.load(io.StringIO(xml), load_meshes=False, build_scene_graph=True)


def pose(m: mujoco.MjModel, d: mujoco.MjData, pos: np.ndarray, mat: np.ndarray, root: int) -> np.ndarray:
    """4x4 pose of a frame (world pos, 3x3 mat) relative to body ``root``."""
    world_root = np.eye(4)
    world_root[:3, :3], world_root[:3, 3] = d.xmat[root].reshape(3, 3), d.xpos[root]
    world = np.eye(4)
    world[:3, :3], world[:3, 3] = mat.reshape(3, 3), pos
    return np.linalg.inv(world_root) @ world


@pytest.mark.parametrize("name", EMBODIMENTS)
def test_joint_names_and_limits_match_embodiment_and_mujoco(name):
    emb = load_embodiment(name)
    urdf = load(expand(name))
    m = mujoco_robot(name)
    joints = urdf.joint_map
    # actuated (non-mimic) joints are exactly the embodiment's action joints
    assert sorted(urdf.actuated_joint_names) == sorted(emb.joint_names)
    for spec in emb.joints:
        limit = joints[spec.name].limit
        assert (limit.lower, limit.upper) == pytest.approx((spec.lower, spec.upper), abs=1e-6), spec.name
        assert (limit.effort, limit.velocity) == pytest.approx((spec.effort, spec.velocity), abs=1e-6), spec.name
    for joint in joints.values():
        if joint.type == "fixed":
            continue
        mj = m.joint(joint.name)  # raises if MuJoCo has no such joint
        assert (
            joint.type
            == {mujoco.mjtJoint.mjJNT_HINGE: "revolute", mujoco.mjtJoint.mjJNT_SLIDE: "prismatic"}[mj.type[0]]
        )
        low, high = mj.range
        assert low - 1e-6 <= joint.limit.lower < joint.limit.upper <= high + 1e-6, joint.name
    # every MuJoCo joint of the robot is in the URDF
    assert {m.joint(j).name for j in range(m.njnt)} <= set(joints)


@pytest.mark.parametrize("name", EMBODIMENTS)
def test_forward_kinematics_matches_mujoco(name):
    emb = load_embodiment(name)
    urdf = load(expand(name))
    m = mujoco_robot(name)
    d = mujoco.MjData(m)
    root = m.body(emb.sim["base_body"]).id
    mimic = {j.name: j.mimic for j in urdf.robot.joints if j.mimic is not None}
    # Bodies whose chain holds only action joints or exact copies of them (joint equalities);
    # closed-linkage followers (Robotiq) are approximated in URDF and left out.
    exact = set(emb.joint_names)
    for eq in range(m.neq):
        if m.eq_type[eq] == mujoco.mjtEq.mjEQ_JOINT:
            exact |= {m.joint(int(m.eq_obj1id[eq])).name, m.joint(int(m.eq_obj2id[eq])).name}

    def chain_exact(b: int) -> bool:
        while b != root:
            if b == 0:
                return False  # not below the robot's base
            if any(m.joint(j).name not in exact for j in range(m.njnt) if m.jnt_bodyid[j] == b):
                return False
            b = int(m.body_parentid[b])
        return True

    bodies = [b for b in range(m.nbody) if b != root and m.body(b).name in urdf.link_map and chain_exact(b)]
    assert len(bodies) >= len(emb.controller(emb.controllers[0].name).joints)
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(  # the robot stands where the simulator puts it
        urdf.get_transform(m.body(root).name, "world")[:3, 3], m.body_pos[root], atol=1e-9
    )
    for _ in range(5):
        q = rng.uniform(emb.lower, emb.upper)
        cfg = dict(zip(emb.joint_names, q, strict=True))
        urdf.update_cfg(cfg)
        d.qpos[:] = 0
        for jname, value in cfg.items():
            d.qpos[m.joint(jname).qposadr[0]] = value
        for jname, spec in mimic.items():  # coupled joints follow as MuJoCo's equalities make them
            if jname in exact:
                d.qpos[m.joint(jname).qposadr[0]] = spec.multiplier * cfg[spec.joint] + spec.offset
        mujoco.mj_kinematics(m, d)
        mujoco.mj_camlight(m, d)
        base = m.body(root).name
        for b in bodies:
            expected = pose(m, d, d.xpos[b], d.xmat[b], root)
            np.testing.assert_allclose(urdf.get_transform(m.body(b).name, base), expected, atol=1e-5)
        for site in emb.sim.get("tcp_sites", []):
            expected = pose(m, d, d.site(site).xpos, d.site(site).xmat, root)
            np.testing.assert_allclose(urdf.get_transform(site, base), expected, atol=1e-5)
        for cam in emb.cameras:  # optical frame = MuJoCo camera turned 180 deg about x
            c = m.camera(cam.name).id
            expected = pose(m, d, d.cam_xpos[c], d.cam_xmat[c], 0) @ np.diag([1.0, -1.0, -1.0, 1.0])
            actual = urdf.get_transform(f"{cam.name}_optical_frame", "world")
            np.testing.assert_allclose(actual, expected, atol=1e-5)


@pytest.mark.parametrize("name", EMBODIMENTS)
def test_ros2_control_tag_and_xacro_args(name):
    emb = load_embodiment(name)
    tree = ET.fromstring(expand(name, prefix="left_", controllers_file="/tmp/controllers.yaml"))
    system = tree.find("ros2_control")
    assert system.find("hardware/plugin").text == "gz_ros2_control/GazeboSimSystem"
    commanded = [j.get("name") for j in system.findall("joint") if j.find("command_interface") is not None]
    assert commanded == [f"left_{n}" for n in emb.joint_names]
    for joint in system.findall("joint"):
        states = {s.get("name") for s in joint.findall("state_interface")}
        assert states == {"position", "velocity"}
        if joint.find("command_interface") is not None:
            assert joint.find("command_interface").get("name") == "position"
            home = float(joint.find("state_interface/param").text)
            assert home == pytest.approx(emb.home[emb.joint_names.index(joint.get("name")[5:])], abs=1e-5)
    plugin = tree.find("gazebo/plugin")
    assert (
        plugin.get("filename") == "gz_ros2_control-system" and plugin.find("parameters").text == "/tmp/controllers.yaml"
    )
    assert all(link.get("name") == "world" or link.get("name").startswith("left_") for link in tree.findall("link"))
    # without a controllers file there is no Gazebo plugin; the mock hardware plugin is selectable
    mock = ET.fromstring(expand(name, ros2_control_plugin="mock_components/GenericSystem"))
    assert mock.find("gazebo") is None
    assert mock.find("ros2_control/hardware/plugin").text == "mock_components/GenericSystem"


@pytest.mark.parametrize("name", EMBODIMENTS)
def test_controllers_yaml_matches_embodiment(name):
    emb = load_embodiment(name)
    config = yaml.safe_load((config_dir() / "controllers" / f"{name}.yaml").read_text())
    manager = config["controller_manager"]["ros__parameters"]
    assert manager["joint_state_broadcaster"]["type"] == "joint_state_broadcaster/JointStateBroadcaster"
    assert manager["update_rate"] > 0
    for controller in emb.controllers:
        assert manager[controller.name]["type"] == CONTROLLER_TYPES[controller.type]
        params = config[controller.name]["ros__parameters"]
        assert params["joints"] == list(controller.joints)
        if controller.type == "joint_trajectory_controller":
            assert params["command_interfaces"] == ["position"]
            assert params["state_interfaces"] == ["position", "velocity"]
        else:
            assert params["interface_name"] == "position"
    expected = {"joint_state_broadcaster", *(c.name for c in emb.controllers), "update_rate"}
    assert set(manager) == expected
