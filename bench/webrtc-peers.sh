#!/usr/bin/env bash
# 8 WebRTC peers plus RTSP viewers at once: one encode, and what each peer
# costs. Runs edgestream at 640x480@30 for SECS seconds alone (reference),
# then with N headless Chromium pages playing over WebRTC (WHEP) and 2
# ffmpeg RTSP readers. Prints the whole process's CPU and the encoder
# thread's in both runs, the extra CPU per WebRTC peer (the readers'
# share included), the frames encoded per second (one encode: stays 30)
# and the ratios. Figures only, never pass/fail.
# Usage: bench/webrtc-peers.sh [BINARY] (default: target/release/edgestream)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/edgestream}
secs=${SECS:-20}
peers=${PEERS:-8}
port=$((20000 + RANDOM % 20000))
rport=$((port + 1))
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$tmp"' EXIT
"$bin" --rtsp 127.0.0.1:$rport --http 127.0.0.1:$port --webrtc-udp 127.0.0.1:0 --webrtc-tcp off \
  --size 640x480 --fps 30 --max-viewers 32 2>"$tmp/log" &
es=$!
sleep 2
tid=$(grep -l capture-encode /proc/$es/task/*/comm | head -1 | cut -d/ -f5)
proc_ticks() { awk '{print $14 + $15}' /proc/$es/stat; }
enc_ticks() { awk '{print $14 + $15}' /proc/$es/task/$tid/stat; }
encoded() { curl -s "http://127.0.0.1:$port/api/status" | grep -o '"encoded":[0-9]*' | cut -d: -f2; }
hz=$(getconf CLK_TCK)
measure() { # -> "process_ticks encoder_ticks frames"
  local p0 e0 f0 p1 e1 f1
  p0=$(proc_ticks); e0=$(enc_ticks); f0=$(encoded)
  sleep "$secs"
  p1=$(proc_ticks); e1=$(enc_ticks); f1=$(encoded)
  echo "$((p1 - p0)) $((e1 - e0)) $((f1 - f0))"
}
read -r pa ea fa < <(measure)
for i in $(seq 1 "$peers"); do
  chromium --headless=new --no-sandbox --disable-gpu --autoplay-policy=no-user-gesture-required \
    --allow-loopback-in-peer-connection --user-data-dir="$tmp/chrome$i" \
    --disable-background-networking --disable-component-update --disable-sync --no-first-run \
    "http://127.0.0.1:$port/" >/dev/null 2>&1 &
done
for _ in 1 2; do
  ffmpeg -v quiet -rtsp_transport tcp -i "rtsp://127.0.0.1:$rport/live" -c copy -f null - </dev/null &
done
# Eight browsers start slowly on two cores: wait (up to 40 s) for them all.
for _ in $(seq 1 40); do
  connected=$(grep -c 'webrtc: session .* connected' "$tmp/log" || true)
  [ "$connected" -ge "$peers" ] && break
  sleep 1
done
sleep 3
read -r pw ew fw < <(measure)
awk -v pa="$pa" -v ea="$ea" -v fa="$fa" -v pw="$pw" -v ew="$ew" -v fw="$fw" \
    -v hz="$hz" -v s="$secs" -v n="$peers" -v c="$connected" 'BEGIN {
  printf "WebRTC peers connected: %d of %d, plus 2 RTSP readers\n", c, n
  printf "frames encoded: %.1f/s alone, %.1f/s watched (one encode)\n", fa / s, fw / s
  printf "process CPU: %.1f%% alone, %.1f%% watched; ratio %.2f; per WebRTC peer +%.2f%% of a core\n",
    pa / hz / s * 100, pw / hz / s * 100, (pa > 0 ? pw / pa : 0), (pw - pa) / hz / s * 100 / (c > 0 ? c : 1)
  printf "encoder thread CPU: %.1f%% alone, %.1f%% watched; ratio %.2f\n",
    ea / hz / s * 100, ew / hz / s * 100, (ea > 0 ? ew / ea : 0) }'
