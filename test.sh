#!/usr/bin/env bash
# Runs the whole test suite, headless and on localhost-only DDS. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
VENV=${GEN0_VENV:-$PWD/.venv}
[ -x "$VENV/bin/python" ] || { echo "no venv at $VENV: run ./setup.sh first"; exit 1; }

# DDS must never multicast off this machine; each test picks its own ROS_DOMAIN_ID (test/conftest.py).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-0}
export MUJOCO_GL=${MUJOCO_GL:-egl}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONDONTWRITEBYTECODE=1
export FASTRTPS_DEFAULT_PROFILES_FILE=${FASTRTPS_DEFAULT_PROFILES_FILE:-$PWD/config/fastdds.xml}

"$VENV/bin/python" -m ruff check gen0_policy test benchmarks tools launch
exec "$VENV/bin/python" -m pytest -n "${GEN0_TEST_WORKERS:-2}" "$@"
