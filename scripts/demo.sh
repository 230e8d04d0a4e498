#!/usr/bin/env bash
# The main job: set up, build, then quantize/compile/run the bundled demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/build.sh
.venv/bin/python python/qslaw_tools/demo.py
