//! The HTTP face against real peers: headless Chromium playing the page,
//! ffprobe/ffmpeg reading /live.mp4, promtool checking /metrics.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::chromium::{Chromium, Reports, json_num, json_nums};
use common::{Edgestream, free_port};

/// Starts edgestream with its HTTP face on a free loopback port.
fn start(args: &[&str]) -> (Edgestream, String) {
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let mut all = vec!["--http", http.as_str()];
    all.extend_from_slice(args);
    let es = Edgestream::start(&all);
    (es, http)
}

/// One request; returns the status, the head and the body.
fn get(addr: &str, path: &str, auth: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    common::read_http_response(&mut s)
}

/// One browser at a time: two would share the machine's cores and blur the
/// frame counts and delays.
static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Chromium plays the page: first frame within a second, >= 95% of the
/// frames over 10 s, and the capture-to-display delay (printed), which does
/// not grow. `EDGESTREAM_HTTP_PLAY_SECS=600` measures for 10 minutes.
#[test]
fn chromium_plays_the_live_view() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let secs: f64 = std::env::var("EDGESTREAM_HTTP_PLAY_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let (es, http) = start(&["--size", "640x480", "--fps", "30"]);
    let reports = Reports::listen();
    let _browser = Chromium::open(&format!("http://{http}/?mode=mse&report={}", reports.url));
    let started = Instant::now();
    let mut first_frame = None;
    let mut at_start: Option<(f64, f64)> = None;
    let mut delays = Vec::new();
    // (seconds into the measurement, delay) for the first and last minute.
    let mut timed: Vec<(f64, f64)> = Vec::new();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs_f64(secs + 30.0) {
        let Some(r) = reports.next(Duration::from_secs(15)) else {
            panic!("no report from the page; last: {last}\n{}", es.log_text())
        };
        last = r.clone();
        let t = json_num(&r, "t").unwrap() / 1000.0;
        let frames = json_num(&r, "frames").unwrap_or(0.0);
        if first_frame.is_none() {
            first_frame = json_num(&r, "first_frame_ms");
        }
        if first_frame.is_none() {
            continue;
        }
        // Measure from two seconds after the first frame on.
        match at_start {
            None if t >= first_frame.unwrap() / 1000.0 + 2.0 => at_start = Some((t, frames)),
            None => {}
            Some((t0, f0)) => {
                let now = json_nums(&r, "delays");
                timed.extend(now.iter().map(|&d| (t - t0, d)));
                delays.extend(now);
                if t - t0 >= secs {
                    let rate = (frames - f0) / (t - t0);
                    let median = |v: &[f64]| {
                        let mut v = v.to_vec();
                        v.sort_by(f64::total_cmp);
                        percentile(&v, 0.5)
                    };
                    let half = delays.len() / 2;
                    let (early, late) = (median(&delays[..half]), median(&delays[half..]));
                    let mut d = delays.clone();
                    d.sort_by(f64::total_cmp);
                    let (p50, p95) = (percentile(&d, 0.5), percentile(&d, 0.95));
                    eprintln!(
                        "chromium: delay min {:.1} p5 {:.1} p50 {p50:.1} p95 {p95:.1} max {:.1} ms; \
                         median first half {early:.1}, second half {late:.1}",
                        d[0],
                        percentile(&d, 0.05),
                        d[d.len() - 1]
                    );
                    if t - t0 >= 120.0 {
                        let minute = |from: f64, to: f64| {
                            let v: Vec<f64> = timed
                                .iter()
                                .filter(|(at, _)| (from..to).contains(at))
                                .map(|&(_, d)| d)
                                .collect();
                            (median(&v), v.len())
                        };
                        let (m1, n1) = minute(0.0, 60.0);
                        let (m2, n2) = minute(t - t0 - 60.0, f64::INFINITY);
                        eprintln!(
                            "chromium: delay median first minute {m1:.1} ms ({n1} frames), \
                             last minute {m2:.1} ms ({n2} frames)"
                        );
                    }
                    assert!(
                        late < early + 50.0,
                        "the delay grows: {early:.0} -> {late:.0} ms"
                    );
                    let ff = first_frame.unwrap();
                    eprintln!(
                        "chromium: first frame {ff:.0} ms after load, {rate:.2} frames/s over {:.1} s \
                         ({:.1}% of 30), dropped {}/{} (getVideoPlaybackQuality), \
                         delay capture->display median {p50:.0} ms, p95 {p95:.0} ms ({} samples), lag {:?}",
                        t - t0,
                        rate / 30.0 * 100.0,
                        json_num(&r, "dropped").unwrap_or(-1.0),
                        json_num(&r, "total").unwrap_or(-1.0),
                        d.len(),
                        json_num(&r, "lag"),
                    );
                    assert!(ff <= 1000.0, "first frame after {ff} ms");
                    assert!(rate >= 0.95 * 30.0, "{rate} frames/s: {r}");
                    assert!(d.len() > 200, "delays: {r}");
                    assert!(p50 < 1000.0, "median delay {p50} ms");
                    return;
                }
            }
        }
    }
    panic!("the page did not play: {last}");
}

