#!/usr/bin/env python3
"""Join storm and many-viewer figures for edgestream's RTSP server.

Run by bench/encode.sh (or alone: bench/storm.py BINARY). Starts edgestream
on the test pattern (640x480 at 30 fps, 1000 kbit/s) on a loopback port and
plays it with raw RTSP clients (RTP interleaved over TCP), so every byte and
every arrival time is seen as it comes off the socket.

storm: one steady viewer watches; after 6 s, ten clients join 300 ms apart
(PLAY with a `Range: npt=0.000-` header, then without). Prints, per
`--keyframe-burst` value: PLAY -> first IDR packet (median, max), how far
behind live each joiner's first picture is (the span of stream time it got
in the first 30 ms: a backlog sent at once), and the steady viewer's
bitrate and mean slice QP during the storm against the 6 s before.

viewers: the process's CPU with 1 viewer, then with 1 + 16, split into the
capture-encode thread (and x264's, which inherit its name) and the rest.

Figures only: it never passes or fails on a time.
"""
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

CLK = 90000.0


class BitReader:
    def __init__(self, data):
        # Emulation prevention bytes out.
        self.b = re.sub(b"\x00\x00\x03", b"\x00\x00", data)
        self.pos = 0

    def u(self, n):
        v = 0
        for _ in range(n):
            byte = self.b[self.pos >> 3] if (self.pos >> 3) < len(self.b) else 0
            v = (v << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self):
        z = 0
        while self.u(1) == 0 and z < 32:
            z += 1
        return (1 << z) - 1 + self.u(z)

    def se(self):
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


class H264State:
    """Just enough SPS/PPS to read slice_qp_delta (baseline, CAVLC)."""

    def __init__(self):
        self.sps = None
        self.pic_init_qp = None

    def nal(self, nal):
        t = nal[0] & 0x1F
        r = BitReader(nal[1:])
        try:
            if t == 7:
                profile = r.u(8)
                r.u(16)
                r.ue()
                if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128):
                    return None  # not baseline: no QP figures
                log2_fn = r.ue() + 4
                poc_type = r.ue()
                log2_poc = r.ue() + 4 if poc_type == 0 else None
                self.sps = (log2_fn, poc_type, log2_poc)
            elif t == 8:
                r.ue()
                r.ue()
                r.u(1)
                r.u(1)
                if r.ue() != 0:
                    return None
                r.ue()
                r.ue()
                r.u(1)
                r.u(2)
                self.pic_init_qp = 26 + r.se()
            elif t in (1, 5) and self.sps and self.pic_init_qp is not None:
                log2_fn, poc_type, log2_poc = self.sps
                r.ue()
                slice_type = r.ue() % 5
                r.ue()
                r.u(log2_fn)
                if t == 5:
                    r.ue()
                if poc_type == 0:
                    r.u(log2_poc)
                if slice_type == 0:  # P
                    if r.u(1):
                        r.ue()
                    if r.u(1):
                        while r.ue() != 3:
                            r.ue()
                if t == 5:
                    r.u(2)
                elif nal[0] & 0x60:
                    if r.u(1):
                        while True:
                            op = r.ue()
                            if op == 0:
                                break
                            if op in (1, 3):
                                r.ue()
                            if op in (2, 3, 6):
                                r.ue()
                            if op == 4:
                                r.ue()
                return self.pic_init_qp + r.se()
        except IndexError:
            return None
        return None


