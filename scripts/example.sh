#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the main job: the quick-start example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/examples/quickstart.js
