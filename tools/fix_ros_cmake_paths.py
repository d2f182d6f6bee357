"""Point the ROS wheels' exported CMake files at this interpreter's include dirs.

The ros-jazzy-* wheels were built in a manylinux container, so their CMake config files name
``/opt/python/cp311-cp311/...`` include directories that do not exist here; rosidl generation then
fails with "Imported target ... includes non-existent path". Rewriting them is idempotent.

Usage: python tools/fix_ros_cmake_paths.py VENV
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

# e.g. /opt/python/cp311-cp311/include/python3.11 or .../site-packages/numpy/_core/include
BUILDER_NUMPY = re.compile(r"/opt/python/cp3\d+-cp3\d+t?/[^;\"\s)]*numpy/(?:_?core/)?include")
BUILDER_PYTHON = re.compile(r"/opt/python/cp3\d+-cp3\d+t?/include/python3\.\d+t?")


def fix(prefix: Path) -> int:
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = 0
    for path in (prefix / "share").rglob("*.cmake"):
        text = path.read_text(errors="surrogateescape")
        if "/opt/python/" not in text:
            continue
        new = BUILDER_NUMPY.sub(numpy_include, text)
        new = BUILDER_PYTHON.sub(python_include, new)
        if new != text:
            path.write_text(new, errors="surrogateescape")
            changed += 1
    return changed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    count = fix(Path(sys.argv[1]))
    if count:
        print(f"fixed builder paths in {count} CMake files")
