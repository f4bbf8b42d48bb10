#!/usr/bin/env bash
# board/cross-check.sh [--clean] [TARGET]
#
# Runs the users' build path for real: `cross build --release --target TARGET`
# (default arm-unknown-linux-gnueabi) with Podman, then checks the binary:
# static, stripped, within its budget (5 MiB with WebRTC, the default; 4 MiB
# without), and serving RTSP under qemu-user
# on a Pi's CPU with ffprobe decoding its stream (armel: `qemu-arm -cpu
# arm1176`, a Pi Zero, where x264 must run its ARMv6 code).
#
# It first supplies what our build machines lack and a user's machine has
# (board/README.md, "What cross-check.sh adds on our build machines"):
#   - podman settings for this sandbox (runc, cgroupfs, no default ulimits,
#     host network) in a containers.conf passed by CONTAINERS_CONF, unless
#     CONTAINERS_CONF is already set;
#   - a local docker.io/library/debian:bookworm-slim made by mmdebstrap, since
#     no image registry is reachable (only if podman has no such image);
#   - the host's CA bundle mounted into the build container, so cargo there
#     trusts what the host trusts (a TLS-intercepting proxy);
#   - the cross 0.2.5 / rustup >= 1.28 toolchain-name bug worked around by
#     naming the toolchain (cross-rs/cross#1678);
#   - std built from source (-Zbuild-std) when `rustup target add` cannot
#     download the target's rust-std (armel's answers 404 here).
#
# --clean removes this workspace's cross image and the target directory
# first, so the figures are those of a build from scratch.
#
# Output: target/cross-check/TARGET (the cargo target directory cross mounts;
# the binary is target/cross-check/TARGET/TARGET/release/edgestream) and
# target/cross-check/TARGET.log (the full log, each line stamped with the
# seconds since the start).
#
# Needs: podman, runc, mmdebstrap (apt), rustup, cargo; qemu-user and ffmpeg
# for the run. Installs cross 0.2.5 with cargo if it is missing.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
root=$PWD

clean=
if [ "${1:-}" = --clean ]; then clean=1; shift; fi
target=${1:-arm-unknown-linux-gnueabi}
case "$target" in
  arm-unknown-linux-gnueabi | armv7-unknown-linux-gnueabihf | aarch64-unknown-linux-gnu) ;;
  *) echo "usage: $0 [--clean] [arm-unknown-linux-gnueabi|armv7-unknown-linux-gnueabihf|aarch64-unknown-linux-gnu]" >&2; exit 2 ;;
esac
cross_version=0.2.5
# The default features, as users build; CROSS_FEATURES gives others (say
# '--no-default-features --features mjpeg', the Pi Zero build without
# WebRTC, whose budget is 4 MiB).
read -r -a feature_args <<<"${CROSS_FEATURES-}"
budget=$((5 * 1024 * 1024))
case " ${feature_args[*]} " in
  *" --no-default-features "*) case " ${feature_args[*]} " in *webrtc*) ;; *) budget=$((4 * 1024 * 1024)) ;; esac ;;
esac
out=$root/target/cross-check
mkdir -p "$out"
log=$out/$target.log
started=$SECONDS
say() { printf 'cross-check: %s\n' "$*"; }
die() { printf 'cross-check: %s\n' "$*" >&2; exit 1; }

for c in podman rustup cargo; do
  command -v "$c" >/dev/null || die "$c not found (apt-get install podman runc mmdebstrap; rustup from rustup.rs)"
done
# Outside a cargo project: inside one, `cross --version` runs its toolchain
# checks too (see the rustup note below).
cross_is() { (cd / && cross --version 2>/dev/null | head -1) || true; }
if [ "$(cross_is)" != "cross $cross_version" ]; then
  say "installing cross $cross_version from crates.io"
  cargo install cross --version "$cross_version" --locked
fi
say "$(cross_is), $(podman --version)"

# Podman settings: plain `podman run` fails in this sandbox (setrlimit, then
# crun's "cgroups in hybrid mode not supported"); these work, and podman build
# takes netns = "host" too, so apt-get inside the image build reaches Debian.
if [ -z "${CONTAINERS_CONF:-}" ]; then
  export CONTAINERS_CONF=$out/containers.conf
  cat >"$CONTAINERS_CONF" <<'EOF'
