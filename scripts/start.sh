#!/usr/bin/env bash
# Install, then start the studio on the embedded model: it opens the demo project (real SMS spam seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m streamlit run app.py --server.address "${HOST:-127.0.0.1}" --server.port "${PORT:-8501}"
