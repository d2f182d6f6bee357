"""The ROS-free core (everything but gen0_policy.ros) imports in a process where rclpy and every
ROS message package are unimportable, so it runs and tests anywhere; the hardware path (policy
node, runtime, inference model) imports in a process where MuJoCo and the training code are."""

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


# The hardware path: a policy node on a robot loads neither the simulator nor training code. The
# blocker records every attempt (so an ``import mujoco`` inside try/except is caught as well).
BLOCK_SIM_AND_IMPORT_HARDWARE_PATH = r"""
import importlib, importlib.abc, sys

BLOCKED = ("mujoco", "metaworld", "gen0_policy.sim", "gen0_policy.train", "gen0_policy.scaling")
attempts = []

class BlockSimAndTraining(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            attempts.append(name)
            raise ImportError(f"hardware path imported {name!r}")
        return None

sys.meta_path.insert(0, BlockSimAndTraining())
HARDWARE_PATH = ("gen0_policy.ros.policy_node", "gen0_policy.ros.leader_mirror_node",
                 "gen0_policy.ros.recorder_node", "gen0_policy.runtime.loading", "gen0_policy.model.policy")
for name in HARDWARE_PATH:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.startswith("gen0_policy."))
assert not attempts, f"hardware path tried to import {attempts}"
print(len(loaded), "hardware path modules loaded:", " ".join(loaded))
"""


def test_hardware_path_imports_without_simulator_or_training():
    """What the policy node pulls in, down to the network it loads from a checkpoint, never needs
    MuJoCo or the training loop: a robot computer need not have them and must not pay for them."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_SIM_AND_IMPORT_HARDWARE_PATH], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    for module in (
        "gen0_policy.ros.policy_node",
        "gen0_policy.ros.conversions",
        "gen0_policy.runtime.runtime",
        "gen0_policy.model.policy",
        "gen0_policy.commands",
    ):
        assert module in result.stdout.split(), result.stdout


def test_sim_package_import_loads_no_mujoco():
    """``import gen0_policy.sim`` and its numpy-only controllers leave MuJoCo unloaded; the world still loads it."""
    code = (
        "import sys, gen0_policy.sim, gen0_policy.sim.controllers\n"
        "assert 'mujoco' not in sys.modules, 'importing gen0_policy.sim loaded mujoco'\n"
        "from gen0_policy.sim import make_env\n"
        "assert 'mujoco' in sys.modules and callable(make_env)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_hardware_blocker_really_blocks():
    code = BLOCK_SIM_AND_IMPORT_HARDWARE_PATH.split("HARDWARE_PATH =")[0] + "import mujoco\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "hardware path imported 'mujoco'" in result.stderr
