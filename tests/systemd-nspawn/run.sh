#!/usr/bin/env bash
# run.sh [EDGESTREAM_BINARY]
#
# systemd/edgestream.service under a real systemd: boots the host's own
# systemd (Debian 12: 252) in a container with systemd-nspawn (package
# systemd-container), on a throwaway root (a copy of /etc, the host's /usr
# under an overlay that adds the binary as /usr/local/bin/edgestream, a
# private network), and checks that
#   - the service becomes active via READY=1 and shows the stats line
#     as its status, with the watchdog being fed;
#   - it runs as the edgestream user in group video, with no capabilities,
#     no_new_privs and a seccomp filter, and ffprobe decodes its stream;
#   - SIGTERM (systemctl stop) ends it cleanly;
#   - a source whose read hangs (a .y4m through a named pipe whose writer
#     stops: a wedged capture loop) makes systemd kill it on the watchdog (WatchdogSec=6s in a drop-in here) and
#     restart it.
# Manual (needs root and systemd-nspawn; about four minutes), not part of .ci/run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "${1:-$here/../../target/debug/edgestream}")
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root" >&2; exit 2; }
command -v systemd-nspawn >/dev/null || { echo "run.sh: apt-get install systemd-container" >&2; exit 2; }
command -v ffprobe >/dev/null || { echo "run.sh: apt-get install ffmpeg" >&2; exit 2; }

failed=0
check() {  # description, then a command
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failed=1; fi
}

