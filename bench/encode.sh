#!/usr/bin/env bash
# edgestream's encode against the x264 CLI at identical settings, run by hand
# (never a timed test): prints ratios, never a pass or fail on a time.
#
#   bash bench/encode.sh [RUNS]      (default 5 alternating runs per case)
#
# 1. The same Y4M (640x480, 30 fps, FRAMES frames, ffmpeg's testsrc2) encoded
#    by `edgestream --pace asap --rtsp off` and by `x264` (ultrafast,
#    zerolatency, baseline, ABR 1000 kbit/s with a 1000 kbit VBV, keyint 60,
#    no B-frames, no lookahead), alternating runs. Whole-process CPU seconds
#    (user + system) and peak RSS of each from GNU time, and the ratios of the
#    medians: edgestream at its default threads (0, automatic) and at 1
#    against `x264 --threads 1`, and the x264 CLI's own default threads.
# 2. Instructions per frame under callgrind (one thread each, CALLGRIND_FRAMES
#    frames) and their ratio.
# 3. bench/storm.py: the join storm and the 16-viewer CPU figures.
#
# FRAMES (300), CALLGRIND_FRAMES (60), SKIP_STORM=1 and SKIP_CALLGRIND=1
# adjust it.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
frames=${FRAMES:-300}
cg_frames=${CALLGRIND_FRAMES:-60}
cargo build --quiet --release
bin=$PWD/target/release/edgestream
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
y4m=$tmp/in.y4m
ffmpeg -loglevel error -f lavfi -i "testsrc2=size=640x480:rate=30" -frames:v "$frames" \
    -pix_fmt yuv420p "$y4m"

x264_args=(--preset ultrafast --tune zerolatency --profile baseline --bitrate 1000
    --vbv-maxrate 1000 --vbv-bufsize 1000 --keyint 60 --bframes 0 --rc-lookahead 0
    --sync-lookahead 0 --quiet --no-progress --muxer raw -o /dev/null)

# One run: prints "cpu_seconds peak_rss_kib".
measure() {
    /usr/bin/time -f "%U %S %M" -o "$tmp/time" "$@" >/dev/null 2>"$tmp/err" ||
        { cat "$tmp/err" >&2; exit 1; }
    awk '{ printf "%.3f %d\n", $1 + $2, $3 }' "$tmp/time"
}

declare -A cpu rss
cases=(es_default es_1 x264_1 x264_default)
run_case() {
    case $1 in
    es_default) measure "$bin" --source "$y4m" --pace asap --rtsp off --log-level warn ;;
    es_1) measure "$bin" --source "$y4m" --pace asap --rtsp off --log-level warn --threads 1 ;;
    x264_1) measure x264 "${x264_args[@]}" --threads 1 "$y4m" ;;
    x264_default) measure x264 "${x264_args[@]}" "$y4m" ;;
    esac
}
for ((i = 0; i < runs; i++)); do
    for c in "${cases[@]}"; do
        read -r c_cpu c_rss < <(run_case "$c")
        cpu[$c]+="$c_cpu "
        rss[$c]+="$c_rss "
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
max() { tr ' ' '\n' | grep . | sort -g | tail -1; }
echo "encode: $frames frames of 640x480 at 30 fps, $runs alternating runs each"
printf '%-34s %10s %10s %16s\n' case "CPU s" "x threads1" "peak RSS MiB"
ref=$(median <<<"${cpu[x264_1]}")
for c in "${cases[@]}"; do
    m=$(median <<<"${cpu[$c]}")
    r=$(max <<<"${rss[$c]}")
    case $c in
    es_default) name="edgestream (threads 0, automatic)" ;;
    es_1) name="edgestream --threads 1" ;;
    x264_1) name="x264 --threads 1" ;;
    x264_default) name="x264 (its default threads)" ;;
    esac
    awk -v n="$name" -v m="$m" -v ref="$ref" -v r="$r" \
        'BEGIN { printf "%-34s %10.3f %9.2fx %16.1f\n", n, m, m / ref, r / 1024 }'
done
echo "  CPU per run (s): edgestream default: ${cpu[es_default]}| x264 --threads 1: ${cpu[x264_1]}"

if [[ ${SKIP_CALLGRIND:-0} != 1 ]]; then
    cg() {
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
            awk '/Collected :/ { print $NF }'
    }
    es_ir=$(cg "$bin" --source "$y4m" --pace asap --rtsp off --log-level warn --threads 1 \
        --frames "$cg_frames")
    x_ir=$(cg x264 "${x264_args[@]}" --threads 1 --frames "$cg_frames" "$y4m")
    awk -v e="$es_ir" -v x="$x_ir" -v n="$cg_frames" 'BEGIN {
        printf "callgrind, %d frames, one thread: edgestream %.2f M instructions/frame, x264 %.2f M, ratio %.3fx\n",
            n, e / n / 1e6, x / n / 1e6, e / x }'
fi

if [[ ${SKIP_STORM:-0} != 1 ]]; then
    python3 bench/storm.py "$bin"
fi
