#!/usr/bin/env bash
# CPU cost of the command/stdin source's raw path against the Y4M file
# source, run by hand (never as a timed test). The same 640x480 frames are
# encoded by x264 three ways, as fast as they come (--pace asap, no RTSP):
#   file   --source clip.y4m                       (the reference)
#   y4m    cat clip.y4m | edgestream --source -    (YUV4MPEG2 over a pipe)
#   i420   cat clip.yuv | edgestream --source - --source-format i420
# Only edgestream's own CPU time is counted (GNU time; cat is a sibling, not
# a child). Prints user+sys seconds per run (median of BENCH_RUNS, default 5)
# and each pipe figure as a ratio to the file source. The pipe costs one read
# into a reused buffer per frame; x264 dominates, so expect ratios near 1.00.
# BENCH_FRAMES (default 600) and BENCH_SIZE (default 640x480) change the clip.
set -euo pipefail
cd "$(dirname "$0")/.."
frames=${BENCH_FRAMES:-600}
size=${BENCH_SIZE:-640x480}
runs=${BENCH_RUNS:-5}
cargo build --quiet --profile vm-test
bin=target/vm-test/edgestream
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc2=size=$size:rate=30" \
    -frames:v "$frames" -pix_fmt yuv420p "$dir/clip.y4m"
ffmpeg -hide_banner -loglevel error -i "$dir/clip.y4m" -f rawvideo -pix_fmt yuv420p "$dir/clip.yuv"
common=(--rtsp off --pace asap --threads 1 --log-level warn --frames "$frames")

cpu() { # prints user+sys seconds of edgestream alone
    local t="$dir/time"
    "$@"
    awk '{ printf "%.3f\n", $1 + $2 }' "$t"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

run_file() { /usr/bin/time -o "$dir/time" -f "%U %S" "$bin" --source "$dir/clip.y4m" "${common[@]}"; }
run_y4m() { cat "$dir/clip.y4m" | /usr/bin/time -o "$dir/time" -f "%U %S" "$bin" --source - "${common[@]}"; }
run_i420() {
    cat "$dir/clip.yuv" | /usr/bin/time -o "$dir/time" -f "%U %S" "$bin" --source - \
        --source-format i420 --size "$size" "${common[@]}"
}

declare -A secs
for kind in file y4m i420; do
    secs[$kind]=$(for _ in $(seq "$runs"); do cpu "run_$kind"; done | median)
done
printf '%-6s %8s  %s\n' source "cpu s" "ratio to the Y4M file source"
for kind in file y4m i420; do
    printf '%-6s %8s  %s\n' "$kind" "${secs[$kind]}" \
        "$(awk -v a="${secs[$kind]}" -v b="${secs[file]}" 'BEGIN { printf "%.3f", a / b }')"
done
