#!/usr/bin/env bash
# A separate venv with LeRobot 0.4.4's ACT, the timed neighbour of train_benchmark.py (--act-python).
# LeRobot pins torch < 2.11 and torchvision; this machine has torch 2.13.0 only (a CPU build) and PyPI's
# torchvision links CUDA torch, so both go in without their pins (--no-deps) and ACT's own imports
# are installed beside them under a torch==2.13.0 constraint (anything else would pull CUDA wheels).
# benchmarks/act_reference.py declares the two torchvision operators ACT never calls. About 2 min.
#   bash benchmarks/act_venv.sh [.venv-act]   then   python benchmarks/train_benchmark.py --act-python .venv-act/bin/python
set -euo pipefail
VENV=${1:-.venv-act}
python3.11 -m venv "$VENV"
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "torch==2.13.0" > "$constraints"
"$VENV/bin/pip" install -q torch==2.13.0
"$VENV/bin/pip" install -q --no-deps lerobot==0.4.4 torchvision==0.28.0
"$VENV/bin/pip" install -q -c "$constraints" draccus==0.10.0 "einops<0.9" "huggingface-hub<0.36,>=0.34.2" \
    safetensors numpy packaging termcolor "deepdiff<9" pillow "datasets>=4,<5" "av>=15,<16" jsonlines \
    "gymnasium>=1.1.1,<2" "opencv-python-headless<4.13" "imageio<3" "accelerate>=1.10,<2" \
    "diffusers>=0.27.2,<0.36" pyserial
echo '{"act_python": "'"$VENV/bin/python"'"}'
