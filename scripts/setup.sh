#!/usr/bin/env bash
# Create .venv and install the studio with its test tools. The first install compiles llama-cpp-python
# (the embedded model's runtime, ~8 minutes on two cores); later installs reuse pip's wheel cache.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
