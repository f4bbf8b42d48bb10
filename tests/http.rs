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
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let end = common::find(&all, b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&all[..end]).to_string();
    let status = head[9..12].parse().unwrap();
    (status, head, all[end + 4..].to_vec())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Chromium plays the page: first frame within a second, >= 95% of the
/// frames over 10 s, and the capture-to-display delay (printed).
#[test]
fn chromium_plays_the_live_view() {
    let (es, http) = start(&["--size", "640x480", "--fps", "30"]);
    let reports = Reports::listen();
    let _browser = Chromium::open(&format!("http://{http}/?report={}", reports.url));
    let started = Instant::now();
    let mut first_frame = None;
    let mut at_start: Option<(f64, f64)> = None;
    let mut delays = Vec::new();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(40) {
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
                delays.extend(json_nums(&r, "delays"));
                if t - t0 >= 10.0 {
                    let rate = (frames - f0) / (t - t0);
                    let mut d = delays.clone();
                    d.sort_by(f64::total_cmp);
                    let (p50, p95) = (percentile(&d, 0.5), percentile(&d, 0.95));
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

/// /metrics passes promtool; /api/status has the documented fields.
#[test]
fn metrics_pass_promtool_and_status_has_the_documented_fields() {
    let (_es, http) = start(&["--size", "160x120"]);
    std::thread::sleep(Duration::from_millis(500));
    let (status, head, body) = get(&http, "/metrics", None);
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let mut check = common::tool("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(&body).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&body)
    );
    let text = String::from_utf8_lossy(&body);
    for name in [
        "edgestream_frames_encoded_total",
        "edgestream_encode_seconds_bucket",
        "edgestream_sink_bytes_total",
        "edgestream_viewers",
        "edgestream_dropped_frames_total",
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
        "\"viewers\":{\"rtsp\":0,\"http\":0}",
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
