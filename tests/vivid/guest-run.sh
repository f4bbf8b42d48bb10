#!/bin/sh
# Runs inside the vivid VM (tests/vivid.rs): starts edgestream with the given
# arguments in the background, then runs the command files the host test
# drops into the shared directory (/mnt/host/cmd-*.sh), one at a time, so the
# host decides when to unplug the camera, stall it or press privacy.
# Each command's output goes to <file>.out, then the file is renamed .done.
# Exits with edgestream's status.
/payload/edgestream "$@" &
pid=$!
echo "$pid" >/tmp/edgestream.pid
echo "guest-run: edgestream pid $pid"
while kill -0 "$pid" 2>/dev/null; do
    for f in /mnt/host/cmd-*.sh; do
        [ -e "$f" ] || continue
        sh "$f" >"$f.out" 2>&1
        echo "rc=$?" >>"$f.out"
        mv "$f" "${f%.sh}.done"
        echo "guest-run: ran ${f##*/}"
    done
    sleep 0.1
done
wait "$pid"
