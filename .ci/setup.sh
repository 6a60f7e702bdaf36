#!/usr/bin/env bash
# Everything the test suite needs on a fresh machine: system packages, torch, the kit with its dev extras.
# Usage: bash .ci/setup.sh        (root or sudo for apt-get; safe to run twice)
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/install_browser.sh
# torch 2.14.1 + torchvision 0.29.1: the pair measured to work together on the CI machine (the CPU-only 2.13 wheel
# cannot import PyPI's torchvision: `operator torchvision::nms does not exist`).
python3 -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
python3 -m pip install -q -e ".[dev,eval,scale]"
# lmms-eval 0.7.3 pins av<16 (and wandb, sentence_transformers, ...) that the plugin does not need: its own
# requirements that it does need are in the `eval` extra; installing it without its pins keeps av 18.
python3 -m pip install -q --no-deps "lmms-eval==0.7.3"
