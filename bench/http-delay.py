#!/usr/bin/env python3
"""Capture-to-display delay of the page's live view, against ffmpeg's own
fMP4 over HTTP played by the same page in the same browser.

Run by bench/http-delay.sh (or alone: bench/http-delay.py BINARY).

edgestream: the test pattern at 640x480, 30 fps, 1000 kbit/s on a loopback
port; headless Chromium opens its page with `?report=URL`, and the page's
own script posts, per presented frame (requestVideoFrameCallback), the
wall-clock display time minus the frame's capture time (the stream's
`X-Edgestream-Epoch-Ms` plus the frame's media time).

reference: ffmpeg makes the same kind of picture (`testsrc2`, paced by
`-re`, written raw into a pipe), a second ffmpeg reads it, stamping each
frame with the wall clock as it reads it (`-use_wallclock_as_timestamps`),
encodes it with libx264 at the same settings (ultrafast, zerolatency,
baseline, 1000 kbit/s) and serves it as fragmented MP4 over HTTP
(`-f mp4 -movflags frag_keyframe+empty_moov+default_base_moof+frag_every_frame
-listen 1`). A small proxy here serves the very same page (fetched from
edgestream) and passes ffmpeg's stream on under `/live.mp4`, adding the
epoch header from the input's start time that ffmpeg prints, so the page
measures both the same way. ffmpeg's input time base is 1/30 s, so each
reference sample carries up to +-17 ms of rounding (zero on average); the
proxy adds one loopback hop (TCP_NODELAY) to the reference.

Runs alternate (edgestream, reference) RUNS times, SECS seconds each,
measured from 2 s after the first frame. Prints per run and pooled: frames
per second presented, delay median and p95, and the ratios edgestream /
reference; with SECS of 120 or more also the first and the last minute's
median (growth over a long play). Figures only: it never passes or fails.
"""
import http.client
import http.server
import json
import os
import queue
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SIZE = "640x480"
FPS = 30
KBPS = 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=10.0):
    end = time.time() + limit
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


class Hub:
    """The report sink and, for the reference, the page and the proxy."""

    def __init__(self):
        self.reports = queue.Queue()
        self.page = b""
        self.upstream = None  # (port, epoch_ms) of the ffmpeg server
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                hub.reports.put(self.rfile.read(n).decode())
                self.send_response(204)
                self.end_headers()

            def do_GET(self):
                path = self.path.split("?")[0]
                if path == "/":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(hub.page)))
                    self.end_headers()
                    self.wfile.write(hub.page)
                elif path == "/live.mp4" and hub.upstream:
                    self.proxy(*hub.upstream)
                else:
                    self.send_error(404)

            def proxy(self, port, epoch_ms):
                up = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                # ffmpeg -listen serves one client: no probing connection.
                for _ in range(100):
                    try:
                        up.connect()
                        break
                    except ConnectionRefusedError:
                        time.sleep(0.05)
                up.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                up.request("GET", "/live.mp4")
                resp = up.getresponse()
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Edgestream-Epoch-Ms", str(epoch_ms))
                self.send_header("X-Edgestream-Codec", "avc1.42c01e")
                self.end_headers()
                try:
                    while True:
                        data = resp.read1(65536)
                        if not data:
                            break
                        self.wfile.write(data)
                except OSError:
                    pass
                up.close()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def chromium(url, tmp):
    return subprocess.Popen(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
         "--autoplay-policy=no-user-gesture-required",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--mute-audio",
         f"--user-data-dir={tmp}", url],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


def play(hub, url, secs, tmp):
    """Opens `url` in Chromium; returns (frames/s, delays in ms)."""
    while not hub.reports.empty():
        hub.reports.get()
    dirname = tempfile.mkdtemp(dir=tmp)
    browser = chromium(url, dirname)
    try:
        first = start = None
        delays = []
        timed = []
        end = time.time() + secs + 30
        while time.time() < end:
            try:
                r = json.loads(hub.reports.get(timeout=15))
            except queue.Empty:
                raise SystemExit(f"no report from the page at {url}")
            t = r["t"] / 1000.0
            first = first or r.get("first_frame_ms")
            if not first:
                continue
            if start is None:
                if t >= first / 1000.0 + 2.0:
                    start = (t, r["frames"])
                continue
            delays.extend(r["delays"])
            timed.extend((t - start[0], d) for d in r["delays"])
            if t - start[0] >= secs:
                if secs >= 120:
                    a = [d for at, d in timed if at < 60]
                    b = [d for at, d in timed if at >= t - start[0] - 60]
                    print(f"  {url}: delay median first minute {statistics.median(a):.1f} ms "
                          f"({len(a)} frames), last minute {statistics.median(b):.1f} ms "
                          f"({len(b)} frames), {r['frames'] - start[1]} frames presented",
                          flush=True)
                return (r["frames"] - start[1]) / (t - start[0]), delays
        raise SystemExit(f"the page at {url} did not play")
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(dirname, ignore_errors=True)


