#!/usr/bin/env bash
# Installs the project and its pinned dependencies into ./.venv (CPU-only torch).
# Usage: bash scripts/install.sh [EXTRAS]   (default extras: dev; e.g. "dev,peers")
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
[ -x .venv/bin/python ] || python3 -m venv .venv
# torch first and pinned, so that no dependency pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[${extras}]"
