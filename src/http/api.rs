//! `/api/status` (JSON) and `/metrics` (Prometheus text format 0.0.4),
//! rendered from one plain [`Status`] the server fills in. Pure.

use std::fmt::Write;

use crate::fanout::Drops;

/// One push target as the page, the API and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub name: String,
    pub up: bool,
    pub detail: String,
    /// Connection attempts after the first.
    pub reconnects: u64,
}

/// The facts behind the page, `/api/status` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub version: &'static str,
    pub uptime_s: f64,
    /// What the source is (e.g. `test pattern`, `camera /dev/video0`).
    pub source: String,
    /// `delivering`, `starting`, `paused` or `fault`.
    pub source_state: &'static str,
    /// Why the source is not delivering, in words.
    pub source_error: Option<String>,
    /// Times the running source failed and was reopened.
    pub source_restarts: u64,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub bitrate_kbps: u32,
    /// Measured since the previous request (at least a second).
    pub measured_fps: f64,
    pub frames_encoded: u64,
    pub keyframes: u64,
    pub forced_keyframes: u64,
    /// Per-bucket encode time counts (not cumulative), last one +Inf.
    pub encode_buckets: Vec<(u64, u64)>,
    pub encode_overflow: u64,
    pub encode_sum_s: f64,
    pub rtsp_viewers: usize,
    pub http_viewers: usize,
    /// WebRTC sessions (connecting or playing); set by the HTTP server.
    pub webrtc_viewers: usize,
    pub rtsp_urls: Vec<String>,
    pub page_url: Option<String>,
    pub push: Vec<Push>,
    /// Frames dropped across all sinks since start.
    pub dropped_frames: u64,
    /// Per sink kind (`rtsp`, `http`, `push`): bytes written since start.
    pub bytes_out: Vec<(&'static str, u64)>,
    /// Per sink kind: frames dropped since start, by cause.
    pub drops: Vec<(&'static str, Drops)>,
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        "0".into()
    }
}

/// `/api/status`: see the README's "HTTP: page, API, metrics" section.
pub fn status_json(s: &Status) -> String {
    let opt = |v: &Option<String>| v.as_deref().map_or("null".to_string(), js);
    let urls: Vec<String> = s.rtsp_urls.iter().map(|u| js(u)).collect();
    let push: Vec<String> = s
        .push
        .iter()
        .map(|p| {
            format!(
                "{{\"name\":{},\"up\":{},\"detail\":{},\"reconnects\":{}}}",
                js(&p.name),
                p.up,
                js(&p.detail),
                p.reconnects
            )
        })
        .collect();
    let mut all = Drops::default();
    for (_, d) in &s.drops {
        all.too_slow += d.too_slow;
        all.target_down += d.target_down;
        all.waiting_for_keyframe += d.waiting_for_keyframe;
    }
    let causes: Vec<String> = all
        .by_cause()
        .iter()
        .map(|(k, n)| format!("\"{k}\":{n}"))
        .collect();
    let bytes: Vec<String> = s
        .bytes_out
        .iter()
        .map(|(k, n)| format!("\"{k}\":{n}"))
        .collect();
    format!(
        concat!(
            "{{\"version\":{},\"uptime_s\":{},",
            "\"source\":{{\"name\":{},\"state\":{},\"error\":{},\"restarts\":{}}},",
            "\"video\":{{\"width\":{},\"height\":{},\"fps\":{},\"bitrate_kbps\":{},",
            "\"measured_fps\":{}}},",
            "\"frames\":{{\"encoded\":{},\"keyframes\":{},\"dropped\":{},",
            "\"dropped_by_cause\":{{{}}}}},",
            "\"viewers\":{{\"rtsp\":{},\"http\":{},\"webrtc\":{}}},\"bytes_out\":{{{}}},",
            "\"rtsp_urls\":[{}],\"page_url\":{},\"push\":[{}]}}\n"
        ),
        js(s.version),
        num(s.uptime_s),
        js(&s.source),
        js(s.source_state),
        opt(&s.source_error),
        s.source_restarts,
        s.width,
        s.height,
        num(s.fps),
        s.bitrate_kbps,
        num(s.measured_fps),
        s.frames_encoded,
        s.keyframes,
        s.dropped_frames,
        causes.join(","),
        s.rtsp_viewers,
        s.http_viewers,
        s.webrtc_viewers,
        bytes.join(","),
        urls.join(","),
        opt(&s.page_url),
        push.join(","),
    )
}

