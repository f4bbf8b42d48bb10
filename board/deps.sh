#!/bin/sh
# deps.sh TARGET: the Debian packages needed to cross-build edgestream for a
# Rust TARGET (one per line). Used by board/Dockerfile and .ci/run, so the
# cross image and CI install the same things.
set -eu
case "${1:-}" in
  arm-unknown-linux-gnueabi)     cross="gcc-arm-linux-gnueabi libc6-dev-armel-cross" ;;
  armv7-unknown-linux-gnueabihf) cross="gcc-arm-linux-gnueabihf libc6-dev-armhf-cross" ;;
  aarch64-unknown-linux-gnu)     cross="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
  *) echo "usage: $0 arm-unknown-linux-gnueabi|armv7-unknown-linux-gnueabihf|aarch64-unknown-linux-gnu" >&2; exit 2 ;;
esac
# Host gcc and libc6-dev: build scripts and proc macros are built for the host.
# libclang-dev: bindgen (x264-sys). make, dpkg-dev, ca-certificates:
# build-x264.sh fetches and unpacks Debian's x264 source and builds it.
for p in $cross gcc libc6-dev pkg-config libclang-dev make dpkg-dev ca-certificates; do
  echo "$p"
done
