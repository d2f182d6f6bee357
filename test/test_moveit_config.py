"""The MoveIt configuration (config/moveit/) checked statically: MoveIt is not installable here, so
nothing plans; every file is read and held against the robot it describes. SRDF groups and joints
against the expanded URDF, the arm chain against the joint_trajectory_controller, group states
against the URDF limits and the embodiment's home, joint limits against the embodiment YAML,
MoveIt's controllers against config/controllers; tools/moveit_config.py would write the same
files; the moves refuse with one line where MoveIt is missing."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from functools import cache

import pytest
import xacro
import yaml
import yourdfpy

from conftest import REPO
from gen0_policy.embodiment import available_embodiments, load_embodiment
from gen0_policy.errors import ConfigError, Gen0Error
from gen0_policy.moveit_config import ARM_GROUP, ARMS, GRIPPER_GROUP, moveit_dir, moveit_parameters
from gen0_policy.paths import config_dir
from gen0_policy.ros import moveit_moves

FILES = ("kinematics.yaml", "joint_limits.yaml", "moveit_controllers.yaml", "moveit_py.yaml")


@cache
def urdf(name: str) -> yourdfpy.URDF:
    xml = xacro.process_file(str(config_dir() / "urdf" / f"{name}.urdf.xacro")).toprettyxml()
    return yourdfpy.URDF.load(io.StringIO(xml), load_meshes=False, build_scene_graph=True)


def srdf(name: str) -> ET.Element:
    return ET.parse(moveit_dir(name) / f"{name}.srdf").getroot()


def load(name: str, file: str) -> dict:
    return yaml.safe_load((moveit_dir(name) / file).read_text())


def controllers(name: str) -> dict:
    return yaml.safe_load((config_dir() / "controllers" / f"{name}.yaml").read_text())


def chain_joints(robot: yourdfpy.URDF, base: str, tip: str) -> list[yourdfpy.Joint]:
    """URDF joints from ``base`` down to ``tip`` (raises if tip is not below base)."""
    by_child = {j.child: j for j in robot.robot.joints}
    joints, link = [], tip
    while link != base:
        joint = by_child[link]  # KeyError: walked past the root without meeting base
        joints.append(joint)
        link = joint.parent
    return joints[::-1]


def group_joints(robot: yourdfpy.URDF, group: ET.Element) -> list[str]:
    if (chain := group.find("chain")) is not None:
        return [j.name for j in chain_joints(robot, chain.get("base_link"), chain.get("tip_link"))]
    return [j.get("name") for j in group.findall("joint")]


def test_every_arm_has_a_config_and_g1_is_left_out() -> None:
    folders = sorted(p.name for p in (config_dir() / "moveit").iterdir() if p.is_dir())
    assert folders == sorted(ARMS)
    assert set(ARMS) < set(available_embodiments()) and "g1" not in ARMS
    for name in ARMS:
        assert {p.name for p in moveit_dir(name).iterdir()} == {f"{name}.srdf", *FILES}
    # why G1 has none: one trajectory controller for waist and both arms, so no per-arm group could execute
    g1 = load_embodiment("g1").controller("joint_trajectory_controller").joints
    assert any(j.startswith("left_") for j in g1) and any(j.startswith("right_") for j in g1)


@pytest.mark.parametrize("name", ARMS)
def test_srdf_groups_match_the_urdf_and_the_controllers(name: str) -> None:
    emb, robot, root = load_embodiment(name), urdf(name), srdf(name)
    assert root.tag == "robot" and root.get("name") == robot.robot.name
    groups = {g.get("name"): g for g in root.findall("group")}
    assert set(groups) == {ARM_GROUP, GRIPPER_GROUP}
    # the arm chain's moving joints are exactly the arm controller's, in order
    chain = groups[ARM_GROUP].find("chain")
    assert chain.get("base_link") == emb.sim["base_body"] and chain.get("tip_link") == "tcp"
    moving = [j.name for j in chain_joints(robot, chain.get("base_link"), "tcp") if j.type != "fixed"]
    arm = list(emb.controller("joint_trajectory_controller").joints)
    assert moving == arm == [j.name for j in emb.joints if not j.gripper]
    assert arm == controllers(name)["joint_trajectory_controller"]["ros__parameters"]["joints"]
    # the gripper group: the gripper controller's joint and the URDF joints that mimic it
    gripper = list(emb.controller("gripper_controller").joints)
    mimics = [j.name for j in robot.robot.joints if j.mimic is not None and j.mimic.joint in gripper]
    assert group_joints(robot, groups[GRIPPER_GROUP]) == gripper + mimics
    assert set(gripper + mimics) <= set(robot.joint_map)
    # the URDF is fixed to a world link, so no virtual joint
    assert "world" in robot.link_map and root.find("virtual_joint") is None
    (effector,) = root.findall("end_effector")
    links = {chain.get("base_link")} | {j.child for j in chain_joints(robot, chain.get("base_link"), "tcp")}
    assert effector.get("group") == GRIPPER_GROUP and effector.get("parent_group") == ARM_GROUP
    assert effector.get("parent_link") in links


@pytest.mark.parametrize("name", ARMS)
def test_group_states_are_within_limits_and_home_is_the_embodiment_home(name: str) -> None:
    emb, robot, root = load_embodiment(name), urdf(name), srdf(name)
    groups = {g.get("name"): group_joints(robot, g) for g in root.findall("group")}
    states: dict[str, dict[str, float]] = {}
    for state in root.findall("group_state"):
        values = {j.get("name"): float(j.get("value")) for j in state.findall("joint")}
        assert set(values) <= set(groups[state.get("group")]), state.get("name")
        for joint, value in values.items():
            limit = robot.joint_map[joint].limit
            assert limit.lower <= value <= limit.upper, (state.get("name"), joint)
        states.setdefault(state.get("name"), {}).update(values)
    home = dict(zip(emb.joint_names, emb.home.tolist(), strict=True))
    assert states["home"] == pytest.approx(home)  # arm and gripper together: every action joint
    gripper = emb.controller("gripper_controller").joints
    assert states["open"] == pytest.approx(dict.fromkeys(gripper, emb.sim["gripper"]["open"]))


@pytest.mark.parametrize("name", ARMS)
def test_disable_collisions_name_links_and_cover_every_adjacent_pair(name: str) -> None:
    robot = urdf(name)
    pairs = [(d.get("link1"), d.get("link2")) for d in srdf(name).findall("disable_collisions")]
    assert len(set(map(frozenset, pairs))) == len(pairs), "a pair is listed twice"
    assert {link for pair in pairs for link in pair} <= set(robot.link_map)
    solid = {n for n, link in robot.link_map.items() if link.collisions}
    adjacent = {frozenset((j.parent, j.child)) for j in robot.robot.joints if {j.parent, j.child} <= solid}
    assert adjacent <= set(map(frozenset, pairs))


@pytest.mark.parametrize("name", ARMS)
def test_joint_limits_are_the_embodiment_limits(name: str) -> None:
    emb, limits = load_embodiment(name), load(name, "joint_limits.yaml")
    assert 0 < limits["default_velocity_scaling_factor"] <= 1 and 0 < limits["default_acceleration_scaling_factor"] <= 1
    assert list(limits["joint_limits"]) == list(emb.joint_names)
    for spec in emb.joints:
        entry = limits["joint_limits"][spec.name]
        assert entry["has_velocity_limits"] and entry["max_velocity"] == spec.velocity
        assert entry["has_acceleration_limits"] and entry["max_acceleration"] == spec.acceleration
        assert entry["max_velocity"] <= urdf(name).joint_map[spec.name].limit.velocity + 1e-9


@pytest.mark.parametrize("name", ARMS)
def test_moveit_controllers_are_the_ros2_control_controllers(name: str) -> None:
    moveit, ros2_control = load(name, "moveit_controllers.yaml"), controllers(name)
    assert moveit["moveit_controller_manager"] == "moveit_simple_controller_manager/MoveItSimpleControllerManager"
    manager = moveit["moveit_simple_controller_manager"]
    assert manager["controller_names"] == ["joint_trajectory_controller"]
    types = ros2_control["controller_manager"]["ros__parameters"]
    for controller in manager["controller_names"]:
        entry = manager[controller]
        assert types[controller]["type"] == "joint_trajectory_controller/JointTrajectoryController"
        assert entry["type"] == "FollowJointTrajectory" and entry["action_ns"] == "follow_joint_trajectory"
        assert entry["joints"] == ros2_control[controller]["ros__parameters"]["joints"]
    # the gripper's forward command controller has no action: left to gen0_moveit_moves, not MoveIt
    assert types["gripper_controller"]["type"] == "forward_command_controller/ForwardCommandController"
    assert "gripper_controller" not in manager


@pytest.mark.parametrize("name", ARMS)
def test_kinematics_and_planning_groups_exist_in_the_srdf(name: str) -> None:
    groups = {g.get("name") for g in srdf(name).findall("group")}
    kinematics = load(name, "kinematics.yaml")
    assert set(kinematics) <= groups
    assert kinematics[ARM_GROUP]["kinematics_solver"] == "kdl_kinematics_plugin/KDLKinematicsPlugin"
    ompl = yaml.safe_load((config_dir() / "moveit" / "ompl_planning.yaml").read_text())
    configs = set(ompl["planner_configs"])
    for group in {ARM_GROUP, GRIPPER_GROUP}:
        assert set(ompl[group]["planner_configs"]) <= configs
    assert ompl["planning_plugins"] == ["ompl_interface/OMPLPlanner"]
    moveit_py = load(name, "moveit_py.yaml")
    assert moveit_py["plan_request_params"]["planning_pipeline"] in moveit_py["planning_pipelines"]["pipeline_names"]
    assert moveit_py["planning_pipelines"]["pipeline_names"] == ["ompl"]
    assert moveit_py["planning_scene_monitor_options"]["joint_state_topic"] == "/joint_states"


@pytest.mark.parametrize("name", ARMS)
def test_parameters_for_move_group_and_moveit_py(name: str) -> None:
    for flavour in (False, True):
        params = moveit_parameters(name, moveit_py=flavour)
        assert yourdfpy.URDF.load(io.StringIO(params["robot_description"]), load_meshes=False).robot.name == name
        assert ET.fromstring(params["robot_description_semantic"]).get("name") == name
        assert params["robot_description_planning"]["joint_limits"]
        assert params["ompl"]["planning_plugins"] and not params["moveit_manage_controllers"]
        assert params["moveit_simple_controller_manager"]["controller_names"] == ["joint_trajectory_controller"]
    assert moveit_parameters(name)["planning_pipelines"] == ["ompl"]  # move_group: a list
    assert moveit_parameters(name, moveit_py=True)["planning_pipelines"] == {"pipeline_names": ["ompl"]}  # MoveItCpp
    with pytest.raises(ConfigError, match="no MoveIt configuration for 'g1'; arms with one: panda, ur5e"):
        moveit_parameters("g1")


@pytest.mark.parametrize("name", ARMS)
def test_the_tool_would_write_the_same_files(name: str) -> None:
    spec = importlib.util.spec_from_file_location("moveit_config_tool", REPO / "tools" / "moveit_config.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    for file, text in tool.files(name).items():
        assert (moveit_dir(name) / file).read_text() == text, f"{file} is stale: run python tools/moveit_config.py"


def test_moves_parameters_file_matches_the_node() -> None:
    params = yaml.safe_load((config_dir() / "moveit_moves.yaml").read_text())["gen0_moveit_moves"]["ros__parameters"]
    assert params == moveit_moves.PARAMETERS
    moveit_moves.check_moves(params["moves"], params["approach_pose"])
    with pytest.raises(ConfigError, match="unknown moves \\['dance'\\]; known moves are home, approach"):
        moveit_moves.check_moves(["dance"], [])
    with pytest.raises(ConfigError, match="approach_pose must be"):
        moveit_moves.check_moves(["approach"], [0.5, 0.0, 0.3])


@pytest.mark.skipif(importlib.util.find_spec("moveit") is not None, reason="MoveIt is installed here")
def test_without_moveit_the_moves_refuse_in_one_line() -> None:
    with pytest.raises(Gen0Error, match="MoveIt is required") as info:
        moveit_moves.import_moveit_py()
    assert "\n" not in str(info.value) and "ros-jazzy-moveit-py" in str(info.value)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "gen0_policy.ros.moveit_moves", "--ros-args", "-p", "embodiment:=ur5e"],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"gen0_moveit_moves: {moveit_moves.MOVEIT_REQUIRED}"]
