#!/usr/bin/env bash
# Micro-benchmarks, run by hand (never as timed tests): prints each figure as
# GB/s and as a ratio against a memcpy of the same bytes in the same process.
# BENCH_MS sets the measuring time per case (default 1500).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release --example bench-convert
