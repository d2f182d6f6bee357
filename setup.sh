#!/usr/bin/env bash
# One command from a fresh Debian 12 / Python 3.11 machine to a working gen0-ros:
# system packages, a venv that is itself the ROS 2 Jazzy prefix, gen0_msgs built into it,
# and gen0_policy installed editable. Idempotent: a second run checks and changes nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(pwd)
VENV=${GEN0_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# 1. System packages: a compiler for gen0_msgs, EGL/OSMesa for headless MuJoCo rendering.
APT_PACKAGES=(cmake g++ libegl1 libgl1 libgl1-mesa-dri libopengl0 libosmesa6)
# Debian's own python3 needs python3-venv for `python -m venv` (ensurepip).
"$PY" -c "import ensurepip, venv" 2>/dev/null || APT_PACKAGES+=(python3-venv)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  step "apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. The venv. torch goes in first and alone, then everything under a constraints file pinning it.
if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install -q -c requirements/constraints.txt)
stamp="$VENV/.gen0-requirements.sha256"
want=$(cat requirements/*.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "pip: torch (CPU build)"
  "$VPY" -m pip install -q torch==2.13.0
  step "pip: ROS 2 Jazzy wheels, core and dev dependencies"
  "${PIP[@]}" -r requirements/ros.txt -r requirements/core.txt -r requirements/dev.txt
  # robosuite only for its UR5e model files; its own dependencies are heavy and unused.
  "${PIP[@]}" --no-deps robosuite==1.5.2
  echo "$want" > "$stamp"
fi

# 3. gen0_msgs, built with cmake into the venv prefix (the venv is the ROS prefix).
step "gen0_msgs"
"$VPY" tools/fix_ros_cmake_paths.py "$VENV"
msgs_stamp="$VENV/.gen0-msgs.sha256"
msgs_want=$(find gen0_msgs -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ "$(cat "$msgs_stamp" 2>/dev/null)" != "$msgs_want" ]; then
  mkdir -p build
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  export PATH="$VENV/bin:$PATH"
  cmake -S gen0_msgs -B build/gen0_msgs -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
    -DPython3_EXECUTABLE="$VPY" -DCMAKE_BUILD_TYPE=Release >build/gen0_msgs.log 2>&1 \
    && cmake --build build/gen0_msgs -j"$(nproc)" >>build/gen0_msgs.log 2>&1 \
    && cmake --install build/gen0_msgs >>build/gen0_msgs.log 2>&1 \
    || { tail -40 build/gen0_msgs.log; echo "gen0_msgs build failed (full log: build/gen0_msgs.log)"; exit 1; }
  echo "$msgs_want" > "$msgs_stamp"
fi

# 4. The project itself, editable, with its console entry points.
if ! "$VPY" -c "import gen0_policy, sys; sys.exit(0 if gen0_policy.__file__.startswith('$ROOT') else 1)" 2>/dev/null \
   || [ setup.py -nt "$VENV/.gen0-project.stamp" ] || [ setup.cfg -nt "$VENV/.gen0-project.stamp" ]; then
  step "pip: gen0_policy (editable)"
  "${PIP[@]}" --no-deps --no-build-isolation -e .
  touch "$VENV/.gen0-project.stamp"
fi

"$VENV/bin/gen0" doctor --quiet
echo "gen0-ros is ready: run ./test.sh (or: source .venv/bin/activate && gen0 --help)"