def pct(v, p):
    v = sorted(v)
    return v[round((len(v) - 1) * p)]


def reference(hub, tmp):
    """Starts the ffmpeg pair; returns their processes once the server
    waits for its one client (the proxy)."""
    port = free_port()
    log = open(os.path.join(tmp, "ffmpeg.log"), "w+")
    src = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
         "-i", f"testsrc2=size={SIZE}:rate={FPS}", "-pix_fmt", "yuv420p",
         "-f", "rawvideo", "-"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    enc = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostats", "-use_wallclock_as_timestamps", "1",
         "-probesize", "32", "-analyzeduration", "0",
         "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", SIZE, "-framerate", str(FPS),
         "-i", "-", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
         "-profile:v", "baseline", "-g", str(2 * FPS), "-b:v", f"{KBPS}k",
         "-fps_mode", "passthrough", "-f", "mp4",
         "-movflags", "frag_keyframe+empty_moov+default_base_moof+frag_every_frame",
         "-flush_packets", "1", "-listen", "1", f"http://127.0.0.1:{port}/live.mp4"],
        stdin=src.stdout, stdout=subprocess.DEVNULL, stderr=log)
    src.stdout.close()
    end = time.time() + 10
    while time.time() < end:
        log.seek(0)
        m = re.search(r"start: (\d+\.\d+)", log.read())
        if m:
            hub.upstream = (port, round(float(m.group(1)) * 1000))
            return [enc, src]
        time.sleep(0.05)
    raise SystemExit("ffmpeg printed no input start time")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/edgestream"
    secs = float(os.environ.get("SECS", "20"))
    runs = int(os.environ.get("RUNS", "2"))
    tmp = tempfile.mkdtemp(prefix="http-delay-")
    hub = Hub()
    report = f"http://127.0.0.1:{hub.port}/report"
    port = free_port()
    es = subprocess.Popen(
        [binary, "--rtsp", "off", "--http", f"127.0.0.1:{port}", "--size", SIZE,
         "--fps", str(FPS), "--bitrate", str(KBPS)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(tmp, "edgestream.log"), "w"))
    procs = [es]
    try:
        wait_port(port)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        hub.page = conn.getresponse().read()
        pooled = {"edgestream": [], "reference": []}
        rates = {"edgestream": [], "reference": []}
        for run in range(runs):
            for who in ("edgestream", "reference"):
                if who == "edgestream":
                    url = f"http://127.0.0.1:{port}/?report={report}"
                else:
                    ref = reference(hub, tmp)
                    procs.extend(ref)
                    url = f"http://127.0.0.1:{hub.port}/?report={report}"
                rate, d = play(hub, url, secs, tmp)
                if who == "reference":
                    for p in ref:
                        p.kill()
                        p.wait()
                pooled[who].extend(d)
                rates[who].append(rate)
                print(f"run {run + 1} {who:10}: {rate:5.2f} frames/s, delay median "
                      f"{statistics.median(d):6.1f} ms, p95 {pct(d, 0.95):6.1f} ms "
                      f"({len(d)} frames)", flush=True)
        e, r = pooled["edgestream"], pooled["reference"]
        print(f"all  edgestream: median {statistics.median(e):.1f} ms, p95 {pct(e, 0.95):.1f} ms, "
              f"{statistics.mean(rates['edgestream']):.2f} frames/s")
        print(f"all  reference : median {statistics.median(r):.1f} ms, p95 {pct(r, 0.95):.1f} ms, "
              f"{statistics.mean(rates['reference']):.2f} frames/s")
        print(f"ratio edgestream/reference: median {statistics.median(e) / statistics.median(r):.2f}, "
              f"p95 {pct(e, 0.95) / pct(r, 0.95):.2f}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        hub.server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
