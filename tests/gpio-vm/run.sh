#!/usr/bin/env bash
# run.sh [EDGESTREAM_BINARY]
#
# The status LED and privacy button on a real kernel GPIO chip, through the
# GPIO character device, in the vivid VM (/work/shared/tools/vivid-vm.sh,
# a QEMU VM with Debian's amd64 kernel). That kernel is built without
# gpio-sim and gpio-mockup, so es_gpio_sim.c here is a 32-line simulated
# chip with debugfs files to read output levels and set input levels; it is
# built against the VM kernel's headers (linux-headers-<release>).
# Manual, not part of .ci/run: it needs those headers and the VM tool.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target/debug/edgestream}
vm=${VIVID_VM:-/work/shared/tools/vivid-vm.sh}
info=$(ls "${VIVID_VM_CACHE:-$HOME/.cache/vivid-vm}"/*/info 2>/dev/null | head -1) || true
release=$(sed -n 's/^kernel_release=//p' "$info" 2>/dev/null || true)
[ -n "$release" ] || { echo "run.sh: no vivid-vm image yet; run $vm once" >&2; exit 2; }
headers=/usr/src/linux-headers-$release
[ -d "$headers" ] || { echo "run.sh: $headers missing: apt-get install linux-headers-$release" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/es_gpio_sim.c" "$here/Kbuild" "$work/"
make -s -C "$headers" M="$work" modules >/dev/null
"$vm" --file "$work/es_gpio_sim.ko:/payload/es_gpio_sim.ko" --file "$bin:/payload/edgestream" \
  -- "$here/guest.sh" | grep --line-buffered -E "GPIOTEST|vivid-vm: (ERROR|program)"
