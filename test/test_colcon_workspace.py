"""A full-ROS user builds the tree with colcon: in a workspace laid out as the README says,
`colcon list` finds both packages (colcon does not descend into a folder that is itself a
package, hence the README's gen0_msgs link)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

COLCON = Path(sys.executable).parent / "colcon"


def colcon_list(workspace: Path) -> dict[str, tuple[str, str]]:
    result = subprocess.run(
        [str(COLCON), "list"],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLCON_HOME": str(workspace / ".colcon")},
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines() if line.strip()]
    return {name: (path, kind.strip("()")) for name, path, kind in rows}


def test_colcon_lists_both_packages(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "gen0-ros").symlink_to(REPO)  # stands in for `git clone ... src/gen0-ros`
    (src / "gen0_msgs").symlink_to(Path("gen0-ros") / "gen0_msgs")  # the README's link

    packages = colcon_list(tmp_path)
    assert packages["gen0_policy"] == ("src/gen0-ros", "ros.ament_python")
    assert packages["gen0_msgs"] == ("src/gen0_msgs", "ros.ament_cmake")


def test_without_the_link_colcon_misses_gen0_msgs(tmp_path: Path):
    """Documents why the README needs the link: the repo root is itself a package."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "gen0-ros").symlink_to(REPO)
    assert set(colcon_list(tmp_path)) == {"gen0_policy"}