class Client(threading.Thread):
    """One raw RTSP viewer over TCP. Records (arrival, rtp ts, bytes, nal
    types, qp) per RTP packet."""

    def __init__(self, url, port, range_header=True, parse_qp=False):
        super().__init__(daemon=True)
        self.url, self.port, self.range_header = url, port, range_header
        self.parse_qp = parse_qp
        self.h264 = H264State()
        self.packets = []
        self.play_sent = None
        self.first_idr = None
        self.error = None
        self.stop = False

    def request(self, f, sock, method, url, cseq, extra=""):
        sock.sendall(f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n".encode())
        status = f.readline()
        headers = {}
        while True:
            line = f.readline().decode().strip()
            if not line:
                break
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        body = f.read(int(headers.get("content-length", 0)))
        if b" 200 " not in status:
            raise RuntimeError(f"{method}: {status!r}")
        return headers, body

    def run(self):
        try:
            self.session()
        except Exception as e:  # reported, not raised: a bench goes on
            if not self.stop:
                self.error = e

    def session(self):
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        f = sock.makefile("rb")
        h, sdp = self.request(f, sock, "DESCRIBE", self.url, 1, "Accept: application/sdp\r\n")
        control = self.url
        for line in sdp.decode().splitlines():
            if line.startswith("a=control:") and line[10:] != "*":
                c = line[10:]
                control = c if c.startswith("rtsp:") else h.get("content-base", self.url + "/").rstrip("/") + "/" + c
        h, _ = self.request(f, sock, "SETUP", control, 2,
                            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
        session = h["session"].split(";")[0]
        extra = f"Session: {session}\r\n" + ("Range: npt=0.000-\r\n" if self.range_header else "")
        self.play_sent = time.monotonic()
        self.request(f, sock, "PLAY", self.url, 3, extra)
        while not self.stop:
            head = f.read(4)
            if len(head) < 4:
                return
            if head[0] != 0x24:
                raise RuntimeError("not interleaved data")
            data = f.read(int.from_bytes(head[2:4], "big"))
            if head[1] != 0:
                continue
            now = time.monotonic()
            cc = data[0] & 0x0F
            ts = int.from_bytes(data[4:8], "big")
            payload = data[12 + 4 * cc:]
            kind = payload[0] & 0x1F
            nals = []
            if kind == 28:  # FU-A
                if payload[1] & 0x80:
                    nals.append(bytes([(payload[0] & 0xE0) | (payload[1] & 0x1F)]) + payload[2:])
            elif kind == 24:  # STAP-A
                i = 1
                while i + 2 <= len(payload):
                    n = int.from_bytes(payload[i:i + 2], "big")
                    nals.append(payload[i + 2:i + 2 + n])
                    i += 2 + n
            else:
                nals.append(payload)
            types = {n[0] & 0x1F for n in nals if n}
            qp = None
            if self.parse_qp:
                for n in nals:
                    q = self.h264.nal(n)
                    if q is not None:
                        qp = q
            if self.first_idr is None and 5 in types:
                self.first_idr = (now, ts)
            self.packets.append((now, ts, len(data), types, qp))

    def close(self):
        self.stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def behind_live(self):
        """Stream time received within 30 ms of the first IDR packet: a
        backlog sent at once spans seconds, a live start one frame."""
        if not self.first_idr:
            return None
        t0, ts0 = self.first_idr
        span = max(((ts - ts0) & 0xFFFFFFFF) for (t, ts, _, _, _) in self.packets
                   if t0 <= t <= t0 + 0.030 and ((ts - ts0) & 0xFFFFFFFF) < 1 << 31)
        return span / CLK

    def window(self, a, b):
        pk = [p for p in self.packets if a <= p[0] < b]
        kbps = sum(p[2] for p in pk) * 8 / 1000 / max(b - a, 1e-3)
        qps = [p[4] for p in pk if p[4] is not None]
        idrs = len({p[1] for p in pk if 5 in p[3]})
        return kbps, (statistics.mean(qps) if qps else float("nan")), idrs


def start(binary, port, *extra):
    proc = subprocess.Popen(
        [binary, "--rtsp", f"127.0.0.1:{port}", "--size", "640x480", "--fps", "30",
         "--bitrate", "1000", "--max-connections-per-ip", "64", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("edgestream did not listen")


def storm(binary, port, burst, range_header):
    proc = start(binary, port, "--keyframe-burst", str(burst))
    url = f"rtsp://127.0.0.1:{port}/live"
    try:
        steady = Client(url, port, parse_qp=True)
        steady.start()
        time.sleep(6.5)
        t_storm = time.monotonic()
        joiners = []
        for _ in range(10):
            c = Client(url, port, range_header=range_header)
            c.start()
            joiners.append(c)
            time.sleep(0.3)
        t_end = time.monotonic()
        time.sleep(1.0)
        for c in joiners + [steady]:
            c.close()
        delays = [(c.first_idr[0] - c.play_sent) * 1e3 for c in joiners if c.first_idr]
        behind = [c.behind_live() * 1e3 for c in joiners if c.first_idr]
        before = steady.window(t_storm - 6.0, t_storm)
        during = steady.window(t_storm, t_end)
        return {
            "delays": delays,
            "missing": 10 - len(delays),
            "behind": behind,
            "before": before,
            "during": during,
            "errors": [str(c.error) for c in joiners + [steady] if c.error],
        }
    finally:
        proc.terminate()
        proc.wait()


def thread_cpu(pid):
    """(capture-encode threads, all others) CPU seconds of a process."""
    tick = os.sysconf("SC_CLK_TCK")
    enc = other = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        if name.startswith("capture-encode"):
            enc += cpu
        else:
            other += cpu
    return enc, other


def viewers(binary, port, extra_viewers=16, seconds=10.0):
    proc = start(binary, port)
    url = f"rtsp://127.0.0.1:{port}/live"
    try:
        steady = Client(url, port)
        steady.start()
        time.sleep(3)
        a = thread_cpu(proc.pid)
        time.sleep(seconds)
        b = thread_cpu(proc.pid)
        many = [Client(url, port) for _ in range(extra_viewers)]
        for c in many:
            c.start()
        time.sleep(3)
        c0 = thread_cpu(proc.pid)
        time.sleep(seconds)
        d = thread_cpu(proc.pid)
        got = sum(1 for c in many if c.first_idr)
        for c in many + [steady]:
            c.close()
        one = ((b[0] - a[0]) / seconds, (b[1] - a[1]) / seconds)
        lots = ((d[0] - c0[0]) / seconds, (d[1] - c0[1]) / seconds)
        return one, lots, got
    finally:
        proc.terminate()
        proc.wait()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/edgestream"
    bursts = [int(x) for x in os.environ.get("STORM_BURSTS", "2,0,100").split(",")]
    port = 18554 + os.getpid() % 1000
    print("join storm: 10 raw RTSP clients 300 ms apart beside a steady viewer "
          "(640x480@30, 1000 kbit/s, keyint 2 s)")
    print(f"{'burst':>5} {'Range':>5} {'PLAY->IDR median/max ms':>24} {'behind live median/max ms':>26}"
          f" {'steady kbit/s before/during (x)':>32} {'QP before/during':>17} {'IDRs before/during':>19}")
    for burst in bursts:
        for rng in (True, False):
            r = storm(binary, port, burst, rng)
            port += 1
            d, bh = r["delays"], r["behind"]
            kb0, qp0, i0 = r["before"]
            kb1, qp1, i1 = r["during"]
            med = statistics.median(d) if d else float("nan")
            print(f"{burst:>5} {'yes' if rng else 'no':>5} {med:>14.0f} / {max(d, default=float('nan')):<6.0f}"
                  f"   {statistics.median(bh) if bh else float('nan'):>14.0f} / {max(bh, default=float('nan')):<6.0f}"
                  f"   {kb0:>9.0f} / {kb1:<6.0f} ({kb1 / max(kb0, 1e-9):.2f}x)"
                  f"   {qp0:>6.1f} / {qp1:<6.1f}   {i0:>7} / {i1:<5}"
                  + (f"  {r['missing']} never got an IDR" if r["missing"] else "")
                  + (f"  errors: {r['errors']}" if r["errors"] else ""))
            print(f"      PLAY->IDR ms: {' '.join(f'{x:.0f}' for x in d)}")
    if os.environ.get("STORM_VIEWERS", "1") != "0":
        one, lots, got = viewers(binary, port)
        print("viewers: CPU share of one core (capture-encode threads / server and the rest)")
        print(f"  1 viewer:   {one[0]:.3f} / {one[1]:.3f}")
        print(f"  17 viewers: {lots[0]:.3f} / {lots[1]:.3f}  ({got}/16 new viewers got a picture)")
        print(f"  encoder work with 17 viewers against 1: {lots[0] / max(one[0], 1e-9):.2f}x; "
              f"server CPU per extra viewer: {(lots[1] - one[1]) / 16 * 100:.2f}% of a core")


if __name__ == "__main__":
    main()
