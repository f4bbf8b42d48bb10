#!/bin/sh
# install.sh - install edgestream as a systemd service on the device.
#
#   sudo ./install.sh [--no-start] [--destdir DIR] BINARY [PROFILE]
#
# BINARY   the edgestream binary for this board (e.g. the static armel build)
# PROFILE  a config file to start from (board/rpi-zero.toml, ...); default:
#          keep the existing /etc/edgestream/edgestream.toml, or, if there is
#          none, write the built-in defaults (test pattern) there.
#
# Installs
#   /usr/local/bin/edgestream                   (0755)
#   /etc/systemd/system/edgestream.service      (0644)
#   /etc/edgestream/edgestream.toml             (0644; an existing one is kept
#                                                and PROFILE goes beside it as
#                                                edgestream.toml.new)
#   /etc/edgestream/users, if there is one       (made 0600 edgestream:edgestream,
#                                                for rtsp-users-file = "users")
# creates the system user `edgestream` in the groups that own cameras (video)
# and, where it exists, GPIO chips (gpio, on Raspberry Pi OS), then enables
# and starts the service (not with --no-start).
#
# --destdir DIR  install under DIR instead of / (packaging, tests): no user,
#                no systemctl.
#
# The unit file is taken from beside this script (edgestream.service) or from
# the source tree (../systemd/edgestream.service).
set -eu

prog=install.sh
die() { echo "$prog: $*" >&2; exit 1; }

destdir=
start=1
while [ $# -gt 0 ]; do
  case "$1" in
    --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; destdir=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $prog [--no-start] [--destdir DIR] BINARY [PROFILE]"
bin=$1
profile=${2:-}

here=$(cd "$(dirname "$0")" && pwd)
unit=
for u in "$here/edgestream.service" "$here/../systemd/edgestream.service"; do
  if [ -f "$u" ]; then unit=$u; break; fi
done
[ -n "$unit" ] || die "edgestream.service not found beside $0 or in ../systemd/"
[ -f "$bin" ] || die "$bin: no such file"
[ -z "$profile" ] || [ -f "$profile" ] || die "$profile: no such file"
if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
  die "run it as root (sudo), or give --destdir"
fi

# Check the profile with the binary itself when it runs here (on the board
# it does; in a --destdir build on another machine it may not).
if "$bin" --version >/dev/null 2>&1; then
  if [ -n "$profile" ]; then
    "$bin" --config "$profile" --print-config >/dev/null || die "$profile is not a valid config (see above)"
  fi
else
  echo "$prog: note: $bin does not run on this machine; config not checked"
fi

etc="$destdir/etc/edgestream"
mkdir -p "$destdir/usr/local/bin" "$destdir/etc/systemd/system" "$etc"
install -m 0755 "$bin" "$destdir/usr/local/bin/edgestream"
install -m 0644 "$unit" "$destdir/etc/systemd/system/edgestream.service"
cfg="$etc/edgestream.toml"
if [ -e "$cfg" ]; then
  if [ -n "$profile" ] && ! cmp -s "$profile" "$cfg"; then
    install -m 0644 "$profile" "$cfg.new"
    echo "$prog: kept your $cfg; the profile is beside it as $cfg.new"
  fi
elif [ -n "$profile" ]; then
  install -m 0644 "$profile" "$cfg"
else
  "$bin" --print-config >"$cfg" || die "cannot write the default config"
  chmod 0644 "$cfg"
fi
echo "$prog: installed $destdir/usr/local/bin/edgestream, $destdir/etc/systemd/system/edgestream.service and $cfg"

if [ -n "$destdir" ]; then
  exit 0
fi

if ! id edgestream >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --comment "edgestream camera streamer" edgestream
  echo "$prog: created the system user edgestream"
fi
for g in video gpio; do
  if getent group "$g" >/dev/null; then
    usermod -a -G "$g" edgestream
  fi
done
echo "$prog: edgestream is in the groups: $(id -nG edgestream)"
# An RTSP users file (rtsp-users-file = "users"): systemd starts edgestream as
# the edgestream user, which must be able to read it; nobody else may.
if [ -f "$etc/users" ]; then
  chown edgestream:edgestream "$etc/users"
  chmod 0600 "$etc/users"
  echo "$prog: $etc/users is 0600 edgestream:edgestream"
fi

systemctl daemon-reload
if [ "$start" = 1 ]; then
  systemctl enable edgestream.service
  systemctl restart edgestream.service
  echo "$prog: started; follow it with: journalctl -u edgestream -f"
else
  echo "$prog: start it with: sudo systemctl enable --now edgestream"
fi
