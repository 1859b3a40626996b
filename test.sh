#!/usr/bin/env bash
# Set up everything the tests need (Debian packages, ./.venv) and run the whole suite:
# lint, type checks, then pytest (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")"
. ./scripts/venv.sh
ensure_apt ffmpeg chromium systemd systemd-container debootstrap shellcheck openssl nginx libnginx-mod-rtmp \
  fail2ban gcc libc6-dev
ensure_venv requirements.txt requirements-dev.txt
# The emulated UVC camera the V4L2 tests preload into camd (tests/fakecam/fakecam.c).
cc -shared -fPIC -O2 -Wall -Wextra -Werror -o tests/fakecam/libfakecam.so tests/fakecam/fakecam.c -ldl -lpthread
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
