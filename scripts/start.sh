#!/usr/bin/env bash
# Install, then create the demo project (real SMS spam seeds) and evolve offspring on the embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/datagen demo --per-label "${PER_LABEL:-5}"
