//! The parts [`super::run`] is built from, each from the [`Config`]: the
//! source and its openers, the pipeline, the RTSP server's options and
//! limits, the HTTP face and the push options.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::RunError;

use crate::config::{Config, SourceSpec};
use crate::fanout::Fanout;
use crate::health::Health;
use crate::media::Fraction;
use crate::pipeline::{EncodeOptions, Handles, Opener, Pipeline};
use crate::rtsp::auth::Authenticator;
use crate::rtsp::limits::LimitSettings;
use crate::rtsp::parse::Limits;
use crate::rtsp::{RtspServer, ServerOptions};
use crate::source::testsrc::TestPattern;
use crate::source::v4l2::V4l2Source;
use crate::source::v4l2::negotiate::Request;
use crate::source::y4m::Y4mFile;
use crate::source::{FrameSource, SourceError, SourceFormat};
use crate::stats::PipelineStats;

/// Opens the configured source.
pub fn open_source(config: &Config) -> Result<Box<dyn FrameSource>, SourceError> {
    let fps = Fraction::new(config.fps, 1);
    match &config.source {
        SourceSpec::TestPattern => {
            TestPattern::new(config.size.width, config.size.height, fps, config.pace)
                .map(|s| Box::new(s) as Box<dyn FrameSource>)
                .map_err(SourceError::from)
        }
        SourceSpec::Y4m(path) => Y4mFile::open(path, config.pace)
            .map(|s| Box::new(s) as Box<dyn FrameSource>)
            .map_err(SourceError::from),
        SourceSpec::Device(path) => camera_opener(config, path)(),
        SourceSpec::Command(_) | SourceSpec::Stdin => command_opener(config, None)(),
    }
}

/// Starts the configured command (or takes stdin); called again by the
/// pipeline after every failure. `stop` cuts short a wait for its output.
pub fn command_opener(config: &Config, stop: Option<Arc<AtomicBool>>) -> Opener {
    use crate::source::command::{CommandSource, Settings};
    let settings = Settings {
        argv: match &config.source {
            SourceSpec::Command(words) => words.clone(),
            _ => Vec::new(),
        },
        format: config.source_format,
        width: config.size.width,
        height: config.size.height,
        fps: Fraction::new(config.fps, 1),
        stride: config.source_stride,
        stop,
    };
    Box::new(move || {
        CommandSource::open(&settings)
            .map(|s| Box::new(s) as Box<dyn FrameSource>)
            .map_err(SourceError::from)
    })
}

/// Opens the camera `path` for the configured size and frame rate; called
/// again by the pipeline after every failure.
pub fn camera_opener(config: &Config, path: &std::path::Path) -> Opener {
    let req = Request {
        width: config.size.width,
        height: config.size.height,
        fps: config.fps,
        format: config.camera_format,
    };
    let path = path.to_path_buf();
    Box::new(move || {
        V4l2Source::open(&path, req)
            .map(|s| Box::new(s) as Box<dyn FrameSource>)
            .map_err(SourceError::from)
    })
}

/// The URLs a viewer can open for a server bound to `addr`.
pub fn viewer_urls(addr: SocketAddr, path: &str) -> Vec<String> {
    let port = addr.port();
    let fmt = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => format!("rtsp://{v4}:{port}{path}"),
        IpAddr::V6(v6) => format!("rtsp://[{v6}]:{port}{path}"),
    };
    if !addr.ip().is_unspecified() {
        return vec![fmt(addr.ip())];
    }
    let mut ips = crate::netif::interface_addrs();
    ips.retain(|ip| ip.is_ipv4() || addr.is_ipv6());
    // LAN addresses first: those are what a viewer on another machine opens.
    ips.sort_by_key(|ip| (ip.is_loopback(), ip.is_ipv6()));
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips.into_iter().map(fmt).collect()
}

/// Whether an RTSP server on `listen` lets anyone on the network watch.
pub fn open_to_network(listen: SocketAddr, has_users: bool) -> bool {
    !has_users && !listen.ip().is_loopback()
}

/// The RTSP server's options from the configuration.
pub fn server_options(config: &Config, listen: SocketAddr) -> Result<ServerOptions, RunError> {
    let auth = if config.rtsp_users().is_empty() {
        None
    } else {
        let secret = random_secret().map_err(RunError::RandomKey)?;
        Some(Arc::new(Authenticator::new(
            config.rtsp_users().clone(),
            config.rtsp_basic_auth,
            secret,
            Instant::now(),
        )))
    };
    Ok(ServerOptions {
        listen,
        path: config.rtsp_path.clone(),
        session_timeout: config.session_timeout,
        max_payload: config.rtp_payload_size,
        max_viewers: config.max_viewers,
        parse_limits: Limits {
            max_header_bytes: config.max_request_bytes,
            ..Limits::default()
        },
        limits: limit_settings(config),
        auth,
        udp_ports: config.rtsp_udp_ports,
        audio: config.audio == crate::push::Audio::Silent,
        ..ServerOptions::default()
    })
}

/// 32 bytes from the kernel's CSPRNG.
pub(super) fn random_secret() -> std::io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    crate::sys::fill_random(&mut key)?;
    Ok(key)
}

/// Raises the open-file limit to its hard maximum: each RTSP connection is a
/// descriptor, and the soft default (often 1024) is below `max-connections`.
pub(super) fn raise_fd_limit(want: u64) {
    let Some(limit) = crate::sys::raise_nofile_limit() else {
        return;
    };
    if limit < want {
        log::warn!(
            "the open-file limit is {limit}, below the {want} that max-connections needs; raise LimitNOFILE"
        );
    }
}

