"""package.xml and setup.py tell the truth: every ROS package the nodes import is declared, every
console script points at a real function, config/ and launch/ are installed as data files."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import zipfile
from importlib.metadata import entry_points

from catkin_pkg.package import parse_package

from conftest import REPO


def ros_imports() -> set[str]:
    """Top-level ROS packages imported anywhere in gen0_policy/ros/."""
    found: set[str] = set()
    for path in (REPO / "gen0_policy" / "ros").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                root = name.split(".")[0]
                if root == "rclpy" or root.endswith(("_msgs", "_srvs", "_interfaces")):
                    found.add(root)
    return found


def test_manifests_parse():
    policy = parse_package(str(REPO / "package.xml"))
    msgs = parse_package(str(REPO / "gen0_msgs" / "package.xml"))
    assert policy.name == "gen0_policy" and policy.package_format == 3
    assert policy.get_build_type() == "ament_python"
    assert msgs.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in [g.name for g in msgs.member_of_groups]


def test_every_imported_ros_package_is_declared():
    policy = parse_package(str(REPO / "package.xml"))
    declared = {d.name for d in policy.build_depends + policy.exec_depends}
    missing = ros_imports() - declared
    assert not missing, f"gen0_policy/ros imports {sorted(missing)} but package.xml does not declare them"


def test_console_scripts_resolve():
    scripts = [ep for ep in entry_points(group="console_scripts") if ep.value.startswith("gen0_policy")]
    assert any(ep.name == "gen0" for ep in scripts)
    for ep in scripts:
        module, func = ep.value.split(":")
        assert callable(getattr(importlib.import_module(module), func)), ep


def test_wheel_installs_config_launch_and_ament_index(tmp_path):
    """What colcon/pip install puts under share/: the ament index marker, package.xml, config/, launch/."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        timeout=300,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("gen0_policy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n]
    assert "share/ament_index/resource_index/packages/gen0_policy" in data
    assert "share/gen0_policy/package.xml" in data
    for path in (REPO / "config").rglob("*"):
        if path.is_file():
            assert f"share/gen0_policy/{path.relative_to(REPO)}" in data, path
    assert "gen0_policy/cli.py" in names