/// ffprobe and ffmpeg read /live.mp4; it starts at a keyframe.
#[test]
fn ffprobe_and_ffmpeg_read_live_mp4() {
    let (_es, http) = start(&["--size", "320x240"]);
    let url = format!("http://{http}/live.mp4");
    let out = common::tool("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "h264,320,240");
    let dir = common::temp_dir("http-ffmpeg");
    let file = dir.join("live.mp4");
    let st = common::tool("ffmpeg")
        .args(["-v", "error", "-t", "3", "-i", &url, "-c", "copy", "-y"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success());
    let frames = common::probe_frames(&file);
    assert!(frames.len() >= 60, "{} frames in 3 s", frames.len());
    assert!(frames[0].0, "the first frame is a keyframe");
    assert_eq!(common::decode_errors(&file), "");
}

/// `promtool check metrics` accepts `body`.
fn promtool_check(body: &[u8]) {
    let mut check = common::tool("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(body).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(body)
    );
}

/// The sum of the samples in `metrics` whose line starts with `prefix`
/// (a name, or a name and the first labels).
fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// /metrics passes promtool; /api/status has the documented fields.
#[test]
fn metrics_pass_promtool_and_status_has_the_documented_fields() {
    let (_es, http) = start(&["--size", "160x120"]);
    std::thread::sleep(Duration::from_millis(500));
    let (status, head, body) = get(&http, "/metrics", None);
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    promtool_check(&body);
    let text = String::from_utf8_lossy(&body);
    for name in [
        "edgestream_frames_encoded_total",
        "edgestream_encode_seconds_bucket",
        "edgestream_sink_bytes_total",
        "edgestream_viewers",
        "edgestream_dropped_frames_total{sink=\"rtsp\",cause=\"too_slow\"} 0",
        "edgestream_sink_bytes_total{sink=\"push\"} 0",
        "edgestream_push_reconnects_total",
        "edgestream_source_restarts_total 0",
        "edgestream_uptime_seconds",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let (status, head, body) = get(&http, "/api/status", None);
    assert_eq!(status, 200);
    assert!(head.contains("application/json"));
    let json = String::from_utf8_lossy(&body);
    // The fields the README documents.
    for field in [
        "\"version\":",
        "\"uptime_s\":",
        "\"source\":{\"name\":",
        "\"state\":\"delivering\"",
        "\"error\":null",
        "\"video\":{\"width\":160,\"height\":120,\"fps\":30,",
        "\"bitrate_kbps\":",
        "\"measured_fps\":",
        "\"frames\":{\"encoded\":",
        "\"keyframes\":",
        "\"dropped\":",
        "\"restarts\":0",
        "\"dropped_by_cause\":{\"too_slow\":",
        "\"viewers\":{\"rtsp\":0,\"http\":0,\"webrtc\":0}",
        "\"bytes_out\":{\"rtsp\":0,\"http\":0,\"push\":0,\"webrtc\":0}",
        "\"rtsp_urls\":[\"rtsp://127.0.0.1:",
        "\"page_url\":\"http://127.0.0.1:",
        "\"push\":[]",
    ] {
        assert!(json.contains(field), "{field} missing: {json}");
    }
    let (status, head, body) = get(&http, "/", None);
    assert_eq!(status, 200);
    assert!(head.contains("text/html"));
    assert!(body.len() < 16 * 1024, "the page is {} bytes", body.len());
    assert_eq!(get(&http, "/nothing", None).0, 404);
}

/// Each counter moves when its event happens: an RTSP viewer grows the
/// RTSP bytes, a /live.mp4 reader the HTTP bytes, a push target the push
/// bytes; killing the push receiver counts its reconnects and its frames
/// dropped as `target_down`; a source command that exits counts a restart.
/// /metrics with all of them still passes promtool.
#[test]
fn metrics_move_when_their_events_happen() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let port = free_port();
    let receiver = common::FlvReceiver::start(port);
    let src = "exec:sh -c \"exec ffmpeg -hide_banner -loglevel error -re -f lavfi \
               -i testsrc2=size=160x120:rate=30 -t 4 -f yuv4mpegpipe -\"";
    let push = format!("tcp://127.0.0.1:{port}/cam");
    let (es, http) = start(&["--size", "160x120", "--source", src, "--push", &push]);
    let metrics = || String::from_utf8(get(&http, "/metrics", None).2).unwrap();
    let wait_for = |what: &str, ok: &dyn Fn(&str) -> bool| -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = metrics();
            if ok(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "{what} never happened:\n{m}\n{}",
                es.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let rtsp_bytes = "edgestream_sink_bytes_total{sink=\"rtsp\"}";
    let http_bytes = "edgestream_sink_bytes_total{sink=\"http\"}";
    let push_bytes = "edgestream_sink_bytes_total{sink=\"push\"}";
    let m = wait_for("push bytes", &|m| sample(m, push_bytes) > 0.0);
    assert_eq!(sample(&m, rtsp_bytes), 0.0, "no RTSP viewer yet");
    assert_eq!(sample(&m, http_bytes), 0.0, "no /live.mp4 reader yet");

    // An RTSP viewer for two seconds.
    let dir = common::temp_dir("http-metrics");
    common::ffmpeg_record(
        &format!("rtsp://{}/live", es.addr()),
        "tcp",
        2,
        &dir.join("rtsp.mkv"),
    );
    let m = metrics();
    let rtsp = sample(&m, rtsp_bytes);
    assert!(rtsp > 1000.0, "RTSP bytes {rtsp} after a 2 s viewer");
    assert_eq!(sample(&m, "edgestream_viewers{protocol=\"rtsp\"}"), 0.0);

    // A /live.mp4 reader.
    let stop = Arc::new(AtomicBool::new(false));
    let r = reader(http.clone(), stop.clone());
    wait_for("a browser viewer", &|m| {
        sample(m, "edgestream_viewers{protocol=\"http\"}") == 1.0
    });
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let read = r.join().unwrap() as f64;
    let m = wait_for("the reader's bytes", &|m| sample(m, http_bytes) >= read);
    assert!(read > 1000.0, "the reader got {read} bytes");
    assert_eq!(sample(&m, rtsp_bytes), rtsp, "RTSP bytes stay");

    // The push receiver killed: the target reconnects, its frames count as
    // dropped while it is down.
    let reconnects = "edgestream_push_reconnects_total{";
    assert_eq!(sample(&m, reconnects), 0.0);
    drop(receiver.kill());
    wait_for("push reconnects", &|m| {
        sample(m, reconnects) >= 2.0
            && sample(
                m,
                "edgestream_dropped_frames_total{sink=\"push\",cause=\"target_down\"}",
            ) > 0.0
            && sample(m, "edgestream_push_up{") == 0.0
    });
    // The command exits after 4 s of frames and is started again.
    let m = wait_for("a source restart", &|m| {
        sample(m, "edgestream_source_restarts_total") >= 1.0
    });
    let json = String::from_utf8(get(&http, "/api/status", None).2).unwrap();
    assert!(
        json_num(&json, "restarts").unwrap() >= 1.0
            && json_num(&json, "reconnects").unwrap() >= 2.0,
        "{json}"
    );
    eprintln!(
        "metrics: rtsp {rtsp} bytes, http {} bytes, push {} bytes, {} push reconnects, {} restarts",
        sample(&m, http_bytes),
        sample(&m, push_bytes),
        sample(&m, reconnects),
        sample(&m, "edgestream_source_restarts_total")
    );
    promtool_check(m.as_bytes());
}

/// With users, every endpoint answers 401 without credentials and 200 with
/// them; public metrics stay open; Chromium plays the page with Digest.
#[test]
fn auth_on_every_endpoint_and_digest_in_chromium() {
    let (es, http) = start(&[
        "--size",
        "160x120",
        "--rtsp-user",
        "viewer:s3cr3t",
        "--rtsp-basic-auth",
    ]);
    let basic = "Basic dmlld2VyOnMzY3IzdA=="; // viewer:s3cr3t
    for path in ["/", "/live.mp4", "/api/status", "/metrics", "/snapshot.jpg"] {
        let (status, head, _) = get(&http, path, None);
        assert_eq!(status, 401, "{path}");
        assert!(
            head.contains("WWW-Authenticate: Digest realm=\"edgestream\""),
            "{head}"
        );
        assert_eq!(
            get(&http, path, Some("Basic dmlld2VyOndyb25n")).0,
            401,
            "{path} wrong password"
        );
        if path != "/live.mp4" && path != "/snapshot.jpg" {
            assert_eq!(get(&http, path, Some(basic)).0, 200, "{path}");
        }
    }
    drop(es);
    // Digest only (no Basic offered), as Chromium answers it.
    let (es, http) = start(&["--size", "160x120", "--rtsp-user", "viewer:s3cr3t"]);
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let reports = Reports::listen();
    let page = format!("http://viewer:s3cr3t@{http}/?report={}", reports.url);
    let _browser = Chromium::open(&page);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(r) = reports.next(Duration::from_secs(5)) {
            if json_num(&r, "frames").unwrap_or(0.0) >= 30.0 {
                return;
            }
            last = r;
        }
    }
    panic!(
        "the page did not play with Digest: {last}\n{}",
        es.log_text()
    );
}

/// `metrics-public` opens /metrics alone.
#[test]
fn public_metrics_leave_the_rest_closed() {
    let (_es, http) = start(&[
        "--size",
        "160x120",
        "--rtsp-user",
        "viewer:x",
        "--metrics-public",
    ]);
    assert_eq!(get(&http, "/metrics", None).0, 200);
    assert_eq!(get(&http, "/api/status", None).0, 401);
}

/// Reads `/live.mp4` forever, counting bytes, until `stop`.
fn reader(
    http: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(&http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET /live.mp4 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = vec![0; 65536];
        let mut total = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
        total
    })
}

/// 16 browser viewers and 4 RTSP viewers at once from one encode; a viewer
/// that never reads is dropped without hurting the others.
#[test]
fn many_viewers_one_encode_and_a_stalled_viewer_is_dropped() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (es, http) = start(&[
        "--size",
        "320x240",
        "--bitrate",
        "3000",
        "--max-connections-per-ip",
        "64",
    ]);
    let rtsp = format!("rtsp://{}/live", es.addr());
    let mut ffmpegs: Vec<_> = (0..4)
        .map(|_| {
            common::tool("ffmpeg")
                .args([
                    "-v",
                    "error",
                    "-rtsp_transport",
                    "tcp",
                    "-i",
                    &rtsp,
                    "-f",
                    "null",
                    "-",
                ])
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // The stalled viewer: a tiny receive window, and it never reads.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&http.parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    let mut stalled: TcpStream = sock.into();
    write!(stalled, "GET /live.mp4 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..16)
        .map(|_| reader(http.clone(), stop.clone()))
        .collect();
    let viewers = |json: &str| {
        (
            json_num(json, "rtsp").unwrap_or(-1.0) as i64,
            json_num(json, "http").unwrap_or(-1.0) as i64,
        )
    };
    let status = || String::from_utf8(get(&http, "/api/status", None).2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut s = status();
    while viewers(&s) != (4, 17) {
        assert!(
            Instant::now() < deadline,
            "viewers never all connected: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
        s = status();
    }
    let frames0 = json_num(&s, "encoded").unwrap();
    let t0 = Instant::now();
    // The stalled viewer goes within its write timeout plus its buffers.
    let deadline = Instant::now() + Duration::from_secs(30);
    while viewers(&s) != (4, 16) {
        assert!(
            Instant::now() < deadline,
            "the stalled viewer was not dropped: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
        s = status();
    }
    eprintln!(
        "stalled viewer dropped after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(2));
    let s = status();
    let fps = (json_num(&s, "encoded").unwrap() - frames0) / t0.elapsed().as_secs_f64();
    assert!(
        fps > 27.0,
        "encoding slowed to {fps:.1} fps with 20 viewers: {s}"
    );
    assert_eq!(viewers(&s), (4, 16), "{s}");
    stop.store(true, Ordering::Relaxed);
    let bytes: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "16 HTTP viewers: {:.0}..{:.0} kbit/s each; encoder at {fps:.1} fps",
        *bytes.iter().min().unwrap() as f64 * 8.0 / 1000.0 / secs,
        *bytes.iter().max().unwrap() as f64 * 8.0 / 1000.0 / secs
    );
    // Every reader got at least most of the stream (3000 kbit/s target).
    let min = *bytes.iter().min().unwrap() as f64 * 8.0 / 1000.0 / secs;
    assert!(min > 1000.0, "a healthy viewer got only {min:.0} kbit/s");
    for f in &mut ffmpegs {
        assert!(f.try_wait().unwrap().is_none(), "an RTSP viewer ended");
        let _ = f.kill();
        let _ = f.wait();
    }
    drop(stalled);
}

/// /snapshot.jpg decodes (ffprobe) at the configured size.
#[test]
fn snapshot_decodes_at_the_configured_size() {
    let (_es, http) = start(&["--size", "352x288"]);
    let (status, head, body) = get(&http, "/snapshot.jpg", None);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("image/jpeg"), "{head}");
    let dir = common::temp_dir("http-snapshot");
    let file = dir.join("s.jpg");
    std::fs::write(&file, &body).unwrap();
    assert_eq!(common::probe_size(&file), (352, 288));
    assert_eq!(common::decode_errors(&file), "");
}

/// Listening beyond loopback without users logs the same warning as RTSP.
#[test]
fn warns_when_open_to_the_network_without_users() {
    let port = free_port();
    let any = format!("0.0.0.0:{port}");
    let es = Edgestream::start(&["--http", &any, "--size", "160x120"]);
    let log = es.log_text();
    assert!(
        log.contains(&format!("http: listening on {any} without authentication")),
        "{log}"
    );
    assert!(
        log.contains("in a browser http://"),
        "the banner names the page: {log}"
    );
}