/// Binds the HTTP face (same users and limits as RTSP) and returns it with
/// its page URL. A port that cannot be bound is logged, not fatal: the
/// page is an extra, streaming goes on without it.
pub(super) fn bind_http(
    config: &Config,
    fanout: &Arc<Fanout>,
    stats: &Arc<PipelineStats>,
    health: &Arc<Health>,
    rtsp: &Option<RtspServer>,
    source: &str,
    snapshots: Option<Arc<crate::http::snapshot::Snapshots>>,
) -> Result<Option<(crate::http::HttpServer, String)>, RunError> {
    use crate::http::face;
    let Some(listen) = config.http else {
        return Ok(None);
    };
    let auth = server_options(config, listen)?.auth;
    let rtsp_urls = match rtsp {
        Some(s) => viewer_urls(
            s.local_addr().map_err(RunError::local_addr("rtsp"))?,
            &config.rtsp_path,
        ),
        None => Vec::new(),
    };
    let facts = face::Facts {
        fanout: fanout.clone(),
        stats: stats.clone(),
        health: health.clone(),
        rtsp: rtsp.as_ref().map(|s| s.stats()),
        rtsp_urls: rtsp_urls.clone(),
        page_url: None,
        source: source.to_string(),
        bitrate_kbps: config.bitrate,
        started: Instant::now(),
    };
    // The URL is known once bound; the status source is built after.
    let page = Arc::new(std::sync::OnceLock::new());
    let p = page.clone();
    let status = face::status_source(facts);
    let with_url: crate::http::server::StatusSource = Arc::new(move |h| {
        let mut s = status(h);
        s.page_url = p.get().cloned();
        s
    });
    match crate::http::HttpServer::bind(
        face::options(config, listen, auth, snapshots),
        fanout.clone(),
        with_url,
    ) {
        Ok(server) => {
            let addr = server.local_addr().map_err(RunError::local_addr("http"))?;
            let url = face::page_urls(addr).swap_remove(0);
            let _ = page.set(url.clone());
            if open_to_network(listen, !config.rtsp_users().is_empty()) {
                log::warn!(
                    "http: listening on {listen} without authentication: anyone who can reach this \
                     device can watch; set rtsp-users-file (or rtsp-user), or listen on 127.0.0.1"
                );
            }
            Ok(Some((server, url)))
        }
        Err(e) => {
            log::error!(
                "http: cannot serve on {listen}: {e}; going on without the page (set http = \"ADDR:PORT\" or off)"
            );
            Ok(None)
        }
    }
}

/// Opens the configured source (a camera that is not there yet is waited
/// for) and builds the pipeline over it; also returns the format it starts
/// with, for the banner.
pub fn build_pipeline(
    config: &Config,
    handles: Handles,
) -> Result<(Pipeline, SourceFormat), RunError> {
    // A camera that is not there (yet) is not fatal: the pipeline keeps
    // trying. A command is started by the pipeline thread (its parent-death
    // signal follows that thread), and restarted after every failure.
    // Other sources must open now.
    let (source, camera) = match &config.source {
        SourceSpec::Command(words) => (
            None,
            Some((
                command_opener(config, Some(handles.stop.clone())),
                crate::source::command::display_name(words),
            )),
        ),
        SourceSpec::Device(path) => {
            let mut open = camera_opener(config, path);
            match open() {
                Ok(s) => (Some(s), Some((open, format!("camera {}", path.display())))),
                Err(e) if e.is_recoverable() => {
                    log::warn!("{e}; waiting for it");
                    (None, Some((open, format!("camera {}", path.display()))))
                }
                Err(e) => return Err(e.into()),
            }
        }
        _ => (Some(open_source(config)?), None),
    };
    let fmt = match &source {
        Some(s) => s.format().clone(),
        None => SourceFormat {
            width: config.size.width,
            height: config.size.height,
            fps: Fraction::new(config.fps, 1),
            pixel_format: crate::media::PixelFormat::I420,
            description: match &config.source {
                SourceSpec::Command(_) => format!("{} (starting)", config.source),
                _ => format!("camera {} (not there yet)", config.source),
            },
        },
    };
    if !matches!(config.source, SourceSpec::TestPattern)
        && (fmt.width, fmt.height, fmt.fps)
            != (
                config.size.width,
                config.size.height,
                Fraction::new(config.fps, 1),
            )
    {
        log::info!(
            "source: {} delivers {}x{} at {} fps; using that",
            fmt.description,
            fmt.width,
            fmt.height,
            fmt.fps
        );
    }
    let opts = EncodeOptions {
        bitrate_kbps: config.bitrate,
        keyint_seconds: config.keyint.as_secs_f64(),
        threads: config.threads,
    };
    let pipeline = match (camera, source) {
        (Some((open, name)), first) => {
            Pipeline::reopening(open, first, name, &opts, handles, config.frames)?
        }
        (None, Some(source)) => Pipeline::new(source, &opts, handles, config.frames)?,
        (None, None) => return Err(RunError::NoSource),
    }
    .with_slate(
        config.size.width,
        config.size.height,
        Fraction::new(config.fps, 1),
    );
    Ok((pipeline, fmt))
}

/// The connection limits from the config, the same for the RTSP server and
/// the HTTP face.
pub fn limit_settings(config: &Config) -> LimitSettings {
    LimitSettings {
        max_connections: config.max_connections,
        max_connections_per_ip: config.max_connections_per_ip,
        max_requests_per_second: config.max_requests_per_second,
        handshake_timeout: config.handshake_timeout,
        idle_timeout: config.idle_timeout,
    }
}

/// The push settings shared by every target.
pub fn push_options(config: &Config) -> crate::push::PushOptions {
    crate::push::PushOptions {
        tls_ca: config.push_tls_ca.clone(),
        audio: config.audio,
    }
}
