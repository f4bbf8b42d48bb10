#!/usr/bin/env bash
# Soak: edgestream at real time for MINUTES (default 30) with random viewers
# and a push target that restarts; prints RSS, open fds, threads and open
# RTSP connections once a minute and fails unless they are flat after
# warm-up (RSS within 1 MiB). CI runs it for 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
exec cargo bench --bench soak -- --minutes "$minutes"
