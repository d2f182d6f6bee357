"""The `gen0` command as a user runs it: a real console script in a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

GEN0 = Path(sys.executable).parent / "gen0"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(GEN0), *args], capture_output=True, text=True, timeout=300, env=env)


def test_help_lists_subcommands():
    result = run("--help")
    assert result.returncode == 0
    assert "doctor" in result.stdout


def test_doctor_reports_every_check_ok():
    result = run("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert result.returncode == 0, result.stdout
    for name in ("rclpy", "gen0_msgs", "torch", "mujoco rendering", "discovery range"):
        assert checks[name]["ok"], checks[name]


def test_doctor_says_how_to_fix_a_missing_discovery_range():
    env = {k: v for k, v in os.environ.items() if k != "ROS_AUTOMATIC_DISCOVERY_RANGE"}
    # the doctor's own rclpy probe still stays on localhost (doctor.py forces it)
    result = run("doctor", "--json", env=env)
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert result.returncode == 1
    assert not checks["discovery range"]["ok"]
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST" in checks["discovery range"]["fix"]
    assert checks["rclpy"]["ok"]


def test_bringup_refuses_an_unknown_robot_or_task_in_one_line_before_starting_nodes():
    """Issue 17: `gen0 bringup --embodiment franka` printed a sim node's traceback."""
    robot = run("bringup", "sim", "--embodiment", "franka", "--duration", "1")
    assert robot.returncode == 2
    assert robot.stderr.strip() == (
        "gen0 bringup: unknown embodiment 'franka'; available embodiments are ['g1', 'panda', 'sawyer', 'ur5e']"
    )
    sawyer = run("bringup", "sim", "--embodiment", "sawyer", "--task", "fly", "--duration", "1")
    assert sawyer.returncode == 2 and len(sawyer.stderr.strip().splitlines()) == 1
    assert "unknown Meta-World task 'fly'" in sawyer.stderr
    # Meta-World's Sawyer is simulated at its own 80 Hz step (issue 15: its ROS path)
    printed = run("bringup", "sim", "--embodiment", "sawyer", "--task", "reach", "--print-only")
    assert printed.returncode == 0 and "update_rate:=80.0" in printed.stdout.splitlines()[0]
    task = run("bringup", "sim", "--embodiment", "g1", "--task", "stack", "--duration", "1")
    assert task.returncode == 2 and len(task.stderr.strip().splitlines()) == 1
    assert "task 'stack' is not defined for embodiment 'g1'" in task.stderr