work=$(mktemp -d /tmp/edgestream-nspawn.XXXXXX)
root=$work/root
nspawn_pid=
cleanup() {
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    # SIGTERM asks the container to power off; SIGKILL if it does not.
    kill "$nspawn_pid"
    for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$nspawn_pid" 2>/dev/null
    wait "$nspawn_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The root: /etc copied, /usr from the host (overlay), merged-/usr links.
mkdir -p "$root"/{proc,sys,dev,run,tmp,var/tmp,root,usr/lib} "$work/upper/local/bin"
for l in bin lib lib64 sbin; do [ -L "/$l" ] && ln -s "$(readlink "/$l")" "$root/$l"; done
cp -a /etc "$root/etc"
cp /usr/lib/os-release "$root/usr/lib/"
cp "$bin" "$work/upper/local/bin/edgestream"
echo "edgestream:x:990:990:edgestream:/nonexistent:/usr/sbin/nologin" >>"$root/etc/passwd"
echo "edgestream:x:990:" >>"$root/etc/group"
echo "edgestream:!:19000::::::" >>"$root/etc/shadow"
sed -i -E 's/^(video:x:[0-9]+:)$/\1edgestream/; t; s/^(video:x:[0-9]+:.+)$/\1,edgestream/' "$root/etc/group"
install -m644 "$here/../../systemd/edgestream.service" "$root/etc/systemd/system/"
mkdir -p "$root/etc/edgestream"
printf 'source = "testsrc"\nsize = "320x240"\nfps = 10\nrtsp = "127.0.0.1:8554"\n' \
  >"$root/etc/edgestream/edgestream.toml"
printf '[Unit]\nDescription=edgestream test\nRequires=edgestream.service\nAfter=edgestream.service\n' \
  >"$root/etc/systemd/system/estest.target"
rm -f "$root/etc/machine-id"

systemd-nspawn -D "$root" --overlay="/usr:$work/upper:/usr" --private-network \
  --register=no --keep-unit --console=pipe -b -- systemd.unit=estest.target \
  systemd.mask=systemd-networkd-wait-online.service >"$work/boot.log" 2>&1 &
nspawn_pid=$!

# The container's systemd: the child of systemd-nspawn.
pid=
for _ in $(seq 100); do
  pid=$(pgrep -P "$nspawn_pid" -f 'systemd.unit=estest.target' | head -1)
  [ -n "$pid" ] && break
  sleep 0.2
done
[ -n "$pid" ] || { cat "$work/boot.log"; echo "FAIL: the container did not boot"; exit 1; }
inside() { nsenter -t "$pid" -a "$@"; }
prop() { inside systemctl show edgestream -p "$1" --value 2>/dev/null; }

for _ in $(seq 120); do [ "$(prop ActiveState)" = active ] && break; sleep 0.5; done
check "active (READY=1 received)" [ "$(prop ActiveState)" = active ]
sleep 12
status=$(prop StatusText)
echo "status: $status"
check "STATUS= is the stats line" grep -q " fps, encode " <<<"$status"
check "the watchdog is fed" [ -n "$(prop WatchdogTimestamp)" ]
main=$(prop MainPID)
creds=$(inside cat "/proc/$main/status")
video=$(getent group video | cut -d: -f3)
check "runs as uid 990 in group video" grep -Eq "^Uid:\s+990\s" <<<"$creds"
check "in group video ($video)" grep -Eq "^Groups:.*\b$video\b" <<<"$creds"
check "no capabilities" grep -Eq "^CapEff:\s+0+$" <<<"$creds"
check "no_new_privs" grep -Eq "^NoNewPrivs:\s+1$" <<<"$creds"
check "seccomp filter" grep -Eq "^Seccomp:\s+2$" <<<"$creds"
probe=$(timeout 30 nsenter -t "$pid" -n ffprobe -v error -rtsp_transport tcp \
  -show_entries stream=codec_name,width,height -of csv=p=0 rtsp://127.0.0.1:8554/live)
check "ffprobe decodes the stream ($probe)" [ "$probe" = "h264,320,240" ]
inside systemctl stop edgestream
check "systemctl stop: clean exit" [ "$(prop Result)" = success ]

# A source that stalls: a .y4m through a named pipe, 4 s of frames, then none.
cr=/proc/$pid/root
mkdir -p "$cr/run/estest" "$cr/etc/systemd/system/edgestream.service.d"
mkfifo -m 666 "$cr/run/estest/cam.y4m"
printf '[Service]\nWatchdogSec=6s\n' >"$cr/etc/systemd/system/edgestream.service.d/test.conf"
printf 'source = "/run/estest/cam.y4m"\nrtsp = "127.0.0.1:8554"\npace = "asap"\n' \
  >"$cr/etc/edgestream/edgestream.toml"
inside systemctl daemon-reload
inside systemctl start --no-block edgestream
python3 - "$cr/run/estest/cam.y4m" <<'EOF' &
import sys, time
f = open(sys.argv[1], "wb")
f.write(b"YUV4MPEG2 W160 H120 F10:1 Ip C420jpeg\n")
for i in range(40):
    f.write(b"FRAME\n" + bytes((j + i * 7) & 255 for j in range(160 * 120 * 3 // 2)))
    f.flush()
    time.sleep(0.1)
time.sleep(30)
EOF
writer=$!
for _ in $(seq 60); do [ "$(prop NRestarts)" -ge 1 ] 2>/dev/null && break; sleep 0.5; done
journal=$(inside journalctl -u edgestream --no-pager -o cat)
check "edgestream logs the stall" grep -q "watchdog: the capture loop made no progress" <<<"$journal"
check "systemd kills it on the watchdog" grep -q "Watchdog timeout (limit 6s)" <<<"$journal"
check "and restarts it" [ "$(prop NRestarts)" -ge 1 ]
kill "$writer" 2>/dev/null

# No camera at all, for ABSENT_SECS (default 180): READY at once, the
# watchdog (6 s here) fed all along, no restart, STATUS= says why.
inside systemctl stop edgestream
printf 'source = "/dev/video0"\nrtsp = "127.0.0.1:8554"\nsize = "320x240"\n' \
  >"$cr/etc/edgestream/edgestream.toml"
inside systemctl reset-failed edgestream 2>/dev/null
inside systemctl start edgestream
restarts0=$(prop NRestarts)
check "no camera: active at once" [ "$(prop ActiveState)" = active ]
absent=${ABSENT_SECS:-180}
echo "no camera: waiting $absent s"
sleep "$absent"
status=$(prop StatusText)
echo "no camera: status after $absent s: $status"
check "no camera: still active" [ "$(prop ActiveState)" = active ]
check "no camera: no restart in $absent s" [ "$(prop NRestarts)" = "$restarts0" ]
check "no camera: STATUS= says so" grep -q "is not there, retrying in" <<<"$status"
probe=$(timeout 30 nsenter -t "$pid" -n ffprobe -v error -rtsp_transport tcp \
  -show_entries stream=codec_name,width,height -of csv=p=0 rtsp://127.0.0.1:8554/live)
check "no camera: ffprobe decodes the slate ($probe)" [ "$probe" = "h264,320,240" ]
inside systemctl poweroff 2>/dev/null
wait "$nspawn_pid" 2>/dev/null
nspawn_pid=
if [ $failed = 0 ]; then echo PASS; else echo FAILED; fi
exit $failed