# Written by board/cross-check.sh (see board/README.md).
[containers]
default_ulimits = []
netns = "host"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
fi
export CROSS_CONTAINER_ENGINE=podman
say "CONTAINERS_CONF=$CONTAINERS_CONF"

# board/Dockerfile's base image, from Debian's packages when absent.
base=docker.io/library/debian:bookworm-slim
if ! podman image exists "$base"; then
  command -v mmdebstrap >/dev/null || die "no $base image and no mmdebstrap to make one"
  say "making $base with mmdebstrap (no registry needed)"
  t=$SECONDS
  tar=$(mktemp "${TMPDIR:-/tmp}/bookworm.XXXXXX.tar")
  mmdebstrap --quiet --variant=minbase bookworm "$tar"
  podman import --quiet "$tar" "$base" >/dev/null
  rm -f "$tar"
  say "$base made in $((SECONDS - t)) s"
fi

# cross names its image cross-custom-<workspace dir>:<target>-<hash> and
# labels it with the workspace root.
if [ -n "$clean" ]; then
  say "--clean: removing this workspace's cross images and $out/$target"
  podman images -q --filter "label=org.cross-rs.workspace_root=$root" \
    --filter "label=org.cross-rs.for-cross-target=$target" | sort -u |
    while read -r id; do podman rmi -f "$id" >/dev/null; done
  rm -rf "${out:?}/$target"
fi

# cross 0.2.5 looks for the toolchain in `rustup toolchain list` by name, but
# rustup >= 1.28 writes the default one as "NAME (active, default)", which it
# does not strip: it then runs `rustup toolchain install NAME` (an update of
# stable) on every build, which fails where newer components cannot be
# downloaded. A toolchain named on the command line (`cross +NAME`) that is
# not the active one is listed bare: the installed version's own name, or
# else an alias of the active toolchain. cross looks for `+NAME` as
# NAME-<host> in the list and cargo (for `cargo metadata`) as NAME, so the
# alias gets both names.
host=$(rustc -vV | sed -n 's/^host: //p')
version=$(rustc -V | cut -d' ' -f2)
toolchains=$(rustup toolchain list)
if grep -qx "$version-$host" <<<"$toolchains"; then
  toolchain=$version
else
  toolchain=edgestream
  for name in "$toolchain" "$toolchain-$host"; do
    grep -qx "$name" <<<"$toolchains" ||
      rustup toolchain link "$name" "$(rustc --print sysroot)"
  done
fi
say "toolchain +$toolchain ($(rustc "+$toolchain" -V))"
# rustup's target and component commands refuse linked toolchains: the alias
# is the active toolchain, so ask about that one.
ru() { if [ "$toolchain" = "$version" ]; then rustup "+$toolchain" "$@"; else rustup "$@"; fi; }

# std for the target: rustup's, or built from source.
cross_env=()
cargo_args=("${feature_args[@]}")
if ! grep -qx "$target" <<<"$(ru target list --installed 2>/dev/null || true)" &&
  ! ru target add "$target" >/dev/null 2>&1; then
  say "no rust-std download for $target: building std from source (-Zbuild-std)"
  grep -q '^rust-src' <<<"$(ru component list --installed 2>/dev/null || true)" ||
    ru component add rust-src
  # CROSS_CUSTOM_TOOLCHAIN: cross would otherwise run `rustup target add`
  # itself and stop at its 404. RUSTC_BOOTSTRAP reaches the container through
  # Cross.toml's passthrough list.
  cross_env+=(CROSS_CUSTOM_TOOLCHAIN=1 RUSTC_BOOTSTRAP=1)
  cargo_args+=(-Zbuild-std=std,panic_abort)
fi

opts=${CROSS_CONTAINER_OPTS:-}
for ca in "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [ -n "$ca" ] && [ -f "$ca" ]; then
    opts="${opts:+$opts }-v $ca:/etc/ssl/certs/ca-certificates.crt:ro"
    break
  fi
done
cross_env+=("CROSS_CONTAINER_OPTS=$opts" "CARGO_TARGET_DIR=$out/$target")

