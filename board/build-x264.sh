#!/usr/bin/env bash
# build-x264.sh TARGET PREFIX
#
# Builds a static, position-independent libx264 for a Rust TARGET from
# Debian's own x264 source package (the same x264 0.164 as Debian's
# libx264-dev), and installs it under PREFIX (lib/libx264.a, include/,
# lib/pkgconfig/x264.pc).
#
# Why not Debian's libx264-dev:armel/armhf: its libx264.a is built for ARMv7
# with NEON and non-PIC assembly, so a Pi Zero / Pi 1 (ARMv6) dies with
# SIGILL, and installing it pulls a libc6:armel that conflicts with the cross
# toolchain. See board/README.md.
#
# Used by board/Dockerfile (the cross image) and by .ci/run (no Docker), so
# the two build the same library. 8-bit only: edgestream encodes 8-bit 4:2:0,
# and leaving out x264's 10-bit copy of itself halves the library. Idempotent: if PREFIX already holds a build
# made by this version of the script for this TARGET, it does nothing.
#
# Needs: the cross gcc for TARGET (gcc-arm-linux-gnueabi, ...), make,
# dpkg-dev (dpkg-source), apt with network access to a Debian mirror.
# The x264 source is fetched with a private apt list (deb-src derived from the
# system's deb822 sources), so the system's apt configuration is not changed.
#
# Environment:
#   X264_SOURCE_DIR  use this unpacked x264 source tree instead of fetching
#   JOBS             make -j (default: number of CPUs)
set -Eeuo pipefail

usage() { echo "usage: $0 TARGET PREFIX   (TARGET: arm-unknown-linux-gnueabi, armv7-unknown-linux-gnueabihf, aarch64-unknown-linux-gnu)" >&2; exit 2; }
[ $# -eq 2 ] || usage
target=$1
prefix=$2

# The cross compiler and the CPU baseline for each target.
case "$target" in
  arm-unknown-linux-gnueabi)
    # Every Raspberry Pi: ARMv6 (Pi Zero/1) with VFP, soft-float ABI.
    # x264 picks its NEON code at run time on ARMv7+ CPUs.
    host=arm-linux-gnueabi
    cflags="-march=armv6 -mfpu=vfp -mfloat-abi=softfp" ;;
  armv7-unknown-linux-gnueabihf)
    # Pi 2 and later running 32-bit Raspberry Pi OS.
    host=arm-linux-gnueabihf
    cflags="-march=armv7-a -mfpu=vfpv3-d16 -mfloat-abi=hard" ;;
  aarch64-unknown-linux-gnu)
    host=aarch64-linux-gnu
    cflags="" ;;
  *) echo "$0: unknown target $target" >&2; usage ;;
esac

case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac
here=$(cd "$(dirname "$0")" && pwd)
stamp="$prefix/.edgestream-x264-stamp"
want="$target $(sha256sum "$here/build-x264.sh" | cut -c1-16)"
if [ -f "$prefix/lib/libx264.a" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "build-x264: $prefix is up to date for $target"
  exit 0
fi

cc="$host-gcc"
command -v "$cc" >/dev/null || {
  echo "$0: $cc not found; install gcc-$host (and libc6-dev-*-cross)" >&2
  exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/build-x264.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "${X264_SOURCE_DIR:-}" ]; then
  src=$X264_SOURCE_DIR
else
  # A private apt state with deb-src entries for the system's own mirrors.
  apt="$work/apt"
  mkdir -p "$apt/parts" "$apt/lists/partial" "$apt/cache/archives/partial" "$work/dl"
  : >"$apt/sources.list"
  found=
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$apt/parts/$(basename "$f")"
    found=1
  done
  if [ -f /etc/apt/sources.list ]; then
    sed -nE 's/^deb (.*)/deb-src \1/p' /etc/apt/sources.list >"$apt/sources.list"
    [ -s "$apt/sources.list" ] && found=1
  fi
  [ -n "$found" ] || { echo "$0: no apt sources found to derive deb-src from" >&2; exit 1; }
  aptopts=(-q -o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/parts"
           -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
           -o APT::Sandbox::User=root)
  echo "build-x264: fetching Debian's x264 source"
  apt-get "${aptopts[@]}" update >"$work/apt-update.log" 2>&1 || {
    cat "$work/apt-update.log" >&2; exit 1; }
  (cd "$work/dl" && apt-get "${aptopts[@]}" source --download-only x264 >"$work/apt-source.log" 2>&1) || {
    cat "$work/apt-source.log" >&2; exit 1; }
  dsc=$(echo "$work"/dl/x264_*.dsc)
  echo "build-x264: $(basename "$dsc")"
  # Unpacks the upstream tarball and applies Debian's patches.
  dpkg-source --no-check -x "$dsc" "$work/x264" >/dev/null
  src=$work/x264
fi

build="$work/build"
mkdir -p "$build"
cd "$build"
cross=(--host="$host" --cross-prefix="$host-")
echo "build-x264: configure ${cross[*]} --prefix=$prefix --enable-static --enable-pic --bit-depth=8 --extra-cflags=\"$cflags\""
"$src/configure" "${cross[@]}" --prefix="$prefix" \
  --enable-static --enable-pic --disable-cli --disable-opencl --bit-depth=8 \
  --extra-cflags="$cflags" >"$work/configure.log" 2>&1 || {
    cat "$work/configure.log" >&2; [ -f config.log ] && tail -40 config.log >&2; exit 1; }
grep -E '^(platform|asm|pic|bit depth):' "$work/configure.log" | sed 's/^/build-x264:   /' || true
make -j"${JOBS:-$(nproc)}" >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }
make install-lib-static >/dev/null
echo "$want" >"$stamp"
echo "build-x264: installed $prefix/lib/libx264.a ($(stat -c %s "$prefix/lib/libx264.a") bytes)"
