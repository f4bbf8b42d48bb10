#!/usr/bin/env bash
# What watching in a browser costs the encoder thread: CPU time of the
# `capture-encode` thread over SECS seconds with nobody watching (the
# reference run), then with headless Chromium on the page and 8 more
# /live.mp4 readers. Prints both and their ratio (1.00 = no cost).
# Usage: bench/http-view.sh [BINARY] (default: target/release/edgestream)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/edgestream}
secs=${SECS:-20}
port=$((20000 + RANDOM % 20000))
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$tmp"' EXIT
"$bin" --rtsp off --http 127.0.0.1:$port --size 640x480 --fps 30 2>"$tmp/log" &
es=$!
sleep 2
tid=$(grep -l capture-encode /proc/$es/task/*/comm | head -1 | cut -d/ -f5)
ticks() { awk '{print $14 + $15}' /proc/$es/task/$tid/stat; }
hz=$(getconf CLK_TCK)
a=$(ticks); sleep "$secs"; b=$(ticks)
alone=$(( b - a ))
chromium --headless=new --no-sandbox --disable-gpu --autoplay-policy=no-user-gesture-required \
  --user-data-dir="$tmp/chrome" --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run "http://127.0.0.1:$port/" >/dev/null 2>&1 &
for _ in 1 2 3 4 5 6 7 8; do curl -s -o /dev/null "http://127.0.0.1:$port/live.mp4" & done
sleep 3
a=$(ticks); sleep "$secs"; b=$(ticks)
watched=$(( b - a ))
awk -v a="$alone" -v w="$watched" -v hz="$hz" -v s="$secs" 'BEGIN {
  printf "encoder thread CPU: %.1f%% alone, %.1f%% with Chromium + 8 readers; ratio %.2f\n",
    a / hz / s * 100, w / hz / s * 100, (a > 0 ? w / a : 0) }'
