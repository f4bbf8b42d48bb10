//! `/api/status` (JSON) and `/metrics` (Prometheus text format 0.0.4),
//! rendered from one plain [`Status`] the server fills in. Pure.

use std::fmt::Write;

/// One push target as the page, the API and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub name: String,
    pub up: bool,
    pub detail: String,
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
    pub rtsp_urls: Vec<String>,
    pub page_url: Option<String>,
    pub push: Vec<Push>,
    pub dropped_frames: u64,
    pub http_bytes_out: u64,
    pub http_dropped: u64,
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
                "{{\"name\":{},\"up\":{},\"detail\":{}}}",
                js(&p.name),
                p.up,
                js(&p.detail)
            )
        })
        .collect();
    format!(
        concat!(
            "{{\"version\":{},\"uptime_s\":{},",
            "\"source\":{{\"name\":{},\"state\":{},\"error\":{}}},",
            "\"video\":{{\"width\":{},\"height\":{},\"fps\":{},\"bitrate_kbps\":{},",
            "\"measured_fps\":{}}},",
            "\"frames\":{{\"encoded\":{},\"keyframes\":{},\"dropped\":{}}},",
            "\"viewers\":{{\"rtsp\":{},\"http\":{}}},",
            "\"rtsp_urls\":[{}],\"page_url\":{},\"push\":[{}]}}\n"
        ),
        js(s.version),
        num(s.uptime_s),
        js(&s.source),
        js(s.source_state),
        opt(&s.source_error),
        s.width,
        s.height,
        num(s.fps),
        s.bitrate_kbps,
        num(s.measured_fps),
        s.frames_encoded,
        s.keyframes,
        s.dropped_frames,
        s.rtsp_viewers,
        s.http_viewers,
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
    let _ = writeln!(o, "edgestream_encode_seconds_sum {}", num(s.encode_sum_s));
    let _ = writeln!(o, "edgestream_encode_seconds_count {cum}");
    metric(
        &mut o,
        "viewers",
        "gauge",
        "Viewers watching now, by protocol.",
        &[
            ("{protocol=\"rtsp\"}", s.rtsp_viewers.to_string()),
            ("{protocol=\"http\"}", s.http_viewers.to_string()),
        ],
    );
    metric(
        &mut o,
        "sink_bytes_total",
        "counter",
        "Bytes written to viewers, by sink kind.",
        &[("{sink=\"http\"}", s.http_bytes_out.to_string())],
    );
    metric(
        &mut o,
        "dropped_frames_total",
        "counter",
        "Frames dropped for slow sinks, by sink kind (all = every sink).",
        &[
            ("{sink=\"all\"}", s.dropped_frames.to_string()),
            ("{sink=\"http\"}", s.http_dropped.to_string()),
        ],
    );
    let push: Vec<(String, String)> = s
        .push
        .iter()
        .map(|p| {
            (
                format!("{{target=\"{}\"}}", label(&p.name)),
                u8::from(p.up).to_string(),
            )
        })
        .collect();
    let push: Vec<(&str, String)> = push.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
    metric(
        &mut o,
        "push_up",
        "gauge",
        "1 while a push target is publishing.",
        &push,
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
            }],
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
}