/// Escapes a Prometheus label value.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labelled(v: &[(String, String)]) -> Vec<(&str, String)> {
    v.iter().map(|(l, n)| (l.as_str(), n.clone())).collect()
}

fn metric(o: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, String)]) {
    let _ = writeln!(o, "# HELP edgestream_{name} {help}");
    let _ = writeln!(o, "# TYPE edgestream_{name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(o, "edgestream_{name}{labels} {v}");
    }
}

/// `/metrics` in the Prometheus text exposition format.
pub fn metrics(s: &Status) -> String {
    let mut o = String::with_capacity(4096);
    let one = |v: String| [("", v)];
    metric(
        &mut o,
        "uptime_seconds",
        "gauge",
        "Seconds since start.",
        &one(num(s.uptime_s)),
    );
    metric(
        &mut o,
        "frames_encoded_total",
        "counter",
        "Frames encoded (or passed through).",
        &one(s.frames_encoded.to_string()),
    );
    metric(
        &mut o,
        "keyframes_total",
        "counter",
        "Keyframes encoded, forced ones included.",
        &one(s.keyframes.to_string()),
    );
    metric(
        &mut o,
        "forced_keyframes_total",
        "counter",
        "Keyframes forced for new or lagging sinks.",
        &one(s.forced_keyframes.to_string()),
    );
    let _ = writeln!(
        o,
        "# HELP edgestream_encode_seconds Time to encode one frame."
    );
    let _ = writeln!(o, "# TYPE edgestream_encode_seconds histogram");
    let mut cum = 0;
    for (bound_us, n) in &s.encode_buckets {
        cum += n;
        let _ = writeln!(
            o,
            "edgestream_encode_seconds_bucket{{le=\"{}\"}} {cum}",
            *bound_us as f64 / 1e6
        );
    }
    cum += s.encode_overflow;
    let _ = writeln!(o, "edgestream_encode_seconds_bucket{{le=\"+Inf\"}} {cum}");
    let _ = writeln!(o, "edgestream_encode_seconds_sum {:.6}", s.encode_sum_s);
    let _ = writeln!(o, "edgestream_encode_seconds_count {cum}");
    metric(
        &mut o,
        "viewers",
        "gauge",
        "Viewers watching now, by protocol.",
        &[
            ("{protocol=\"rtsp\"}", s.rtsp_viewers.to_string()),
            ("{protocol=\"http\"}", s.http_viewers.to_string()),
            ("{protocol=\"webrtc\"}", s.webrtc_viewers.to_string()),
        ],
    );
    let bytes: Vec<(String, String)> = s
        .bytes_out
        .iter()
        .map(|(k, n)| (format!("{{sink=\"{k}\"}}"), n.to_string()))
        .collect();
    metric(
        &mut o,
        "sink_bytes_total",
        "counter",
        "Bytes written to viewers and push targets, by sink kind.",
        &labelled(&bytes),
    );
    let drops: Vec<(String, String)> = s
        .drops
        .iter()
        .flat_map(|(k, d)| {
            d.by_cause()
                .map(|(cause, n)| (format!("{{sink=\"{k}\",cause=\"{cause}\"}}"), n.to_string()))
        })
        .collect();
    metric(
        &mut o,
        "dropped_frames_total",
        "counter",
        "Frames not handed to a sink, by sink kind and cause (too_slow: queue full; \
         target_down: push target reconnecting; waiting_for_keyframe: a new sink).",
        &labelled(&drops),
    );
    let target = |p: &Push| format!("{{target=\"{}\"}}", label(&p.name));
    let up: Vec<(String, String)> = s
        .push
        .iter()
        .map(|p| (target(p), u8::from(p.up).to_string()))
        .collect();
    metric(
        &mut o,
        "push_up",
        "gauge",
        "1 while a push target is publishing.",
        &labelled(&up),
    );
    let reconnects: Vec<(String, String)> = s
        .push
        .iter()
        .map(|p| (target(p), p.reconnects.to_string()))
        .collect();
    metric(
        &mut o,
        "push_reconnects_total",
        "counter",
        "Connection attempts to a push target after the first.",
        &labelled(&reconnects),
    );
    metric(
        &mut o,
        "source_restarts_total",
        "counter",
        "Times the running source failed and was closed to be reopened.",
        &one(s.source_restarts.to_string()),
    );
    metric(
        &mut o,
        "source_up",
        "gauge",
        "1 while the source delivers frames.",
        &one(u8::from(s.source_state == "delivering").to_string()),
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status {
            version: "0.1.0",
            uptime_s: 12.5,
            source: "test \"pattern\"".into(),
            source_state: "delivering",
            width: 640,
            height: 480,
            fps: 30.0,
            encode_buckets: vec![(1000, 3), (2500, 2)],
            encode_overflow: 1,
            push: vec![Push {
                name: "rtmp://x/a/b".into(),
                up: false,
                detail: "retry in 2 s".into(),
                reconnects: 3,
            }],
            source_restarts: 2,
            bytes_out: vec![("rtsp", 1000), ("http", 20)],
            drops: vec![
                (
                    "rtsp",
                    Drops {
                        too_slow: 4,
                        ..Drops::default()
                    },
                ),
                (
                    "push",
                    Drops {
                        target_down: 5,
                        ..Drops::default()
                    },
                ),
            ],
            rtsp_urls: vec!["rtsp://127.0.0.1:8554/live".into()],
            ..Status::default()
        }
    }

    #[test]
    fn json_escapes_and_names_the_documented_fields() {
        let j = status_json(&status());
        assert!(j.contains("\"name\":\"test \\\"pattern\\\"\""), "{j}");
        for f in [
            "\"uptime_s\":12.5",
            "\"width\":640",
            "\"error\":null",
            "\"up\":false",
            "\"reconnects\":3",
            "\"restarts\":2",
            "\"dropped_by_cause\":{\"too_slow\":4,\"target_down\":5,\"waiting_for_keyframe\":0}",
            "\"bytes_out\":{\"rtsp\":1000,\"http\":20}",
        ] {
            assert!(j.contains(f), "{f} in {j}");
        }
    }

    #[test]
    fn histogram_is_cumulative() {
        let m = metrics(&status());
        assert!(
            m.contains("edgestream_encode_seconds_bucket{le=\"0.001\"} 3\n"),
            "{m}"
        );
        assert!(m.contains("edgestream_encode_seconds_bucket{le=\"0.0025\"} 5\n"));
        assert!(m.contains("edgestream_encode_seconds_bucket{le=\"+Inf\"} 6\n"));
        assert!(m.contains("edgestream_push_up{target=\"rtmp://x/a/b\"} 0\n"));
    }

    #[test]
    fn counters_per_sink_cause_and_target() {
        let m = metrics(&status());
        for line in [
            "edgestream_sink_bytes_total{sink=\"rtsp\"} 1000\n",
            "edgestream_dropped_frames_total{sink=\"rtsp\",cause=\"too_slow\"} 4\n",
            "edgestream_dropped_frames_total{sink=\"push\",cause=\"target_down\"} 5\n",
            "edgestream_push_reconnects_total{target=\"rtmp://x/a/b\"} 3\n",
            "edgestream_source_restarts_total 2\n",
        ] {
            assert!(m.contains(line), "{line} in {m}");
        }
    }
}
