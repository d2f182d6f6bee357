"""ament_python package gen0_policy: built by colcon on a full ROS install, or installed editable
into the project venv by ./setup.sh. Python dependencies live in requirements/ (pip) and in
package.xml (rosdep), so colcon never tries to fetch them."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "gen0_policy"
HERE = Path(__file__).parent


def tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing ``folder`` (recursively) under share/gen0_policy/."""
    entries: dict[str, list[str]] = {}
    for path in sorted((HERE / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(HERE)
            entries.setdefault(f"share/{PACKAGE}/{rel.parent}", []).append(str(rel))
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("checkpoints"),  # the shipped checkpoint: the default of every command that takes one
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="gen0-ros maintainers",
    maintainer_email="maintainers@gen0-ros.org",
    description="A GEN-0-style embodied foundation policy for ROS 2.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "gen0 = gen0_policy.cli:main",
            "gen0_leader_mirror_node = gen0_policy.ros.leader_mirror_node:main",
            "gen0_moveit_moves = gen0_policy.ros.moveit_moves:main",
            "gen0_policy_node = gen0_policy.ros.policy_node:main",
            "gen0_posttrain_node = gen0_policy.ros.posttrain_node:main",
            "gen0_recorder_node = gen0_policy.ros.recorder_node:main",
            "gen0_sim_node = gen0_policy.ros.sim_node:main",
            "gen0_viewer_node = gen0_policy.ros.viewer_node:main",
        ],
    },
)
