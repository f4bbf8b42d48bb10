#!/usr/bin/env bash
# Capture-to-display delay of the page's live view in headless Chromium
# (median, p95) against ffmpeg's own fMP4 over HTTP played by the same page,
# and their ratio. See bench/http-delay.py.
# Usage: bench/http-delay.sh [BINARY] (default: target/release/edgestream);
# SECS=N per run (default 20), RUNS=N alternations (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/edgestream}
[ -x "$bin" ] || cargo build --release
exec python3 bench/http-delay.py "$bin"
