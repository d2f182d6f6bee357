"""The ROS-free core (everything but gen0_policy.ros) imports in a process where rclpy and every
ROS message package are unimportable, so it runs and tests anywhere."""

from __future__ import annotations

import subprocess
import sys

BLOCK_ROS_AND_IMPORT_CORE = r"""
import importlib, importlib.abc, pkgutil, sys

ROS_ROOTS = ("rclpy", "rosidl_runtime_py", "rosgraph_msgs", "sensor_msgs", "std_msgs", "std_srvs",
             "trajectory_msgs", "builtin_interfaces", "geometry_msgs", "action_msgs", "lifecycle_msgs",
             "gen0_msgs", "rcl_interfaces")

class BlockRos(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ROS_ROOTS:
            raise ImportError(f"core module imported ROS package {name!r}")
        return None

sys.meta_path.insert(0, BlockRos())
import gen0_policy
names = []
for info in pkgutil.walk_packages(gen0_policy.__path__, "gen0_policy."):
    if info.name == "gen0_policy.ros" or info.name.startswith("gen0_policy.ros."):
        continue
    importlib.import_module(info.name)
    names.append(info.name)
print(len(names), "core modules imported:", " ".join(names))
"""


def test_core_imports_without_ros():
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_ROS_AND_IMPORT_CORE], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "gen0_policy.embodiment" in result.stdout
    assert "gen0_policy.cli" in result.stdout


def test_blocker_really_blocks():
    """The check above would be worthless if the blocker let rclpy through."""
    code = BLOCK_ROS_AND_IMPORT_CORE.split("import gen0_policy")[0] + "import rclpy\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "core module imported ROS package 'rclpy'" in result.stderr
