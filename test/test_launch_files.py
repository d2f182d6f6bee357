"""Every launch file, checked statically: `launch`/`launch_ros` are not installable from PyPI, so the
files are compiled and read with ``ast`` (never executed against a fake launch). Checked: each
argument is described and used, every LaunchConfiguration names a declared argument, our nodes are
real console scripts whose parameters exist in their parameter files, and included launch files
exist and receive only arguments they declare (the rest, e.g. checkpoint, come from the command
line: launch passes them on to included files)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from gen0_policy.paths import config_dir, launch_dir

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted(p.name for p in launch_dir().glob("*.launch.py"))
NO_DEFAULT = object()  # a required argument
# Our node executables -> (node name, parameter file): the node name is the file's top-level key.
NODE_PARAMS = {
    "gen0_policy_node": ("gen0_policy", "policy_node.yaml"),
    "gen0_sim_node": ("gen0_sim", "sim_node.yaml"),
    "gen0_recorder_node": ("recorder", "recorder.yaml"),
    "gen0_leader_mirror_node": ("leader_mirror", "leader_mirror.yaml"),
    "gen0_posttrain_node": ("gen0_posttrain", "posttrain_node.yaml"),
    "gen0_moveit_moves": ("gen0_moveit_moves", "moveit_moves.yaml"),
}
ROS_PARAMETERS = {"use_sim_time"}  # every rclpy node has these


@dataclass
class NodeCall:
    executable: str
    name: str | None
    parameters: dict[str, ast.expr] = field(default_factory=dict)  # from the dict literals in parameters=[...]


@dataclass
class IncludeCall:
    file: str  # launch file name; may hold "*" where an f-string formats a value in
    arguments: dict[str, ast.expr] | None  # None: not a dict literal


@dataclass
class LaunchFile:
    declared: dict[str, object] = field(default_factory=dict)  # name -> default literal (or NO_DEFAULT / None)
    descriptions: dict[str, str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    nodes: list[NodeCall] = field(default_factory=list)
    includes: list[IncludeCall] = field(default_factory=list)


def _name(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")


def _keyword(call: ast.Call, key: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == key), None)


def _literal(node: ast.expr | None) -> object:
    try:
        return ast.literal_eval(node) if node is not None else NO_DEFAULT
    except ValueError:
        return None  # a substitution (e.g. a path in the package share)


def _dict_literal(node: ast.expr) -> dict[str, ast.expr] | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "items":
        node = node.func.value
    if not isinstance(node, ast.Dict):
        return None
    out: dict[str, ast.expr] = {}
    for key, value in zip(node.keys, node.values, strict=True):
        if key is None:  # **other
            inner = _dict_literal(value)
            out.update(inner or {})
        else:
            out[ast.literal_eval(key)] = value
    return out


def _launch_file_name(node: ast.expr) -> str | None:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value.endswith(".launch.py"):
            return sub.value
        if isinstance(sub, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "*" for v in sub.values)
            if text.endswith(".launch.py"):
                return text
    return None


def read_launch_file(name: str) -> LaunchFile:
    source = (launch_dir() / name).read_text()
    tree = ast.parse(source, name)
    info = LaunchFile()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        kind = _name(node)
        if kind == "DeclareLaunchArgument":
            arg = ast.literal_eval(node.args[0])
            assert arg not in info.declared, f"{name}: argument {arg} declared twice"
            info.declared[arg] = _literal(_keyword(node, "default_value"))
            description = _keyword(node, "description")
            info.descriptions[arg] = ast.literal_eval(description) if description is not None else ""
        elif kind in ("LaunchConfiguration", "LaunchConfigurationEquals", "LaunchConfigurationNotEquals"):
            info.used.add(ast.literal_eval(node.args[0]))
        elif kind in ("Node", "LifecycleNode") and _literal(_keyword(node, "package")) == "gen0_policy":
            call = NodeCall(ast.literal_eval(_keyword(node, "executable")), _literal(_keyword(node, "name")))
            for item in getattr(_keyword(node, "parameters"), "elts", []):
                call.parameters.update(_dict_literal(item) or {})
            info.nodes.append(call)
        elif kind == "IncludeLaunchDescription":
            file = _launch_file_name(node.args[0])
            assert file is not None, f"{name}: cannot tell which launch file line {node.lineno} includes"
            arguments = _keyword(node, "launch_arguments")
            info.includes.append(IncludeCall(file, _dict_literal(arguments) if arguments is not None else {}))
    return info


def console_scripts() -> set[str]:
    setup = (REPO / "setup.py").read_text()
    return set(re.findall(r'"(\w+) = gen0_policy[\w.]*:main"', setup))


def node_parameters(executable: str) -> tuple[str, dict]:
    node_name, file = NODE_PARAMS[executable]
    data = yaml.safe_load((config_dir() / file).read_text())
    return node_name, data[node_name]["ros__parameters"]


def test_every_launch_file_is_checked() -> None:
    assert len(LAUNCH_FILES) == 8 and {"hardware_policy.launch.py", "moveit.launch.py"} <= set(LAUNCH_FILES)


@pytest.mark.parametrize("launch_file", LAUNCH_FILES)
def test_launch_file_compiles_and_its_arguments_are_described_and_used(launch_file: str) -> None:
    source = (launch_dir() / launch_file).read_text()
    code = compile(source, launch_file, "exec")
    assert "generate_launch_description" in code.co_names
    info = read_launch_file(launch_file)
    assert info.declared, f"{launch_file} declares no arguments"
    undescribed = [a for a, text in info.descriptions.items() if len(text.strip()) < 10]
    assert not undescribed, f"{launch_file}: arguments {undescribed} need a description"
    assert info.used <= set(info.declared), f"{launch_file} reads undeclared {sorted(info.used - set(info.declared))}"
    assert set(info.declared) <= info.used, f"{launch_file} never uses {sorted(set(info.declared) - info.used)}"


@pytest.mark.parametrize("launch_file", LAUNCH_FILES)
def test_launched_nodes_exist_and_their_parameters_are_in_their_files(launch_file: str) -> None:
    scripts = console_scripts()
    for node in read_launch_file(launch_file).nodes:
        assert node.executable in scripts, f"{launch_file}: no console script {node.executable} in setup.py"
        node_name, params = node_parameters(node.executable)
        assert node.name == node_name, f"{launch_file}: {node.executable} named {node.name}, its file says {node_name}"
        unknown = sorted(set(node.parameters) - set(params) - ROS_PARAMETERS)
        assert not unknown, f"{launch_file}: {node.executable} has no parameters {unknown} in its file"


@pytest.mark.parametrize("launch_file", LAUNCH_FILES)
def test_included_launch_files_exist_and_get_their_arguments(launch_file: str) -> None:
    for include in read_launch_file(launch_file).includes:
        if include.file.endswith("gz_sim.launch.py"):
            continue  # ros_gz_sim's, not ours
        matches = sorted(launch_dir().glob(include.file))
        assert matches, f"{launch_file} includes {include.file}, which does not exist"
        for match in matches:
            included = read_launch_file(match.name)
            if include.arguments is None:
                continue
            passed = set(include.arguments)
            assert passed <= set(included.declared), (
                f"{match.name} does not declare {sorted(passed - set(included.declared))}"
            )


def test_hardware_launch_is_the_policy_launch_with_derated_arguments() -> None:
    """hardware_policy.launch.py starts no node of its own: it includes policy.launch.py and declares
    only the arguments whose defaults it changes; policy.launch.py's defaults are the parameter
    file's (a launch argument always overrides the file, so a different default would silently
    change the simulated policy)."""
    hardware, policy = read_launch_file("hardware_policy.launch.py"), read_launch_file("policy.launch.py")
    assert not hardware.nodes and [i.file for i in hardware.includes] == ["policy.launch.py"]
    forwarded = hardware.includes[0].arguments
    assert set(forwarded) == {*hardware.declared, "use_sim_time"}, "every hardware argument reaches the policy node"
    assert ast.literal_eval(forwarded["use_sim_time"]) == "false"
    for arg, default in hardware.declared.items():
        assert default != policy.declared[arg], f"hardware_policy.launch.py re-declares {arg} with the same default"
    assert float(hardware.declared["limit_scale"]) < 1.0 and int(hardware.declared["realtime_priority"]) > 0
    _, params = node_parameters("gen0_policy_node")
    for arg in ("mode", "limit_scale", "realtime_priority", "output_mode", "act_on_activate"):
        assert yaml.safe_load(str(policy.declared[arg])) == params[arg], f"policy.launch.py default of {arg}"


def test_moveit_moves_are_off_by_default_and_moveit_launch_serves_the_arms() -> None:
    """premove:=true (needs MoveIt) runs gen0_moveit_moves before the policy; by default only the
    policy starts. moveit.launch.py's default embodiment has a MoveIt configuration."""
    from gen0_policy.moveit_config import ARMS

    policy = read_launch_file("policy.launch.py")
    assert policy.declared["premove"] == "false"
    assert sorted(n.executable for n in policy.nodes) == ["gen0_moveit_moves", "gen0_policy_node"]
    assert read_launch_file("moveit.launch.py").declared["embodiment"] in ARMS
