//! Wiring for the HTTP face: its options from the [`Config`], and where the
//! page's facts come from. Called by [`crate::app`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::api::{Push, Status};
use super::request::Settings;
use super::server::{HttpOptions, HttpStats, StatusSource};
use super::snapshot::Snapshots;
use crate::config::Config;
use crate::fanout::{Fanout, SinkKind};
use crate::health::{Health, SourceState};
use crate::rtsp::auth::Authenticator;
use crate::rtsp::server::ServerStats;
use crate::stats::{ENCODE_BUCKETS_US, PipelineStats};

/// The server's options; `auth` is the RTSP server's (same users).
pub fn options(
    config: &Config,
    listen: SocketAddr,
    auth: Option<Arc<Authenticator>>,
    snapshots: Option<Arc<Snapshots>>,
) -> HttpOptions {
    HttpOptions {
        listen,
        max_head_bytes: config.max_request_bytes,
        limits: crate::app::limit_settings(config),
        settings: Settings {
            auth,
            metrics_public: config.metrics_public,
        },
        queue_frames: 30,
        snapshots,
        #[cfg(feature = "webrtc")]
        webrtc: config
            .webrtc_udp
            .map(|listen| crate::webrtc::server::WebrtcOptions {
                listen,
                tcp: config.webrtc_tcp,
                additional_hosts: config.webrtc_additional_hosts.clone(),
                max_peers: config.max_viewers,
            }),
    }
}

/// The page's URLs for a server bound to `addr` (LAN addresses first).
pub fn page_urls(addr: SocketAddr) -> Vec<String> {
    crate::app::viewer_urls(addr, "/")
        .into_iter()
        .map(|u| u.replacen("rtsp://", "http://", 1))
        .collect()
}

/// Where the facts are.
pub struct Facts {
    pub fanout: Arc<Fanout>,
    pub stats: Arc<PipelineStats>,
    pub health: Arc<Health>,
    pub rtsp: Option<Arc<ServerStats>>,
    pub rtsp_urls: Vec<String>,
    pub page_url: Option<String>,
    pub source: String,
    pub bitrate_kbps: u32,
    pub started: Instant,
}

/// A [`StatusSource`] reading `facts`. The measured frame rate is taken
/// over at least a second between calls.
pub fn status_source(facts: Facts) -> StatusSource {
    let sample = Mutex::new((Instant::now(), 0u64, 0.0f64));
    Arc::new(move |http: &HttpStats| {
        let f = &facts;
        let frames = f.stats.frames_total.load(Ordering::Relaxed);
        let measured_fps = {
            let mut s = sample.lock().unwrap_or_else(|e| e.into_inner());
            let dt = s.0.elapsed().as_secs_f64();
            if dt >= 1.0 {
                s.2 = frames.saturating_sub(s.1) as f64 / dt;
                *s = (Instant::now(), frames, s.2);
            }
            s.2
        };
        let h = f.health.snapshot();
        let info = f.fanout.stream_info();
        let totals = f.fanout.totals();
        let buckets: Vec<u64> = f
            .stats
            .encode_buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        Status {
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: f.started.elapsed().as_secs_f64(),
            source: f.source.clone(),
            source_state: match h.source {
                SourceState::Delivering => "delivering",
                SourceState::Starting => "starting",
                SourceState::Paused => "paused",
                SourceState::Fault => "fault",
            },
            source_error: h.source_detail.clone(),
            source_restarts: f.stats.source_restarts.load(Ordering::Relaxed),
            width: info.as_ref().map_or(0, |i| i.width),
            height: info.as_ref().map_or(0, |i| i.height),
            fps: info.as_ref().map_or(0.0, |i| i.fps.as_f64()),
            bitrate_kbps: f.bitrate_kbps,
            measured_fps,
            frames_encoded: frames,
            keyframes: f.stats.keyframes_total.load(Ordering::Relaxed),
            forced_keyframes: f.stats.forced_keyframes_total.load(Ordering::Relaxed),
            encode_buckets: ENCODE_BUCKETS_US
                .iter()
                .copied()
                .zip(buckets.iter().copied())
                .collect(),
            encode_overflow: buckets.last().copied().unwrap_or(0),
            encode_sum_s: f.stats.encode_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            rtsp_viewers: f
                .rtsp
                .as_ref()
                .map_or(0, |s| s.playing.load(Ordering::Relaxed)),
            http_viewers: http.viewers.load(Ordering::Relaxed),
            webrtc_viewers: 0,
            rtsp_urls: f.rtsp_urls.clone(),
            page_url: f.page_url.clone(),
            push: h
                .pushes
                .into_iter()
                .map(|p| Push {
                    name: p.name,
                    up: p.up,
                    detail: p.detail,
                    reconnects: p.reconnects,
                })
                .collect(),
            dropped_frames: totals.dropped_total(),
            bytes_out: SinkKind::ALL
                .iter()
                .map(|&k| (k.name(), totals.bytes(k)))
                .collect(),
            drops: SinkKind::ALL
                .iter()
                .map(|&k| (k.name(), totals.drops(k)))
                .collect(),
        }
    })
}