# -v makes cross print its podman build and podman run commands (and cargo
# its rustc lines): the time the run starts ends the image build.
cmd=(cross "+$toolchain" build -v --release --target "$target" "${cargo_args[@]}")
say "running: ${cross_env[*]} ${cmd[*]}"
say "log: $log"
t0=$SECONDS
image_ready=
set +e
env "${cross_env[@]}" nice -n "${NICE:-10}" "${cmd[@]}" 2>&1 |
  while IFS= read -r line; do
    printf '%5d %s\n' $((SECONDS - t0)) "$line"
  done >"$log"
status=${PIPESTATUS[0]}
set -e
total=$((SECONDS - t0))
if [ "$status" -ne 0 ]; then
  grep -v -E '^ *[0-9]+ +(Running|Compiling|Fresh) ' "$log" | tail -40 >&2
  die "cross build failed (exit $status) after $total s; full log: $log"
fi
image_ready=$(grep -m1 -E '^ *[0-9]+ \+ [^ ]*podman run ' "$log" | awk '{print $1}')
image_ready=${image_ready:-0}
bin=$out/$target/$target/release/edgestream
size=$(stat -c %s "$bin")
say "image build (or reuse): $image_ready s; cargo build in the container: $((total - image_ready)) s; cross total: $total s"
say "binary: $bin, $size bytes ($((size / 1024)) KiB), budget $((budget / 1024)) KiB"
info=$(file -b "$bin")
say "file: $info"
[ "$size" -le "$budget" ] || die "$size bytes is over the $((budget / 1048576)) MiB budget"
case "$info" in *"statically linked"*) ;; *) die "not a static binary: $info" ;; esac
case "$info" in *stripped*) ;; *) die "not stripped: $info" ;; esac

# Under qemu-user on a Pi's CPU (armel: a Pi Zero's ARM1176, as tests/arm.rs
# does with CI's binary; armv7: a Pi 2's Cortex-A7; aarch64: a Pi 3's A53).
case "$target" in
  arm-unknown-linux-gnueabi) qemu=(qemu-arm -cpu arm1176) ;;
  armv7-unknown-linux-gnueabihf) qemu=(qemu-arm -cpu cortex-a7) ;;
  aarch64-unknown-linux-gnu) qemu=(qemu-aarch64 -cpu cortex-a53) ;;
esac
command -v "${qemu[0]}" >/dev/null || die "${qemu[0]} not found (apt-get install qemu-user)"
command -v ffprobe >/dev/null || die "ffprobe not found (apt-get install ffmpeg)"
port=$((20000 + RANDOM % 20000))
qlog=$out/$target.qemu.log
"${qemu[@]}" "$bin" --size 320x240 --fps 10 --rtsp "127.0.0.1:$port" \
  --log-level debug >"$qlog" 2>&1 &
qpid=$!
trap 'kill "$qpid" 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  grep -q "streaming .* at rtsp://" "$qlog" && break
  kill -0 "$qpid" 2>/dev/null || { cat "$qlog" >&2; die "edgestream exited under ${qemu[*]}"; }
  sleep 1
done
grep -q "streaming .* at rtsp://" "$qlog" || { cat "$qlog" >&2; die "no stream after 120 s under ${qemu[*]}"; }
if [ "$target" = arm-unknown-linux-gnueabi ]; then
  grep -q "using cpu capabilities: ARMv6" "$qlog" && ! grep -q NEON "$qlog" ||
    die "x264 did not pick its ARMv6 code on arm1176: $(grep 'cpu capab' "$qlog")"
fi
say "${qemu[*]}: x264 $(grep -o 'using cpu capabilities: .*' "$qlog")"
probe=$(timeout 90 ffprobe -v error -rtsp_transport tcp -read_intervals %+5 -count_frames \
  -select_streams v:0 -show_entries stream=codec_name,profile,width,height,pix_fmt,nb_read_frames \
  -of compact=nk=0:p=0 "rtsp://127.0.0.1:$port/live") || die "ffprobe failed on the ${qemu[*]} stream"
say "ffprobe rtsp://127.0.0.1:$port/live (5 s): $probe"
frames=$(printf '%s\n' "$probe" | sed -n 's/.*nb_read_frames=\([0-9]*\).*/\1/p')
[ "${frames:-0}" -ge 20 ] || die "only ${frames:-0} frames in 5 s"
kill "$qpid" 2>/dev/null || true
wait "$qpid" 2>/dev/null || true
trap - EXIT
say "ok in $((SECONDS - started)) s"
