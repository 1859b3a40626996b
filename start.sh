#!/usr/bin/env bash
# Set camd up in ./.venv (first time, or when requirements change) and run it with the
# default settings (plus any options given here, e.g. ./start.sh --source test).
set -euo pipefail
cd "$(dirname "$0")"
. ./scripts/venv.sh
ensure_venv requirements.txt
exec .venv/bin/camd run "$@"
